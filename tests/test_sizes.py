"""Sizes held by a test, beside the layering test: no class over 220 lines, no function body
over 60, no module over 400, so the house does not fill up again.

The rooms that were already over when the rule came are listed in KNOWN with their size then:
each may shrink (lower its entry when it does) but not grow, and nothing new may join them."""

from __future__ import annotations

import ast

from .test_layers import PACKAGE, all_modules

MAX_CLASS, MAX_FUNCTION, MAX_MODULE = 220, 60, 400

# (kind, where) -> lines when the rule came (2026-12-08); splitting them is open work
KNOWN = {
    ("module", "charlm.training.setup"): 461,
    ("module", "charlm.scoring.kneser_ney"): 404,
    ("class", "charlm.scoring.kneser_ney.KneserNey"): 342,
    ("class", "charlm.training.loop.Trainer"): 270,
    ("class", "charlm.api.LanguageModel"): 222,
    ("class", "charlm.generation.form.constraint.FormConstraint"): 226,
    ("class", "charlm.generation.form.free_lines.RhymeLines"): 225,
    ("function", "charlm.training.loop.Trainer.run"): 76,
    ("function", "charlm.training.setup._prepare_new"): 61,
}


def _span(node: ast.AST) -> int:
    return node.end_lineno - node.lineno + 1


def _body(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """A function's body in lines, its docstring left out (a signature and a docstring say
    what it does; the body is what a reader has to hold)."""
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:] or body
    return body[-1].end_lineno - body[0].lineno + 1


def offenders(source: str, module: str) -> dict[tuple[str, str], int]:
    """Every class, function body and the module itself over its limit, with its size."""
    tree = ast.parse(source)
    out: dict[tuple[str, str], int] = {}
    n = len(source.splitlines())
    if n > MAX_MODULE:
        out[("module", module)] = n

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                name = f"{prefix}.{child.name}"
                if _span(child) > MAX_CLASS:
                    out[("class", name)] = _span(child)
                visit(child, name)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}.{child.name}"
                if _body(child) > MAX_FUNCTION:
                    out[("function", name)] = _body(child)
                visit(child, name)

    visit(tree, module)
    return out


def test_no_room_grows_and_none_joins_them():
    found: dict[tuple[str, str], int] = {}
    for module, path in all_modules(PACKAGE).items():
        found.update(offenders(path.read_text(encoding="utf-8"), module))
    new = {k: v for k, v in found.items() if k not in KNOWN}
    grown = {k: (KNOWN[k], v) for k, v in found.items() if k in KNOWN and v > KNOWN[k]}
    assert not new, f"over the limits (class {MAX_CLASS}, function {MAX_FUNCTION}, module " \
                    f"{MAX_MODULE} lines): {new}; split it"  # fmt: skip
    assert not grown, f"grew past their size when the rule came (was, now): {grown}"
    gone = sorted(k for k in KNOWN if k not in found)
    assert not gone, f"now within the limits, take them off KNOWN: {gone}"
    shrunk = {k: (KNOWN[k], v) for k, v in found.items() if k in KNOWN and v < KNOWN[k]}
    assert not shrunk, f"smaller now (was, now): lower their KNOWN entries: {shrunk}"


def test_the_rule_catches_a_planted_offender():
    def fn(n: int) -> str:
        return "def f():\n" + "".join(f"    x{i} = {i}\n" for i in range(n))

    long_fn = fn(61)
    big_class = "class C:\n" + "".join(f"    a{i} = {i}\n" for i in range(220))
    assert offenders(long_fn, "m") == {("function", "m.f"): 61}
    assert offenders(big_class, "m") == {("class", "m.C"): 221}
    assert ("module", "m") in offenders("\n".join(["x = 1"] * 401), "m")
    assert offenders(fn(60), "m") == {}
