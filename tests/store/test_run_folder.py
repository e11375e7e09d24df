"""run_folder.py: the metrics file of a run, read back and cut on resume."""

import pytest

from charlm.errors import UsageError
from charlm.store.run_folder import RunFolder, check_checkpoint_dir, record_score


def folder_with(tmp_path, steps):
    run = RunFolder(tmp_path)
    for s in steps:
        run.append_metrics({"step": s, "val_ppl": 100.0 - s, "note": "分开"})
    return run


def test_resume_drops_the_records_after_its_step_and_keeps_the_rest_as_written(tmp_path):
    run = folder_with(tmp_path, [10, 20, 30, 40])
    run.truncate_metrics(20)
    assert [r["step"] for r in run.read_metrics()] == [10, 20]  # the resumed step stays
    assert "分开" in run.metrics.read_text(encoding="utf-8")  # CJK unescaped, as written
    assert not list(tmp_path.glob("*.tmp"))


def test_nothing_to_drop_leaves_the_file_untouched(tmp_path):
    run = folder_with(tmp_path, [10, 20])
    run.metrics.write_bytes(run.metrics.read_bytes() + b"42\n")  # a stray line stays too
    before = run.metrics.read_bytes()
    run.truncate_metrics(20)
    assert run.metrics.read_bytes() == before


def test_damaged_lines_are_skipped_and_the_score_is_the_held_out_one(tmp_path):
    run = folder_with(tmp_path, [10])
    with open(run.metrics, "ab") as fh:
        fh.write(
            b'{"step": 20, "val_ppl": "x"}\n\xff\xfe\n[1]\n{"step": 2.5}\n'
            b'{"val_ppl": 3.0}\n{"step": true}\n'
        )
    assert [r["step"] for r in run.read_metrics()] == [10]
    assert record_score({"val_ppl": 3.0, "train_ppl": 9.0}) == 3.0
    assert record_score({"val_ppl": None, "train_ppl": 9.0}) == 9.0


def test_a_checkpoint_dir_through_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert check_checkpoint_dir(tmp_path / "new") == tmp_path / "new"
    with pytest.raises(UsageError, match="is a file"):
        check_checkpoint_dir(f)
    with pytest.raises(UsageError, match="passes through"):
        check_checkpoint_dir(f / "sub")


def test_a_run_that_wrote_no_checkpoint_leaves_no_folder(tmp_path):
    run = RunFolder(tmp_path / "r")
    run.path.mkdir()
    run.append_metrics({"step": 1})
    run.remove_if_unused()
    assert not run.path.exists()
    kept = RunFolder(tmp_path / "k")
    kept.path.mkdir()
    kept.last.write_bytes(b"x")
    kept.remove_if_unused()
    assert kept.path.exists() and kept.last.read_bytes() == b"x"


def test_removing_a_folder_that_is_already_gone_is_not_an_error(tmp_path):
    RunFolder(tmp_path / "gone").remove_if_unused()  # e.g. `charlm runs rm` got there first
