"""From `charlm train`'s options to best.pt: options and presets, sizing, setup, the step,
the loop and its parts (progress, held-out decisions, members, reporting), the optimizer.

Public names: `options.TrainOptions`, `setup.prepare`, `step.train_step`, `loop.Trainer`.
"""
