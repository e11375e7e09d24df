"""Bytes -> text -> ids -> batches.

Public names: `corpus.read_corpus` (zip / txt / folder / stdin, encodings, the held-out split,
`read_recorded` for a checkpoint's corpus record), `vocab.Vocab`, `ids_cache.encode_text`,
`batching.make_batches` (the random and consecutive samplers), `noise.UnknownNoise`,
`prepared.RunData` (the encoded text a run trains on).
"""
