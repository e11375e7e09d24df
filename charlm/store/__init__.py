"""Files that last: checkpoints (atomic, digested, validated), run folders, the one-trainer
lock, and the run listing.

Public names: `checkpoint.save`, `checkpoint.load`, `checkpoint.resolve`,
`checkpoint.restore_model`, `run_folder.RunFolder`, `lock.RunLock`, `listing.list_runs`.
"""
