"""Probabilities of text: the deterministic evaluation pass, the Kneser-Ney count model, the
mixture of network and counts, and the song cache that adapts to the text read so far.

Public names: `evaluate.target_logprobs`, `evaluate.EvalResult`, `kneser_ney.KneserNey`,
`mixture_fit.MixtureFit`, `mixture.Mixture`, `mixture.score_text`, `adapt.Adaptation`.
"""
