"""End-to-end CLI behaviour: train -> generate -> evaluate, stdout data only, exit codes."""

import json
import math
import sys

import pytest

from ..conftest import TINY_TRAIN, invoke, tree_digest


@pytest.fixture
def trained(runner, corpus_file, tmp_path):
    ck = tmp_path / "ck"
    r = invoke(runner, ["train", "--corpus", corpus_file, "--run", "t", "--checkpoint-dir", ck,
                        "--max-steps", "60", *TINY_TRAIN])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    return ck


def test_train_writes_run_and_stdout_is_empty(runner, corpus_file, tmp_path):
    r = invoke(runner, ["train", "--corpus", corpus_file, "--run", "t", "--checkpoint-dir",
                        tmp_path, "--max-steps", "20", *TINY_TRAIN])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""  # messages, previews and the summary all go to stderr
    assert "training summary" in r.stderr and "step     20" in r.stderr
    run = tmp_path / "t"
    assert {"best.pt", "last.pt", "metrics.jsonl"} <= {p.name for p in run.iterdir()}
    assert not (run / ".lock").exists()


def test_resume_announces_and_applies_a_changed_weight_decay(trained, runner):
    from charlm.store import checkpoint

    r = invoke(runner, ["train", "--run", "t", "--checkpoint-dir", trained, "--resume",
                        "--max-steps", "61", "--weight-decay", "0.25"])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert "resume: weight_decay" in r.stderr and "-> 0.25" in r.stderr
    last = checkpoint.load(trained / "t" / "last.pt")
    assert last["optimizer_state"]["param_groups"][0]["weight_decay"] == 0.25


