#!/usr/bin/env python3
"""Lyric form: is every line length and rhyme honoured, and what does it cost in fluency and time?

    .venv/bin/python benchmarks/form.py --checkpoint checkpoints/jay/best.pt --form 7,7,7,7 \\
        --rhyme AABB
    .venv/bin/python benchmarks/form.py --checkpoint checkpoints/tang/best.pt --form 七言绝句

For each method (unconstrained; the form by plain masking; with charlm's one-step lookahead
before restricted slots; and with best of 2 or 4 candidate lines), the same seeds, `--samples`
songs a seed:
  format        share of lines of the requested length (micro), of songs all right (macro)
                (SongNet's Format accuracy; unconstrained text is cut into lines as written)
  rhyme         share of rhyme slots whose character is in the letter's group (strict readings)
  ppl model     perplexity of the generated characters under the checkpoint (mixture)
  ppl counts    and under its Kneser-Ney count model alone
  wall          seconds to generate them all (the fastest of --repeats), and that over the
                unconstrained text's
Then templates: `--templates` songs of 8 lines cut from the held-out split; scheme fidelity =
share of the template's rhyming line pairs that rhyme in the output (as `scan` reads it), and
the rhyme rate (adjacent lines rhyming) of the held-out lyrics and of unconstrained text.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import charlm  # noqa: E402
from charlm.config import SampleConfig  # noqa: E402
from charlm.generation.form.layout import layout_for  # noqa: E402
from charlm.generation.form.rhyme import RhymeBook  # noqa: E402
from charlm.generation.form.scan import scan  # noqa: E402
from charlm.scoring.evaluate import EvalResult  # noqa: E402
from charlm.scoring.mixture import kn_logprobs  # noqa: E402


def generate(lm, seeds, samples, repeats: int = 1, **kw) -> tuple[list[str], float]:
    """The texts, and the fastest of `repeats` timings (the machine is shared: other work only
    ever slows a run down; the texts are the same each time)."""
    best = float("inf")
    for _ in range(repeats):
        t0, texts = time.perf_counter(), []
        for seed in seeds:
            cfg = SampleConfig(seed=seed, num_samples=samples, **kw)
            out = [""] * samples
            for pieces in lm.stream("", cfg):
                out = [t + p for t, p in zip(out, pieces, strict=True)]
            texts += out
        best = min(best, time.perf_counter() - t0)
    return texts, best


def perplexities(lm, texts: list[str]) -> tuple[float, float | None]:
    """(under the checkpoint, under its count model alone) of the generated characters."""
    ids = torch.from_numpy(lm.vocab.encode("\n" + "\n".join(texts)).astype("int64"))
    model = lm.score(ids)["perplexity"]
    if lm.mixture is None:
        return model, None
    counts = EvalResult.from_logprobs(kn_logprobs(lm.mixture.kn, ids), ids[1:]).perplexity
    return model, counts


def form_scores(texts: list[str], layout, book: RhymeBook) -> tuple[float, float, float]:
    want = layout.lengths
    lines_ok = songs_ok = slots = rhymed = 0
    for text in texts:
        lines = [ln for ln in text.split("\n") if ln][: len(want)]
        good = [len(a) == b for a, b in zip(lines, want, strict=False)]
        lines_ok += sum(good)
        songs_ok += len(lines) == len(want) and all(good)
        groups: dict[str, str | None] = {}
        for line, spec in zip(lines, layout.lines, strict=False):
            if spec.rhyme == "X" or not line:
                continue
            g = book.strict_group(line[-1])
            slots += 1
            first = groups.setdefault(spec.rhyme, g)
            rhymed += g is not None and g == first
    return lines_ok / (len(want) * len(texts)), songs_ok / len(texts), rhymed / max(slots, 1)


def held_out_songs(lm, n: int, size: int = 8) -> list[str]:
    split = lm.corpus_split(None, "val")
    unk = lm.vocab.tokens[0]  # characters the model never saw: such a line is no template
    text = "".join(lm.vocab.tokens[i] for i in split.ids.tolist())
    lines = [ln.strip() for ln in text.split("\n") if 4 <= len(ln.strip()) <= 20 and unk not in ln]
    return ["\n".join(lines[i : i + size]) + "\n" for i in range(0, size * n, size)][:n]


def fidelity(template: str, out: str, book: RhymeBook) -> tuple[int, int]:
    want = book.line_end_groups([ln for ln in template.split("\n") if ln.strip()])
    got = book.line_end_groups([ln for ln in out.split("\n") if ln.strip()])
    pairs = [(i, j) for i, j in itertools.combinations(range(len(want)), 2)
             if want[i] is not None and want[i] == want[j]]  # fmt: skip
    kept = sum(i < len(got) and j < len(got) and got[i] is not None and got[i] == got[j]
               for i, j in pairs)  # fmt: skip
    return kept, len(pairs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--form", default="7,7,7,7")
    p.add_argument("--rhyme", default="")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--templates", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3, help="wall = the fastest of this many")
    args = p.parse_args()
    lm = charlm.load(args.checkpoint, device="cpu")
    book = RhymeBook()
    layout = layout_for(args.form, args.rhyme, "", book)
    seeds = range(args.seeds)
    n_chars = sum(layout.lengths) + layout.breaks()
    print(f"{args.checkpoint}: --form {args.form} {('--rhyme ' + args.rhyme) if args.rhyme else ''}"
          f" ({layout.scheme}), {args.seeds} seeds x {args.samples} songs")  # fmt: skip
    print("| method | format (lines / songs) | rhyme slots | ppl model | ppl counts | wall s | "
          "x free |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    free_kw = {"lines": layout.breaks(), "length": n_chars}
    form = {"form": args.form, "rhyme": args.rhyme}
    runs = {
        "unconstrained": free_kw,
        "form, plain masking": {**form, "lookahead": False, "line_candidates": 1},
        "form, lookahead, 1 line (a named form's default)": {**form, "line_candidates": 1},
        "form, lookahead, best of 2 (line lengths' default)": {**form, "line_candidates": 2},
        "form, lookahead, best of 4": {**form, "line_candidates": 4},
    }
    free_wall = None
    for name, kw in runs.items():
        texts, wall = generate(lm, seeds, args.samples, args.repeats, **kw)
        free_wall = free_wall or wall
        lines, songs, rhyme = form_scores(texts, layout, book)
        ppl, counts = perplexities(lm, texts)
        shown = f"{counts:.1f}" if counts else "-"
        print(f"| {name} | {lines:.1%} / {songs:.1%} | {rhyme:.1%} | {ppl:.1f} | {shown} | "
              f"{wall:.2f} | {wall / free_wall:.2f} |")  # fmt: skip
    if not args.templates:
        return
    templates = held_out_songs(lm, args.templates)
    kept = total = 0
    t_wall = time.perf_counter()
    outs = []
    for i, tpl in enumerate(templates):
        out = lm.generate_text("", template=tpl, seed=i)
        outs.append(out)
        k, n = fidelity(tpl, out, book)
        kept, total = kept + k, total + n
    t_wall = time.perf_counter() - t_wall
    real = scan("\n".join(templates), book)["rhyme_rate"]
    free, _ = generate(lm, range(args.templates), 1, lines=8, length=200)
    print(
        f"\ntemplates from the held-out split: scheme fidelity {kept}/{total} "
        f"({kept / max(total, 1):.1%}), {t_wall:.1f} s; adjacent lines rhyming: held-out "
        f"{real:.1%}, unconstrained text {scan(chr(10).join(free), book)['rhyme_rate']:.1%}"
    )
    print("\nfirst template and its song:")
    for a, b in zip(templates[0].splitlines(), outs[0].splitlines(), strict=False):
        print(f"    {a:<22}{b}")


if __name__ == "__main__":
    main()
