"""The package's layers point one way: a module imports only its own layer or those below it,
and no chain of imports (function-level ones included) comes back to where it started."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "charlm"

# Bottom to top. A module may import modules of its own layer (without a cycle) or lower ones.
LAYERS = [
    ("charlm.version", "charlm.errors", "charlm.config"),
    ("charlm.system",),
    ("charlm.data",),
    ("charlm.models",),
    ("charlm.scoring",),
    ("charlm.generation",),
    ("charlm.store",),
    ("charlm.training",),
    ("charlm.api",),
    ("charlm.serve",),
    ("charlm.cli",),
    ("charlm", "charlm.__main__"),  # the package face
]


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """charlm modules `path` imports, at any depth of the file (function-level too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from charlm.store import checkpoint` imports the module charlm.store.checkpoint
            names = [f"{node.module}.{a.name}" for a in node.names]
            names = [n if n in known else node.module for n in names]
        else:
            continue
        found.update(n for n in names if n in known)
    return found


def layer_of(module: str) -> int:
    best, best_len = None, -1
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    if best is None:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")
    return best


def graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    mods = all_modules(root)
    known = set(mods)
    return {m: imports_of(p, known) - {m} for m, p in mods.items()}


def upward_imports(g: dict[str, set[str]]) -> list[str]:
    return [
        f"{m} -> {d}"
        for m, deps in sorted(g.items())
        for d in sorted(deps)
        if layer_of(d) > layer_of(m) and not m.startswith(d + ".")
    ]


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first search (each reported once, from its first node)."""
    found, state = [], {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = "open"
        for d in sorted(g.get(m, ())):
            if state.get(d) == "open":
                found.append([*path[path.index(d) :], d])
            elif d not in state:
                visit(d, [*path, d])
        state[m] = "done"

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    return found


def test_every_module_belongs_to_a_layer():
    for m in all_modules():
        layer_of(m)


def test_imports_point_down():
    assert upward_imports(graph()) == []


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_every_module_has_a_docstring():
    missing = [m for m, p in all_modules().items()
               if ast.get_docstring(ast.parse(p.read_text(encoding="utf-8"))) is None]  # fmt: skip
    assert missing == []


@pytest.mark.parametrize(
    ("importer", "imported", "rule"),
    [
        ("data/vocab.py", "from charlm.cli import app", "upward"),  # data -> cli
        ("models/state.py", "def f():\n    from charlm.models import charrnn", "cycle"),
    ],
)
def test_the_checks_catch_a_bad_import(tmp_path, importer, imported, rule):
    """The checks are not vacuous: one added import, upward or closing a loop, fails them."""
    import shutil

    copy = tmp_path / "charlm"
    shutil.copytree(PACKAGE, copy)
    target = copy / importer
    target.write_text(target.read_text(encoding="utf-8") + "\n" + imported + "\n")
    g = graph(copy)
    if rule == "upward":
        assert upward_imports(g)
    else:
        assert cycles(g)
