#!/usr/bin/env python3
"""The walk a command takes through charlm's modules: which modules it visits, in order, and
how often control comes back to a module it already left (a reader following the path has to
reopen that file). Each Python call into charlm code is traced (sys.setprofile); a run of calls
within one module counts once; module bodies (imports) are left out.

    .venv/bin/python benchmarks/walk.py generate --checkpoint zh --form 七言绝句 --seed 1
    PYTHONPATH=/path/to/old/checkout .venv/bin/python benchmarks/walk.py generate ...

Prints the modules in the order first visited, the number of distinct modules, of module
changes, and of returns to a module already left (the first step of generation, and the
prefix read, are all the same path as later steps: the walk is counted over the whole run).
"""

from __future__ import annotations

import sys


def main() -> None:
    import charlm
    from charlm.cli import app

    root = charlm.__file__.rsplit("/", 1)[0]
    order: list[str] = []
    seen: set[str] = set()
    changes = returns = 0
    edges: set[tuple[str, str]] = set()
    current = [""]

    def profile(frame, event, _arg) -> None:
        nonlocal changes, returns
        if event != "call":
            return
        path = frame.f_code.co_filename
        if not path.startswith(root) or frame.f_code.co_name == "<module>":
            return  # imports are not the walk a reader follows
        mod = path[len(root) - len("charlm") :].removesuffix(".py").replace("/", ".")
        if mod == current[0]:
            return
        if current[0]:
            changes += 1
            if mod in seen:
                returns += 1
            edges.add((current[0], mod))
        current[0] = mod
        if mod not in seen:
            seen.add(mod)
            order.append(mod)

    sys.setprofile(profile)
    try:
        app(sys.argv[1:], standalone_mode=False)
    finally:
        sys.setprofile(None)
    back = sum(1 for a, b in edges if order.index(b) < order.index(a))
    walk = " -> ".join(m.removeprefix("charlm.") for m in order)
    print(f"modules visited ({len(order)}): {walk}", file=sys.stderr)
    print(f"| distinct modules | module changes | returns to a module left | distinct edges "
          f"back |\n|---|---|---|---|\n| {len(order)} | {changes:,} | {returns:,} | {back} |",
          file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main()
