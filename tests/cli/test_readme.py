"""README's Tutorial and Use blocks, then the docs pages' (in DOCS' order), run as a user
would: each ```sh block in bash, in the order they appear, in one folder, with `charlm` from
this environment on PATH.

Two changes keep it to seconds: every `charlm train` gets a tiny model and a step limit
(TINY, placed before the README's own options, so those still win), and the corpora the
blocks name are tiny files made here. Lines that install charlm (`pipx install`, `pip
install`) or activate .venv are left out: PATH has this environment's charlm already, and
`make demo` in a fresh clone exercises installation. `--install-completion` is run as
`--show-completion`, which detects the shell the same way but edits no start-up file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ..conftest import LINES

README = Path(__file__).resolve().parents[2] / "README.md"
TINY = ("--hidden 32 --embed 16 --layers 1 --batch-size 8 --seq-len 16 --eval-every 6 "
        "--kn-order 3 --max-steps {steps}")  # fmt: skip
TINY_TUNE = "--batch-size 4 --seq-len 16 --eval-every 3 --kn-order 3 --max-steps 3"  # base's size
# 春夏秋冬 for the acrostic; no 火 or 星, so the script's exit-3 branch runs
EXTRA_LINES = ["春夏秋冬四季歌", "我们的爱情在天空", "月光照在窗台上"]  # 光: --rhyme-with
JAY = "../shared/corpora/jaychou_lyrics.txt.zip"
ROOT = README.parent
# the topic pages, in the order a reader of the old one-page README met them
DOCS = ["corpus-and-model", "training", "base", "lyric-form", "originality", "adaptation",
        "serve", "python-api", "shell", "scaling", "development"]  # fmt: skip


def sh_blocks(section: str) -> list[str]:
    """The ```sh blocks of one `## ` section of README."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end > 0 else None]
    return re.findall(r"```sh\n(.*?)```", body, flags=re.S)


def doc_blocks(name: str) -> list[str]:
    text = (ROOT / "docs" / f"{name}.md").read_text(encoding="utf-8")
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def test_every_docs_page_is_run_in_order():
    assert sorted(DOCS) == sorted(p.stem for p in (ROOT / "docs").glob("*.md"))


def runnable(block: str) -> str:
    """The block with installs left out and training made tiny."""
    lines = []
    for line in block.splitlines():
        if re.match(r"\s*(pipx install|python -m pip install|source \.venv)", line):
            continue
        # installing edits the user's shell start-up files: show what it would install
        line = line.replace("charlm --install-completion", "charlm --show-completion")
        if "charlm train" in line:
            steps = 24 if "--resume" in line else 12
            tiny = TINY_TUNE if "--init-from" in line else TINY.format(steps=steps)
            line = line.replace("charlm train", "charlm train " + tiny)
        lines.append(line.replace(JAY, "my_lyrics.zip"))
    # bash runs a script's last command in its own process (exec): completion would then
    # see pytest's parents, not bash. A last no-op keeps every command a child of bash.
    return "\n".join([*lines, ":"]) + "\n"


def make_corpora(root: Path) -> None:
    lines = LINES + EXTRA_LINES
    text = "".join(lines[(i * 7) % len(lines)] + "\n" for i in range(40 * len(lines)))
    (root / "lyrics.txt").write_text(text, encoding="utf-8")
    (root / "gbk_lyrics.txt").write_bytes(text.encode("gb18030"))
    folder = root / "lyrics_folder"
    folder.mkdir()
    half = len(text) // 2
    (folder / "a.txt").write_text(text[:half], encoding="utf-8")
    (folder / "b.txt").write_text(text[half:], encoding="utf-8")
    # the form section's template: two stanzas, a repeated line, a space
    song = f"{LINES[0]}\n{LINES[2]}\n\n{LINES[1]} 唱歌\n{LINES[0]}\n"
    (root / "my_song.txt").write_text(song, encoding="utf-8")
    # the English block's corpus: verse that rhymes (Jane Taylor, 1806, and lines of ours)
    english = (
        "Twinkle, twinkle, little star,\nHow I wonder what you are!\n"
        "Up above the world so high,\nLike a diamond in the sky.\n\n"
        "When the night is cold and the light is gone\nI sing my song until the dawn\n"
        "You were true to me, my love\nLike the stars that shine above\n\n"
    )
    (root / "my_english_lyrics.txt").write_text(english * 60, encoding="utf-8")
    (root / "my_english_song.txt").write_text(english.split("\n\n")[0] + "\n", encoding="utf-8")
    with zipfile.ZipFile(root / "my_lyrics.zip", "w") as z:
        z.writestr("songs/one.txt", text[:half])
        z.writestr("songs/two.txt", text[half:])


@pytest.mark.slow
def test_the_tutorial_and_use_blocks_run(tmp_path):
    make_corpora(tmp_path)
    bindir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARLM_")}
    env.update(PATH=bindir + os.pathsep + env.get("PATH", ""), HOME=str(tmp_path),
               NO_COLOR="1", SHELL="/bin/bash")  # fmt: skip
    blocks = sh_blocks("Tutorial") + sh_blocks("Use") + [b for d in DOCS for b in doc_blocks(d)]
    assert len(blocks) >= 8
    outputs = []
    for block in blocks:
        script = runnable(block)
        # -x: the trace on stderr shows which command failed
        r = subprocess.run(["bash", "-e", "-x", "-o", "pipefail", "-c", script], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
        assert r.returncode == 0, (
            f"{script}\n--- stdout:\n{r.stdout[-1500:]}\n--- stderr:\n{r.stderr[-3000:]}"
        )
        outputs.append(r)
    ck = tmp_path / "checkpoints"
    for run in ("mine", "from-txt", "from-folder", "from-gbk", "jay"):
        assert (ck / run / "best.pt").is_file(), run
    assert not (ck / "from-stdin").exists()  # `charlm runs rm from-stdin --yes`
    assert "resume:" in "".join(o.stderr for o in outputs)  # the resume block resumed
    samples = [json.loads(x) for x in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [s["prefix"] for s in samples] == ["分开", "天空"]
    assert "火" in (tmp_path / "errors.log").read_text(encoding="utf-8")
    assert (tmp_path / "curves.png").stat().st_size > 10_000
