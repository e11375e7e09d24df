"""The docs hold: README stays a five-minute read, every link and every file path named in the
docs resolves, and every option a `charlm` command line in them uses exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import typer

from charlm.cli import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", ROOT / "benchmarks" / "RESULTS.md",
         *sorted((ROOT / "docs").glob("*.md"))]  # fmt: skip
README_MAX_LINES = 300
# what a path in backticks starts with when it names a file of this repository
REPO_PATH = re.compile(r"^(charlm|tests|benchmarks|docs|base|corpora)/[\w./-]*[\w/]$")


def test_readme_is_a_five_minute_read():
    n = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines; move topics to docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_and_paths_resolve(page):
    text = page.read_text(encoding="utf-8")
    missing = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a URL or an anchor of the same page
        path = target.split("#")[0]
        if not (page.parent / path).exists():
            missing.append(target)
    for path in re.findall(r"`([^`\s]+)`", text):
        if REPO_PATH.match(path) and "*" not in path and not (ROOT / path).exists():
            missing.append(path)
    assert not missing, f"{page.name} names what is not there: {sorted(set(missing))}"


def options_of() -> dict[str, set[str]]:
    """Each command's (and subcommand's) options: `train` -> {"--corpus", ...}."""
    root = typer.main.get_command(app)
    out: dict[str, set[str]] = {}

    def walk(cmd: click.Command, name: str) -> None:
        out[name] = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
        out[name] |= {"--help"}
        for sub_name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{name} {sub_name}".strip())

    walk(root, "")
    return out


def charlm_lines(text: str) -> list[str]:
    """Every `charlm ...` command line of the page: in code blocks and inline code."""
    blocks = re.findall(r"```(?:sh|text)?\n(.*?)```", text, flags=re.S)
    lines = [ln for b in blocks for ln in b.replace("\\\n", " ").splitlines()]
    lines += re.findall(r"`(charlm [^`]+)`", text)
    out = []
    for ln in lines:
        for part in re.split(r"\|\||&&|[|;]", ln.split(" #")[0]):
            at = part.find("charlm ")
            if at >= 0 and (at == 0 or part[at - 1] in " =$("):
                out.append(part[at:].strip())
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_option_named_exists(page):
    known = options_of()
    wrong = []
    for line in charlm_lines(page.read_text(encoding="utf-8")):
        try:
            words = shlex.split(line)
        except ValueError:
            words = line.split()
        words = words[1:]
        cmd = ""
        while words and f"{cmd} {words[0]}".strip() in known:
            cmd = f"{cmd} {words.pop(0)}".strip()
        for w in words:
            flag = w.split("=")[0]
            if re.fullmatch(r"--[a-z][a-z0-9-]*", flag) and flag not in known[cmd]:
                wrong.append(f"charlm {cmd} {flag}")
    assert not wrong, f"{page.name}: options that do not exist: {sorted(set(wrong))}"


def test_the_module_map_names_every_module_once():
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    table = text[text.index("\n## Modules\n") :]
    named: list[str] = []
    for row in table.splitlines():
        if row.startswith("| `"):
            named += re.findall(r"`([\w/]+\.py)`", row.split("|")[1])
    pkg = ROOT / "charlm"
    modules = sorted(str(p.relative_to(pkg)) for p in pkg.rglob("*.py")
                     if p.name not in ("__init__.py", "__main__.py"))  # fmt: skip
    twice = sorted({m for m in named if named.count(m) > 1})
    assert not twice, f"named more than once in ARCHITECTURE.md's module map: {twice}"
    assert sorted(set(named) - set(modules)) == [], "the map names modules that are not there"
    assert sorted(set(modules) - set(named)) == [], "modules missing from ARCHITECTURE.md's map"
