"""One character at a time: the prefix warm-up, then each step's distribution rewritten by a
list of constraints (mixture, song cache, line guard, copy guard, acrostic heads) and sampled.

Public names: `sampling.generate`, `sampling.check_prefix`, `constraints.Constraint` and its
kinds, `novelty.TrainingIndex`.
"""
