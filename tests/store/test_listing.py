"""charlm runs: a row a run, sortable, JSON on stdout; runs rm deletes only when told to."""

import json
import os
from pathlib import Path

import pytest

from ..conftest import train_tiny

TINY = ["--batch-size", "4", "--seq-len", "8", "--hidden", "16", "--embed", "8"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    ck = tmp_path_factory.mktemp("runs") / "ck"
    for name, steps in (("short", "4"), ("longer", "12")):
        train_tiny(ck, name, "--max-steps", steps, "--seed", "1", *TINY)
    (ck / ".cache").mkdir(exist_ok=True)  # the ids cache is not a run
    (ck / "empty").mkdir()  # nor is a folder without checkpoints
    return ck


def app():
    from charlm.cli import app

    return app


def test_runs_lists_every_run_with_its_numbers(two_runs, runner):
    r = runner.invoke(app(), ["runs", "--checkpoint-dir", str(two_runs), "--json"])
    assert r.exit_code == 0, r.stderr
    rows = {d["name"]: d for d in map(json.loads, r.stdout.splitlines())}
    assert set(rows) == {"short", "longer"}
    assert rows["short"]["steps"] == 4 and rows["longer"]["steps"] == 12
    assert rows["short"]["corpus"] == "lyrics.txt" and rows["short"]["model"] == "lstm 1x16"
    metrics = [
        json.loads(x) for x in (two_runs / "longer" / "metrics.jsonl").read_text().splitlines()
    ]
    assert rows["longer"]["best_ppl"] == min(m["val_ppl"] for m in metrics)
    assert rows["longer"]["best_ppl"] < rows["short"]["best_ppl"]  # what --sort best_ppl reads
    on_disk = sum(p.stat().st_size for p in (two_runs / "longer").iterdir()) / 1e6
    assert rows["longer"]["size_mb"] == pytest.approx(on_disk)
    assert "2 run(s)" in r.stderr and "lyrics.txt" in r.stderr  # the table, on stderr


@pytest.mark.parametrize(
    ("key", "first"), [("name", "longer"), ("steps", "longer"), ("best_ppl", "longer")]
)
def test_runs_sort_and_names_on_stdout(two_runs, runner, key, first):
    r = runner.invoke(app(), ["runs", "--checkpoint-dir", str(two_runs), "--sort", key])
    assert r.exit_code == 0 and r.stdout.split()[0] == first and len(r.stdout.split()) == 2
    bad = runner.invoke(app(), ["runs", "--checkpoint-dir", str(two_runs), "--sort", "colour"])
    assert bad.exit_code == 2 and "--sort" in bad.stderr


def test_a_damaged_checkpoint_is_listed_not_fatal(tmp_path, two_runs, runner):
    import shutil

    ck = tmp_path / "ck"
    shutil.copytree(two_runs / "short", ck / "short")
    (ck / "short" / "best.pt").write_bytes(b"not a checkpoint")
    (ck / "short" / "last.pt").unlink()
    r = runner.invoke(app(), ["runs", "--checkpoint-dir", str(ck), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["model"] == "?"
    # with its metrics gone too, it is a run of nothing yet, listed after every scored run
    (ck / "short" / "metrics.jsonl").unlink()
    shutil.copytree(two_runs / "longer", ck / "longer")
    r = runner.invoke(app(), ["runs", "--checkpoint-dir", str(ck), "--json", "--sort",
                              "best_ppl"])  # fmt: skip
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [d["name"] for d in rows] == ["longer", "short"]
    assert (rows[1]["steps"], rows[1]["best_ppl"], rows[1]["trained_s"]) == (0, None, 0.0)


def test_durations_read_as_hours_minutes_and_seconds():
    from charlm.store.listing import _duration

    assert [_duration(s) for s in (0, 59.6, 65, 3599, 3725)] == [
        "0m00s", "1m00s", "1m05s", "59m59s", "1h02m"]  # fmt: skip


@pytest.mark.parametrize("name", ["a/b", "..", ".", "", ".cache"])
def test_runs_rm_refuses_what_is_not_a_run_name(tmp_path, two_runs, runner, name):
    r = runner.invoke(app(), ["runs", "rm", name, "--yes", "--checkpoint-dir", str(two_runs)])
    assert r.exit_code == 2 and "not a run name" in r.stderr
    assert (two_runs / "short" / "best.pt").is_file()


def test_runs_rm_asks_refuses_and_deletes(tmp_path, two_runs, runner):
    import shutil

    ck = tmp_path / "ck"
    shutil.copytree(two_runs, ck)
    r = runner.invoke(app(), ["runs", "rm", "short", "--checkpoint-dir", str(ck)])
    assert r.exit_code == 2 and "--yes" in r.stderr and (ck / "short").is_dir()  # no terminal
    for name in ("nope", "..", ".cache", "empty"):
        r = runner.invoke(app(), ["runs", "rm", name, "--yes", "--checkpoint-dir", str(ck)])
        assert r.exit_code == 2, name
    assert (ck / ".cache").is_dir() and (ck / "empty").is_dir()
    (ck / "longer" / ".lock").write_text(f"{os.getpid()}@{os.uname().nodename}")  # a live trainer
    r = runner.invoke(app(), ["runs", "rm", "longer", "--yes", "--checkpoint-dir", str(ck)])
    assert r.exit_code == 6 and (ck / "longer" / "best.pt").exists()
    r = runner.invoke(app(), ["runs", "rm", "short", "--yes", "--checkpoint-dir", str(ck)])
    assert r.exit_code == 0 and not (ck / "short").exists() and "deleted" in r.stderr
    names = runner.invoke(app(), ["runs", "--checkpoint-dir", str(ck)]).stdout.split()
    assert names == ["longer"]


@pytest.mark.parametrize("damage", [b"42\n", b'{"step": "x", "val_ppl": 3}\n', b"\xff\xfe{\n",
                                    b'{"step": 4, "val_ppl": [1]}\n'])  # fmt: skip
def test_a_damaged_metrics_line_is_skipped_by_runs_and_plot(tmp_path, two_runs, runner, damage):
    """Bug: one flipped bit or a stray line in metrics.jsonl made `charlm runs` (the whole
    listing) and `charlm plot` exit 1 with UnicodeDecodeError / AttributeError / TypeError."""
    import shutil

    ck = tmp_path / "ck"
    shutil.copytree(two_runs / "longer", ck / "longer")
    with open(ck / "longer" / "metrics.jsonl", "ab") as fh:
        fh.write(damage)
    r = runner.invoke(app(), ["runs", "--checkpoint-dir", str(ck), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["steps"] == 12
    pytest.importorskip("plotext")
    r = runner.invoke(app(), ["plot", "longer", "--terminal", "--checkpoint-dir", str(ck)])
    assert r.exit_code == 0, r.output


def test_runs_rm_of_a_linked_run_removes_the_link_only(tmp_path, two_runs, runner):
    """Bug: a run folder that is a symlink: exit 6, "could not delete it (None)"."""
    import shutil

    target = tmp_path / "elsewhere"
    shutil.copytree(two_runs / "short", target)
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "linked").symlink_to(target, target_is_directory=True)
    r = runner.invoke(app(), ["runs", "rm", "linked", "--yes", "--checkpoint-dir", str(ck)])
    assert r.exit_code == 0, r.output
    assert not (ck / "linked").exists() and (target / "best.pt").is_file()


def test_runs_on_a_terminal_prints_the_table_only(two_runs, runner, monkeypatch):
    """Bug: on a terminal, `charlm runs` printed the table and then the names again."""
    import charlm.cli.runs as runs_cli

    monkeypatch.setattr(runs_cli, "stdout_is_terminal", lambda: True)
    r = runner.invoke(app(), ["runs", "--checkpoint-dir", str(two_runs)])
    assert r.exit_code == 0 and r.stdout == "" and "longer" in r.stderr
    r = runner.invoke(app(), ["runs", "--checkpoint-dir", str(two_runs), "--json"])
    assert len(r.stdout.splitlines()) == 2  # --json is data: always on stdout


def test_the_table_names_what_a_run_started_from():
    import io

    from rich.console import Console

    from charlm.store.listing import RunRow, render

    def row(name, base):
        return RunRow(name=name, corpus="c.txt", model="lstm 1x16", steps=1, best_ppl=None,
                      trained_s=0.0, updated=0.0, size_mb=0.1, base=base)  # fmt: skip

    out = io.StringIO()
    render(Console(file=out, width=200), [row("tuned", "zh"), row("fresh", "")], Path("ck"))
    lines = {ln.split()[1]: ln.split()[-2] for ln in out.getvalue().splitlines() if "1x16" in ln}
    assert lines == {"tuned": "zh", "fresh": "-"}
