#!/usr/bin/env python3
"""Do the tests catch bugs? A mutation check: one small change to the code at a time, run
against the tests that should catch it; a mutant the tests still pass "survived".

    .venv/bin/python benchmarks/mutation.py               # the listed mutants (issue #24's)
    .venv/bin/python benchmarks/mutation.py --auto        # plus generated ones, per module
    .venv/bin/python benchmarks/mutation.py --only loop --auto-only --sample 0

Listed mutants (LISTED) are the one-line bugs an audit found the tests let through: each names
the file, the exact text it replaces (which must occur once, so a stale entry fails loudly
rather than testing nothing) and the tests that should kill it.

Generated mutants (--auto) are made from the syntax tree of each module in AUTO_MODULES, the
modules the audit's fixes and the code since touched: a comparison's boundary or sense flipped
(< to <=, == to !=, in to not in), `and` to `or`, a `not` dropped, a number moved by one (or
doubled when fractional), True to False, + to -. `--sample N` draws N of them a module
(seeded, so the same N are drawn each time; 0 = all). A mutant a test run cannot tell apart
from the code because it changes nothing observable (equivalent) is listed in EQUIVALENT
with the reason, and counted apart from the survival rate.

The work is done on a copy of the working tree (the checkout is never changed), with
PYTHONPATH pointing at it so that tests which start `python -m charlm` see the mutant too.
Killed = the tests failed (or ran past --timeout). The table goes to stdout.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # relative to the repository root
    old: str  # exact text, once in the file
    new: str
    tests: tuple[str, ...]  # pytest node ids or files
    at: int = -1  # a generated mutant: the byte offset of `old` in the file


def _m(name: str, path: str, old: str, new: str, *tests: str) -> Mutant:
    return Mutant(name, path, old, new, tests)


ADAPT, CONSTRAINTS = "charlm/scoring/adapt.py", "charlm/generation/constraints.py"
T_ADAPT, T_SAMPLING = "tests/scoring/test_adapt.py", "tests/generation/test_sampling.py"
T_NOVELTY, T_MEMBERS = "tests/generation/test_novelty.py", "tests/training/test_members.py"

# Issue #24's surviving mutations, each with the tests that now guard it.
LISTED = [
    _m(
        "cache: shared-weight fallback 0", ADAPT, "shared = em(match >= 0)", "shared = 0.0", T_ADAPT
    ),
    _m("line guard: window 16 -> 17", ADAPT, "WINDOW_LINES = 16", "WINDOW_LINES = 17", T_ADAPT),
    _m(
        "line guard: block limit 8 -> 3",
        ADAPT,
        "MAX_BLOCK_LINES = 8",
        "MAX_BLOCK_LINES = 3",
        T_ADAPT,
    ),
    _m("line guard: unit limit 6 -> 2", ADAPT, "MAX_UNIT_CHARS = 6", "MAX_UNIT_CHARS = 2", T_ADAPT),
    _m(
        "generation strength 0.8 -> 1.0",
        ADAPT,
        "GENERATION_STRENGTH = 0.8",
        "GENERATION_STRENGTH = 1.0",
        T_ADAPT,
    ),
    _m(
        "copy guard ignores the prefix",
        CONSTRAINTS,
        "for b, tail in enumerate(draft.history):\n            bad",
        "for b, tail in enumerate([h[len(h) - draft.steps :] if draft.steps else []"
        " for h in draft.history]):\n            bad",
        T_NOVELTY,
    ),
    _m(
        "dropout stream without its rank",
        "charlm/system/distributed.py",
        "self.rank * 7919 + step",
        "0 * 7919 + step",
        "tests/system/test_distributed.py::test_each_process_takes_its_own_rows_and_dropout_stream",
        "tests/system/test_distributed.py::"
        "test_ranks_without_saved_streams_draw_different_dropout_masks",
    ),
    _m(
        "SIGINT outranks SIGTERM",
        "charlm/system/distributed.py",
        "agreed = signal.SIGTERM if sigterm else (signal.SIGINT if sigint else None)",
        "agreed = signal.SIGINT if sigint else (signal.SIGTERM if sigterm else None)",
        "tests/system/test_distributed.py::test_the_agreed_signal_prefers_sigterm",
    ),
    _m(
        "followers' fingerprint check off",
        "charlm/training/setup.py",
        'if corpus.fingerprint != record["fingerprint"]:',
        "if False:",
        "tests/system/test_distributed.py::test_a_follower_that_reads_another_corpus_is_refused",
    ),
    _m(
        "budget sizing off",
        "charlm/training/setup.py",
        "    if fit_size:\n",
        "    if False:\n",
        "tests/training/test_sizing.py",
    ),
    _m(
        "may_grow always true",
        "charlm/training/members.py",
        "return cfg.max_time > 0 and prog.member + 1 < cfg.members and helped",
        "return True",
        T_MEMBERS,
    ),
    _m(
        "time margin 1.2 -> 0",
        "charlm/training/members.py",
        "TIME_MARGIN = 1.2",
        "TIME_MARGIN = 0",
        T_MEMBERS,
    ),
    _m(
        "frozen members keep their last weights",
        "charlm/training/loop.py",
        "if self.prog.best_step == self.prog.step:  # this network's",
        "if True:  # this network's",
        "tests/models/test_ensemble.py::"
        "test_a_run_with_time_left_trains_a_second_member_from_the_first_ones_best",
    ),
    _m(
        "tensorboard purge on resume dropped",
        "charlm/training/tensorboard.py",
        "purge_step=resume_step + 1 if resume_step else None",
        "purge_step=None",
        "tests/training/test_tensorboard.py",
    ),
    _m(
        "tensorboard purge hides the resumed step",
        "charlm/training/tensorboard.py",
        "purge_step=resume_step + 1 if resume_step else None",
        "purge_step=resume_step or None",
        "tests/training/test_tensorboard.py",
    ),
    _m(
        "runs --sort best_ppl reversed",
        "charlm/store/listing.py",
        "key=lambda r: (r.best_ppl is None, r.best_ppl or 0.0))",
        "key=lambda r: (r.best_ppl is None, r.best_ppl or 0.0), reverse=True)",
        "tests/store/test_listing.py",
    ),
    _m(
        "plot: minutes axis as steps",
        "charlm/training/curves.py",
        'xs = [v / 60 for v in xs] if x == "elapsed_s" else xs',
        "xs = xs",
        "tests/training/test_curves.py",
    ),
    _m(
        "plot: dashed and solid swapped",
        "charlm/training/curves.py",
        'LINE_STYLES.get(label, "--")',
        'LINE_STYLES.get(label, "-") if "train" not in label else "-"',
        "tests/training/test_curves.py",
    ),
    _m(
        "--max-copy writes <unk> when nothing is left",
        CONSTRAINTS,
        "left[UNK_ID] = False",
        "pass",
        T_NOVELTY,
    ),
]

# Modules checked by generated mutants, with the tests that should catch their bugs.
T_RHYME_LINES = "tests/generation/test_rhyme_lines.py"
AUTO_MODULES: dict[str, tuple[str, ...]] = {
    ADAPT: (T_ADAPT,),
    CONSTRAINTS: (T_SAMPLING, T_NOVELTY, "tests/generation/test_form.py", T_ADAPT),
    "charlm/training/members.py": (T_MEMBERS, "tests/models/test_ensemble.py"),
    "charlm/store/listing.py": ("tests/store/test_listing.py",),
    "charlm/training/curves.py": ("tests/training/test_curves.py",),
    "charlm/data/ids_cache.py": ("tests/data/test_ids_cache.py",),
    "charlm/generation/novelty.py": (T_NOVELTY,),
    "charlm/store/run_folder.py": ("tests/store/test_run_folder.py", "tests/store/test_listing.py"),
    "charlm/training/sizing.py": (
        "tests/training/test_sizing.py",
        "tests/training/test_options.py",
        "tests/training/test_schedule.py",
    ),
    "charlm/generation/form/free_lines.py": (T_RHYME_LINES, "tests/generation/test_form.py"),
    "charlm/generation/form/lexicon.py": (T_RHYME_LINES,),
    "charlm/generation/form/english.py": (T_RHYME_LINES,),
    "charlm/generation/form/rhyme_word.py": (T_RHYME_LINES,),
}

# Generated mutants that change nothing a caller can see, with why (name -> reason); and
# cosmetic ones (a legend's font size), which no test should pin.
EQUIVALENT: dict[str, str] = {
    "english:21:19 1->2": "the rhyme table's cache holds the one table; room for two holds it too",
    "lexicon:22:18 True->False": "nothing assigns to a Lexicon's fields: frozen or not, the same",
    "lexicon:82:77 True->False": "the three arrays zipped are one a token: strict or not, the same",
    "lexicon:138:17 Eq->NotEq": "the short words' whole test then runs at the inside stage, on "
    "the same words: the words that stand are the same",
    "adapt:99:52 1->2": "numpy's reshape(-2) infers the size as reshape(-1) does",
    "adapt:194:21 1->2": "StreamCache.last starts at a sentinel that is never an id: -1 or -2",
    "adapt:170:14 0.5->1.0": "EM's starting weight: the likelihood is concave in it, so 50 "
    "steps from 0.5 or from 1.0 reach the same weight",
    "constraints:60:39 1->2": 'prefix.rsplit("\\n", 1)[-1] and rsplit(..., 2)[-1] are the same '
    "last line",
    "constraints:244:18 False->True": "build()'s adapt default: its one caller always passes it",
    "constraints:295:31 Sub->Add": "a form's length with a prefix: the form's line count ends "
    "the song first, so a longer limit writes the same text",
    "ids_cache:104:40 False->True": "how the record's digest encodes its fields: it is only "
    "ever compared with a digest computed the same way",
    "novelty:69:29 1->2": "the bisection's midpoint one higher: still strictly between lo "
    "and hi + 1, so the same longest copy is found",
    "sizing:194:57 1->2": "the note's passes over max(n_train, 1) or 2: a run trains on at "
    "least one window, never on 1 character",
    "members:49:35 Lt->LtE": "time left exactly equal to 1.2 x the last network's time: two "
    "clock readings never meet exactly",
    "constraints:179:48 2->3": "a phrase longer than half the line cannot close a copy "
    "(_closes returns None for it), so trying one more length changes nothing",
    "constraints:227:75 True->False": "zip(strict=) over the draft's lines and line lengths, "
    "which always have one entry a sample",
    "curves:66:24 10->11": "matplotlib's colour 'C10' wraps to 'C0'",
    "curves:67:61 True->False": "zip(strict=) over two panels and two axes names",
    "curves:72:68 True->False": "zip(strict=) over two tuples of two",
    "curves:76:16 True->False": "cosmetic: the panels' grid",
    "curves:77:28 8->9": "cosmetic: the legend's font size",
    "curves:77:9 0->1": "cosmetic: which panel holds the legend",
}

SWAPS = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}


def _offsets(source: str) -> list[int]:
    starts, pos = [], 0
    for line in source.splitlines(keepends=True):
        starts.append(pos)
        pos += len(line.encode("utf-8"))
    return starts


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            out.add(id(body[0].value))
    return out


def _variants(node: ast.AST, skip: set[int]) -> list[tuple[str, ast.AST]]:
    """(what changed, the mutated node) for one node."""
    out: list[tuple[str, ast.AST]] = []
    if isinstance(node, ast.Compare):
        for k, op in enumerate(node.ops):
            if type(op) in SWAPS:
                ops = list(node.ops)
                ops[k] = SWAPS[type(op)]()
                out.append((f"{type(op).__name__}->{type(ops[k]).__name__}",
                            ast.Compare(node.left, ops, node.comparators)))  # fmt: skip
    elif isinstance(node, ast.BoolOp):
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        out.append((f"{type(node.op).__name__}->{type(other).__name__}",
                    ast.BoolOp(other, node.values)))  # fmt: skip
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        out.append(("not dropped", node.operand))
    elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        other = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
        out.append((f"{type(node.op).__name__}->{type(other).__name__}",
                    ast.BinOp(node.left, other, node.right)))  # fmt: skip
    elif isinstance(node, ast.Constant) and id(node) not in skip:
        v = node.value
        if isinstance(v, bool):
            out.append((f"{v}->{not v}", ast.Constant(not v)))
        elif isinstance(v, int):
            out.append((f"{v}->{v + 1}", ast.Constant(v + 1)))
        elif isinstance(v, float):
            new = v * 2 if v else 1.0
            out.append((f"{v}->{new}", ast.Constant(new)))
    return out


def generated(path: str, tests: tuple[str, ...]) -> list[Mutant]:
    """Every generated mutant of one module, in source order."""
    source = (ROOT / path).read_text(encoding="utf-8")
    raw = source.encode("utf-8")
    tree = ast.parse(source)
    starts, skip = _offsets(source), _docstrings(tree)
    out: list[Mutant] = []
    for node in ast.walk(tree):
        if not hasattr(node, "end_lineno") or isinstance(node, ast.JoinedStr):
            continue
        for what, new in _variants(node, skip):
            a = starts[node.lineno - 1] + node.col_offset
            b = starts[node.end_lineno - 1] + node.end_col_offset
            old = raw[a:b].decode("utf-8")
            text = ast.unparse(ast.fix_missing_locations(new))
            if old.count("\n") or text == old:
                continue
            name = f"{Path(path).stem}:{node.lineno}:{node.col_offset} {what}"
            out.append(Mutant(name, path, old, text, tests, at=a))
    return sorted(out, key=lambda m: m.name)


def apply(work: Path, m: Mutant) -> str:
    """Write the mutant into the copy; the original text, to put back."""
    f = work / m.path
    original = f.read_text(encoding="utf-8")
    if m.at >= 0:
        raw, old = original.encode("utf-8"), m.old.encode("utf-8")
        if raw[m.at : m.at + len(old)] != old:
            raise SystemExit(f"{m.name}: {m.path} changed since the mutants were made")
        f.write_bytes(raw[: m.at] + m.new.encode("utf-8") + raw[m.at + len(old) :])
        return original
    if original.count(m.old) != 1:
        raise SystemExit(f"{m.name}: {m.path} holds {original.count(m.old)} copies of {m.old!r}")
    f.write_text(original.replace(m.old, m.new), encoding="utf-8")
    return original


def run_tests(work: Path, tests: tuple[str, ...], timeout: float) -> tuple[bool, float, str]:
    """(the tests passed, seconds, the test that failed)."""
    env = {**os.environ, "PYTHONPATH": str(work), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
           "-m", "slow or not slow", *tests]  # fmt: skip
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, time.perf_counter() - t0, f"timed out ({timeout:g} s)"
    failed = [x for x in r.stdout.decode(errors="replace").splitlines() if x.startswith("FAILED")]
    return r.returncode == 0, time.perf_counter() - t0, (failed[0][7:] if failed else "")


def copy_tree(dest: Path) -> Path:
    keep = ("charlm", "tests", "corpora", "benchmarks", "base")
    for name in keep:
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "ARCHITECTURE.md", "Makefile",
                 "constraints.txt"):  # fmt: skip
        shutil.copy2(ROOT / name, dest / name)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--auto", action="store_true", help="also generated mutants")
    ap.add_argument("--auto-only", action="store_true", help="only generated mutants")
    ap.add_argument("--sample", type=int, default=12, help="generated mutants a module (0=all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="", help="mutants whose name or path holds this")
    ap.add_argument("--timeout", type=float, default=120, help="seconds; past it = killed")
    ap.add_argument("--list", action="store_true", help="print the mutants, run nothing")
    args = ap.parse_args()

    mutants = [] if args.auto_only else list(LISTED)
    if args.auto or args.auto_only:
        rng = random.Random(args.seed)
        for path, tests in AUTO_MODULES.items():
            found = generated(path, tests)
            n = len(found) if args.sample == 0 else min(args.sample, len(found))
            mutants += sorted(rng.sample(found, n), key=lambda m: m.name)
    mutants = [m for m in mutants if args.only in m.name or args.only in m.path]
    if args.list:
        for m in mutants:
            print(f"{m.name}\t{m.path}\t{' '.join(m.tests)}")
        return

    rows = []
    with tempfile.TemporaryDirectory(prefix="charlm-mutants-") as tmp:
        work = copy_tree(Path(tmp))
        baseline: dict[tuple[str, ...], bool] = {}  # the tests pass on the code as it is
        for k, m in enumerate(mutants, 1):
            if m.tests not in baseline:
                baseline[m.tests] = run_tests(work, m.tests, args.timeout)[0]
            if not baseline[m.tests]:
                rows.append((m, "tests fail unmutated", 0.0))
                print(f"[{k}/{len(mutants)}] tests fail unmutated: {m.name}", file=sys.stderr)
                continue
            original = apply(work, m)
            try:
                passed, took, by = run_tests(work, m.tests, args.timeout)
            finally:
                (work / m.path).write_text(original, encoding="utf-8")
            verdict = "SURVIVED" if passed else "killed"
            if passed and m.name in EQUIVALENT:
                verdict = "equivalent"
            rows.append((m, verdict, took))
            print(f"[{k}/{len(mutants)}] {verdict:10s} {m.name} ({took:.0f} s) {by[:90]}",
                  file=sys.stderr)  # fmt: skip

    print("| mutant | file | verdict | tests | s |\n|---|---|---|---|---|")
    for m, verdict, took in rows:
        tests = ", ".join(t.split("/")[-1] for t in m.tests)
        print(f"| {m.name} | {m.path} | {verdict} | {tests} | {took:.0f} |")
    for group in ("listed", "generated"):
        sel = [(m, v) for m, v, _ in rows if (m in LISTED) == (group == "listed")]
        counted = [v for _, v in sel if v != "equivalent"]
        if counted:
            survived = counted.count("SURVIVED")
            print(
                f"\n{group}: {len(sel)} mutants, {len(sel) - len(counted)} equivalent, "
                f"{survived} of {len(counted)} survived ({survived / len(counted):.0%})"
            )
    for m, v, _ in rows:
        if v == "equivalent":
            print(f"- equivalent: {m.name}: {EQUIVALENT[m.name]}")


if __name__ == "__main__":
    main()
