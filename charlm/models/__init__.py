"""Networks: the recurrent state, CharRNN, the from-scratch cells, the fused one-step stepper,
averaged ensembles, and the shapes `charlm info` prints.

Public names: `state.State`, `state.zero_state`, `state.detach_state`, `charrnn.CharRNN`,
`charrnn.count_parameters`, `scratch.ScratchRNN`, `stepper.Stepper`, `ensemble.Ensemble`,
`ensemble.networks`, `shapes.describe`.
"""