def test_too_short_for_a_tune_slice_trains_the_network_alone_and_says_so(runner, tmp_path):
    from ..conftest import tiny_text

    corpus = tmp_path / "short.txt"
    corpus.write_text(tiny_text(8), encoding="utf-8")  # ~500 training chars: 5 % is too few
    r = invoke(runner, ["train", "--corpus", corpus, "--run", "s", "--checkpoint-dir", tmp_path,
                        "--max-steps", "2", "--batch-size", "2", "--seq-len", "8",
                        "--seed", "1", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert "network alone" in r.stderr and "--mix-fraction" in r.stderr
    assert "mixture-fit" not in r.stderr


def test_bf16_without_native_support_is_refused(runner, corpus_file, tmp_path, monkeypatch):
    import charlm.training.setup

    monkeypatch.setattr(charlm.training.setup, "bf16_supported", lambda device: False)
    r = invoke(runner, ["train", "--corpus", corpus_file, "--run", "b", "--checkpoint-dir",
                        tmp_path, "--precision", "bf16", *TINY_TRAIN])  # fmt: skip
    assert r.exit_code == 2 and "--precision fp32" in r.stderr and r.stdout == ""
    assert not (tmp_path / "b").exists()


def test_train_json_summary(runner, corpus_file, tmp_path):
    r = invoke(runner, ["train", "--corpus", corpus_file, "--run", "j", "--checkpoint-dir",
                        tmp_path, "--max-steps", "5", "--json", *TINY_TRAIN])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["steps"] == 5 and s["stopped"] == "max-steps" and s["seed"] == 3


def test_generate_prefix_length_and_determinism(trained, runner):
    args = ["generate", "--checkpoint-dir", trained, "--prefix", "分开", "--length", "50",
            "--seed", "7"]  # fmt: skip
    a, b = invoke(runner, args), invoke(runner, args)
    assert a.exit_code == 0, a.stderr
    assert a.stdout == b.stdout
    text = a.stdout
    assert text.startswith("分开")
    assert len(text.rstrip("\n")) >= 50 and len(text) <= 53


def test_generate_default_prefix_and_json(trained, runner):
    r = invoke(runner, ["generate", "--checkpoint-dir", trained, "--num-samples", "3",
                        "--length", "20", "--json", "--seed", "1"])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(recs) == 3
    assert all(rec["text"].startswith("分开") and rec["prefix"] == "分开" for rec in recs)
    assert "分开" in r.stdout  # CJK unescaped
    assert {rec["sample"] for rec in recs} == {0, 1, 2}


def test_generate_lines(trained, runner):
    r = invoke(runner, ["generate", "--checkpoint-dir", trained, "--lines", "3",
                        "--length", "5000", "--seed", "2"])  # fmt: skip
    assert r.exit_code == 0
    assert r.stdout.count("\n") == 3


@pytest.mark.parametrize("extra", [[], ["--temperature", "0"], ["--no-adapt", "--top-k", "3"]])
def test_acrostic_lines_start_with_the_given_characters(trained, runner, extra):
    args = ["generate", "--checkpoint-dir", trained, "--acrostic", "分天窗爱", "--seed", "5",
            "--num-samples", "3", "--json", *extra]  # fmt: skip
    r = invoke(runner, args)
    assert r.exit_code == 0, r.stderr
    for rec in map(json.loads, r.stdout.splitlines()):
        lines = rec["text"].rstrip("\n").split("\n")
        assert [ln[0] for ln in lines] == list("分天窗爱") and all(len(ln) > 1 for ln in lines)
    assert invoke(runner, args).stdout == r.stdout  # seeded


def test_acrostic_refuses_unknown_characters_and_a_prefix(trained, runner):
    r = invoke(runner, ["generate", "--checkpoint-dir", trained, "--acrostic", "春夏分冬"])
    assert r.exit_code == 3 and r.stdout == "" and "'春'" in r.stderr and "'夏'" in r.stderr
    r = invoke(runner, ["generate", "--checkpoint-dir", trained, "--acrostic", "分天",
                        "--prefix", "分"])  # fmt: skip
    assert r.exit_code == 2 and "--prefix" in r.stderr


def test_generate_prefix_from_stdin(trained, runner):
    r = invoke(runner, ["generate", "--checkpoint-dir", trained, "--prefix", "-", "--length", "5",
                        "--seed", "1"], input="不分开\n")  # fmt: skip
    assert r.exit_code == 0 and r.stdout.startswith("不分开")


def test_unknown_prefix_exit_3_and_skip(trained, runner):
    r = invoke(runner, ["generate", "--checkpoint-dir", trained, "--prefix", "分开吧"])
    assert r.exit_code == 3 and r.stdout == ""
    assert "'吧'" in r.stderr and "--skip-unknown" in r.stderr
    r = invoke(runner, ["generate", "--checkpoint-dir", trained, "--prefix", "分开吧",
                        "--skip-unknown", "--length", "3"])  # fmt: skip
    assert r.exit_code == 0 and r.stdout.startswith("分开")


@pytest.mark.parametrize(
    "opt", [["--temperature", "-1"], ["--top-p", "1.5"], ["--top-k", "-2"], ["--length", "-1"]]
)
def test_bad_generate_options_exit_2(trained, runner, opt):
    before = tree_digest(trained)
    r = invoke(runner, ["generate", "--checkpoint-dir", trained, *opt])
    assert r.exit_code == 2 and r.stdout == ""
    assert tree_digest(trained) == before


def test_evaluate_json_consistent(trained, runner):
    r = invoke(runner, ["evaluate", "--checkpoint-dir", trained, "--json"])
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert {"loss", "perplexity", "bits_per_char", "chars", "unknown_chars"} <= d.keys()
    assert math.isclose(d["perplexity"], math.exp(d["loss"]))
    assert math.isclose(d["bits_per_char"], d["loss"] / math.log(2))
    plain = invoke(runner, ["evaluate", "--checkpoint-dir", trained])
    assert math.isclose(float(plain.stdout), d["perplexity"], rel_tol=1e-4)
    assert "perplexity" in plain.stderr  # the table goes to stderr


def test_evaluate_other_corpus_counts_unknown(trained, runner, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("分开吧我们\n再见了\n", encoding="utf-8")
    r = invoke(runner, ["evaluate", "--checkpoint-dir", trained, "--corpus", other, "--split",
                        "all", "--json"])  # fmt: skip
    d = json.loads(r.stdout)
    assert d["chars"] == len("分开吧我们\n再见了\n") - 1 and d["unknown_chars"] >= 3
    assert "unknown to the model" in r.stderr  # 3 of 8: the figure says little
    own = invoke(runner, ["evaluate", "--checkpoint-dir", trained])
    assert own.exit_code == 0 and "unknown to the model" not in own.stderr


def test_resume_continues_and_refuses_changes(trained, runner, corpus_file, tmp_path):
    r = invoke(runner, ["train", "--corpus", corpus_file, "--run", "t", "--checkpoint-dir", trained,
                        "--resume", "--max-steps", "70"])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    steps = [
        json.loads(x)["step"] for x in (trained / "t" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps[-1] == 70 and len(steps) == len(set(steps))
    before = tree_digest(trained)
    r = invoke(runner, ["train", "--run", "t", "--checkpoint-dir", trained, "--resume",
                        "--hidden", "64"])  # fmt: skip
    assert r.exit_code == 4 and "--hidden 64" in r.stderr and "32" in r.stderr
    other = tmp_path / "other.txt"
    other.write_text("完全不同的一些歌词\n" * 300, encoding="utf-8")
    r = invoke(runner, ["train", "--run", "t", "--checkpoint-dir", trained, "--resume",
                        "--corpus", other])  # fmt: skip
    assert r.exit_code == 4 and "fingerprint" in r.stderr
    assert tree_digest(trained) == before


def test_resume_of_missing_run_never_starts_fresh(runner, corpus_file, tmp_path):
    r = invoke(runner, ["train", "--corpus", corpus_file, "--run", "nope", "--checkpoint-dir",
                        tmp_path, "--resume"])  # fmt: skip
    assert r.exit_code == 4 and "nothing to resume" in r.stderr
    assert not (tmp_path / "nope").exists()


def test_existing_run_is_not_overwritten(trained, runner, corpus_file):
    before = tree_digest(trained)
    r = invoke(runner, ["train", "--corpus", corpus_file, "--run", "t", "--checkpoint-dir",
                        trained, *TINY_TRAIN])  # fmt: skip
    assert r.exit_code == 2 and "--resume" in r.stderr
    assert tree_digest(trained) == before


def test_bidirectional_refused_with_reason(runner, corpus_file, tmp_path):
    ck = tmp_path / "ck"
    r = invoke(runner, ["train", "--corpus", corpus_file, "--bidirectional", "--checkpoint-dir",
                        ck])  # fmt: skip
    assert r.exit_code == 2 and "cannot" in r.stderr and "generate" in r.stderr
    assert not ck.exists()


def test_short_corpus_exit_3_no_run_folder(runner, tmp_path):
    p = tmp_path / "short.txt"
    p.write_text("分开不分开\n", encoding="utf-8")
    ck = tmp_path / "ck"
    r = invoke(runner, ["train", "--corpus", p, "--checkpoint-dir", ck])
    assert r.exit_code == 3 and "--batch-size" in r.stderr and r.stdout == ""
    assert not ck.exists() or list(ck.iterdir()) == []


def test_version_and_help(runner):
    r = invoke(runner, ["--version"])
    assert r.exit_code == 0 and r.stdout.startswith("charlm ")
    for cmd in ("train", "generate", "evaluate"):
        r = invoke(runner, [cmd, "--help"])
        assert r.exit_code == 0 and "Examples" in r.stdout


def test_no_checkpoint_yet(runner, tmp_path):
    r = invoke(runner, ["generate", "--checkpoint-dir", tmp_path])
    assert r.exit_code == 4 and "charlm train" in r.stderr


def test_evaluate_reports_network_mixture_and_baseline(trained, runner):
    r = invoke(runner, ["evaluate", "--checkpoint-dir", trained, "--json", "--baseline", "kn"])
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert 0 < d["mix_weight"] < 1
    assert d["network"]["chars"] == d["chars"] == d["baseline_kn"]["chars"]
    assert math.isfinite(d["baseline_kn"]["perplexity"])
    assert (
        "Kneser-Ney"
        in invoke(runner, ["evaluate", "--checkpoint-dir", trained, "--baseline", "kn"]).stderr
    )


def test_network_alone_with_kn_order_0(runner, corpus_file, tmp_path):
    r = invoke(runner, ["train", "--corpus", corpus_file, "--checkpoint-dir", tmp_path,
                        "--max-steps", "5", "--kn-order", "0", *TINY_TRAIN])  # fmt: skip
    assert r.exit_code == 0
    d = json.loads(invoke(runner, ["evaluate", "--checkpoint-dir", tmp_path, "--json"]).stdout)
    assert "mix_weight" not in d and d["network"]["loss"] == d["loss"]


@pytest.mark.slow
def test_preset_d2l_training_perplexity_falls(runner, tmp_path):
    p = tmp_path / "lyrics.txt"
    from ..conftest import tiny_text

    p.write_text(tiny_text(60), encoding="utf-8")
    r = invoke(runner, ["train", "--corpus", p, "--preset", "d2l", "--epochs", "30",
                        "--eval-every", "20", "--checkpoint-dir", tmp_path / "ck", "--run", "d",
                        "--seed", "0"])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    recs = [
        json.loads(x) for x in (tmp_path / "ck" / "d" / "metrics.jsonl").read_text().splitlines()
    ]
    assert recs[0]["val_ppl"] is None  # the book has no held-out text
    assert recs[-1]["train_ppl"] < recs[0]["train_ppl"] / 2
    best = __import__("torch").load(tmp_path / "ck" / "d" / "best.pt", weights_only=True)
    assert best["model_config"]["embed"] == 0 and best["model_config"]["cell"] == "rnn"
    assert best["train_config"]["clip"] == 0.01 and best["train_config"]["seq_len"] == 35


def test_scratch_impl_checkpoint_generates_and_evaluates(runner, corpus_file, tmp_path):
    r = invoke(runner, ["train", "--corpus", corpus_file, "--checkpoint-dir", tmp_path, "--run",
                        "s", "--impl", "scratch", "--max-steps", "10", *TINY_TRAIN])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    g = invoke(runner, ["generate", "--checkpoint-dir", tmp_path, "--length", "10", "--seed", "1"])
    assert g.exit_code == 0 and g.stdout.startswith("分开")
    e = invoke(runner, ["evaluate", "--checkpoint-dir", tmp_path, "--json"])
    assert e.exit_code == 0 and math.isfinite(json.loads(e.stdout)["perplexity"])


def test_train_from_stdin_then_evaluate_needs_corpus(runner, tmp_path):
    from ..conftest import tiny_text

    r = invoke(runner, ["train", "--corpus", "-", "--checkpoint-dir", tmp_path, "--max-steps", "3",
                        *TINY_TRAIN], input=tiny_text())  # fmt: skip
    assert r.exit_code == 0, r.stderr
    r = invoke(runner, ["evaluate", "--checkpoint-dir", tmp_path])
    assert r.exit_code == 2 and "--corpus" in r.stderr


def test_generate_bf16_is_deterministic(trained, runner):
    args = ["generate", "--checkpoint-dir", trained, "--length", "30", "--seed", "3",
            "--precision", "bf16"]  # fmt: skip
    a, b = invoke(runner, args), invoke(runner, args)
    assert a.exit_code == 0 and a.stdout == b.stdout and a.stdout.startswith("分开")
    bad = invoke(runner, ["generate", "--checkpoint-dir", trained, "--precision", "fp8"])
    assert bad.exit_code == 2 and "--precision" in bad.stderr


def test_shell_completion_script_and_completions(runner, monkeypatch):
    import os
    import subprocess
    import sys

    import shellingham

    # the shell is detected from the parent processes: under CI there may be none to find
    monkeypatch.setattr(shellingham, "detect_shell", lambda *a, **k: ("bash", "/bin/bash"))
    r = invoke(runner, ["--show-completion"])
    assert r.exit_code == 0 and "_charlm_completion" in r.stdout
    env = {**os.environ, "_CHARLM_COMPLETE": "complete_bash", "COMP_WORDS": "charlm gen",
           "COMP_CWORD": "1"}  # fmt: skip
    code = "from charlm.cli import app; app(prog_name='charlm')"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["generate"]


def test_every_command_help_has_a_runnable_example(runner):
    for cmd in (["train"], ["generate"], ["evaluate"], ["info"], ["runs"], ["runs", "rm"]):
        r = invoke(runner, [*cmd, "--help"])
        assert r.exit_code == 0 and "charlm " + cmd[0] in r.stdout.split("Example")[-1], cmd


def test_the_copy_guard_is_on_by_default_and_off_with_max_copy_0(trained, runner):
    args = ["generate", "--checkpoint-dir", trained, "--length", "200", "--temperature", "0.5",
            "--seed", "1", "--report-novelty", "--json"]  # fmt: skip
    guarded = json.loads(invoke(runner, args).stdout)["novelty"]
    free = json.loads(invoke(runner, [*args, "--max-copy", "0"]).stdout)["novelty"]
    assert guarded["longest_copy"] <= 16 < free["longest_copy"]  # a cold draw copies lines


def test_without_its_training_text_generate_goes_on_without_the_guard(runner, tmp_path):
    from tests.conftest import tiny_text

    r = invoke(runner, ["train", "--corpus", "-", "--run", "s", "--checkpoint-dir", tmp_path,
                        "--max-steps", "10", *TINY_TRAIN], input=tiny_text())  # fmt: skip
    assert r.exit_code == 0, r.stderr
    g = invoke(runner, ["generate", "--checkpoint-dir", tmp_path, "--length", "20", "--seed", "1"])
    assert g.exit_code == 0 and g.stdout.startswith("分开") and "no copy guard" in g.stderr
    quiet = invoke(runner, ["generate", "--checkpoint-dir", tmp_path, "--length", "20",
                            "--seed", "1", "--max-copy", "0"])  # fmt: skip
    assert quiet.stdout == g.stdout and "no copy guard" not in quiet.stderr


def test_samples_are_told_apart_by_a_separator_line_not_a_stanza_break(trained, runner):
    args = ["generate", "--checkpoint-dir", trained, "--num-samples", "3", "--lines", "3",
            "--seed", "1"]  # fmt: skip
    r = invoke(runner, args)
    texts = [json.loads(x)["text"] for x in invoke(runner, [*args, "--json"]).stdout.splitlines()]
    assert r.exit_code == 0 and r.stdout.split("%\n") == texts
    custom = invoke(runner, [*args, "--separator", "----"])
    assert custom.stdout == "----\n".join(texts)


def test_generate_ends_without_teardown_yet_loses_no_output(runner, trained):
    """The real entry point leaves generate with os._exit after flushing: the output is
    whole, the exit codes are the documented ones."""
    import subprocess

    args = ["generate", "--checkpoint-dir", str(trained), "--num-samples", "3", "--length",
            "400", "--seed", "4", "--json"]  # fmt: skip
    expected = invoke(runner, args).stdout
    real = subprocess.run([sys.executable, "-m", "charlm", *args], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert real.returncode == 0 and real.stdout == expected and len(expected) > 1000
    unknown = subprocess.run([sys.executable, "-m", "charlm", *args, "--prefix", "火星"],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert unknown.returncode == 3 and "火" in unknown.stderr and unknown.stdout == ""
