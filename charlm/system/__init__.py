"""The machine: device and precision, seeds and generators, signals, torchrun.

Public names: `runtime.choose_device`, `runtime.auto_precision`, `runtime.new_seed`,
`runtime.make_generator`, `signals.SignalGuard`, `distributed.start`, `distributed.Dist`.
Imports nothing of charlm's but `errors`.
"""
