"""A generation request: every option of `charlm generate`, its default, help and check,
declared once. The CLI, the Python API and the page build one, and `LanguageModel.prepare`
resolves its policy (length a line, the copy guard's default, prefix checks) in one place,
so the same request writes the same bytes from every front.

No torch here: the CLI builds its options from these fields while `--help` stays fast.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from charlm.config import SampleConfig
from charlm.data.corpus import unix_newlines
from charlm.errors import UsageError

DEFAULT_PREFIX = "分开"  # the textbook's prefix
DEFAULT_LENGTH = 200  # characters after the prefix; with --lines N, this many a line
# The copy guard's default span: on the Jay Chou model it cut copied 16-grams from 4.0 % to
# 0.6 % for 7-10 % in perplexity (docs/originality.md); 8 cost 39 %.
AUTO_MAX_COPY = 16
# ...on training texts up to this long: indexing the Tang poems (4M characters) cost 5.4 s
# and 270 MB a call (benchmarks/RESULTS.md, "Copy guard").
AUTO_MAX_COPY_CHARS = 1_000_000
RHYME_TABLES = ("十三辙", "中华新韵")
PRECISIONS = ("fp32", "bf16", "fp16")
# Caps a request from the page or the API may not pass (the CLI's own bounds are SampleConfig's)
TEMPLATE_MAX_CHARS = 100_000


def _opt(help: str, shown: str | None = None, choices: tuple[str, ...] = (), **more: Any) -> Any:
    """A field's metadata: its --help text (with the default as shown), its choices."""
    return {"help": help, "shown": shown, "choices": choices, **more}


@dataclass(frozen=True)
class GenerationRequest:
    """One generation, as a user asks for it (None: "not given", resolved by prepare).

    `template` is the template song's text (the CLI reads --template FILE into it)."""

    prefix: str | None = field(
        default=None, metadata=_opt("Text to continue; - reads it from stdin.", f"{DEFAULT_PREFIX}")
    )
    length: int | None = field(
        default=None,
        metadata=_opt(
            "Characters to generate after the prefix.",
            f"{DEFAULT_LENGTH}; with --lines N, {DEFAULT_LENGTH} a line",
        ),
    )
    temperature: float = field(default=0.8, metadata=_opt("0 = greedy; higher = wilder."))
    top_k: int = field(default=0, metadata=_opt("Sample from the k likeliest (0 = off)."))
    top_p: float = field(default=1.0, metadata=_opt("Nucleus sampling mass in (0, 1] (1 = off)."))
    seed: int | None = field(default=None, metadata=_opt("Same seed -> same text."))
    num_samples: int = field(default=1, metadata=_opt("Samples, generated as one batch."))
    lines: int = field(default=0, metadata=_opt("Stop once the text has N lines (0 = off)."))
    precision: str = field(
        default="fp32",
        metadata=_opt(
            "fp32, or bf16 / fp16: faster steps, logits differ in the 3rd decimal.",
            choices=PRECISIONS,
        ),
    )
    skip_unknown: bool = field(
        default=False,
        metadata=_opt("Drop prefix characters the model never saw.", flag="--skip-unknown"),
    )
    acrostic: str = field(
        default="",
        metadata=_opt("藏头诗: start line k with the k-th of these characters (one line each)."),
    )
    max_copy: int | None = field(
        default=None,
        metadata=_opt(
            "Never copy more than N training characters in a row (0 = off).",
            f"{AUTO_MAX_COPY} when the training text is at hand, else off",
        ),
    )
    report_novelty: bool = field(
        default=False,
        metadata=_opt(
            "Per sample: share of its 4/8/16-grams found in the training text, longest copy "
            "(stderr; in --json as novelty).",
            flag="--report-novelty",
        ),
    )
    adapt: bool | None = field(
        default=None,
        metadata=_opt(
            "Let the song return to its own lines (a cache of what it has written; loops are "
            "capped).",
            "on when the checkpoint has it",
            flag="--adapt/--no-adapt",
        ),
    )
    form: str = field(
        default="",
        metadata=_opt(
            "Line lengths, e.g. 7,7,7,7 (/ for a stanza break: 7,7/7,7), or a named form "
            "(七言绝句, 浣溪沙, ...; see --list-forms). The prefix starts the first line."
        ),
    )
    rhyme: str = field(
        default="",
        metadata=_opt(
            "A scheme letter per line (AABB; X = free; / between stanzas); lines with the same "
            "letter end in the same rhyme group. With --form, on its lines; alone, lines of the "
            "model's own length, ending on a rhyming word (English too)."
        ),
    )
    rhyme_with: str = field(
        default="",
        metadata=_opt(
            "The first rhyme's sound: a group name (江阳), a character (光), or an English word "
            "(night)."
        ),
    )
    rhyme_table: str = field(
        default="十三辙",
        metadata=_opt(
            "十三辙 (the rhymes of song lyrics) or 中华新韵 (the 14 groups of 2005).",
            choices=RHYME_TABLES,
        ),
    )
    template: str | None = field(
        default=None,
        metadata=_opt(
            "A song (FILE, or - for stdin) whose shape to copy: line lengths, stanzas, symbols, "
            "which lines rhyme.",
            metavar="FILE",
        ),
    )
    repeat_chorus: bool = field(
        default=False,
        metadata=_opt(
            "With --template: a line repeated there comes back repeated.", flag="--repeat-chorus"
        ),
    )
    line_candidates: int = field(
        default=0,
        metadata=_opt(
            "With a form: draw N candidate lines and keep the likeliest (0 = 2, or 1 for a "
            "named form; more is more fluent and slower)."
        ),
    )
    loop_guard: bool = field(default=True, metadata=_opt(
        "No character 4 times in a row, no phrase looping within a line.",
        flag="--loop-guard/--no-loop-guard"))  # fmt: skip

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_type(f.name, getattr(self, f.name), f.type, f.default)
        if self.prefix is not None:  # line breaks as a file's are read (document_text)
            object.__setattr__(self, "prefix", unix_newlines(self.prefix))
        check_choice(self.form, self.template is not None)
        if self.template is not None:  # as a file is read (data.corpus.document_text)
            text = unix_newlines(self.template.removeprefix("\ufeff"))
            object.__setattr__(self, "template", text)
            if not self.template.strip():
                raise UsageError("--template is empty; give a song whose shape to copy")
            if len(self.template) > TEMPLATE_MAX_CHARS:
                raise UsageError(f"--template is over {TEMPLATE_MAX_CHARS:,} characters")
        if self.acrostic and 0 < self.lines < len(self.acrostic):
            raise UsageError(
                f"--lines {self.lines} is fewer than the {len(self.acrostic)} lines --acrostic "
                f"{self.acrostic} starts; drop --lines (an acrostic writes one line a head)"
            )
        if self.max_copy is not None and self.max_copy < 0:
            raise UsageError("--max-copy must be 0 or 2-64")
        self.sample_config(seed=0, max_copy=self.max_copy or 0)  # its bounds, checked now

    @classmethod
    def from_fields(cls, values: dict[str, Any]) -> GenerationRequest:
        """A request from a mapping (the API's keywords, the page's JSON): unknown names are a
        UsageError naming them, not a TypeError."""
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise UsageError(f"unknown generate option(s): {', '.join(unknown)}; known: "
                             f"{', '.join(f.name for f in fields(cls))}")  # fmt: skip
        return cls(**values)

    @property
    def line_count(self) -> int:
        """Lines the text stops at: --lines, else one a head of an acrostic (0 = no limit)."""
        return self.lines or len(self.acrostic)

    def sample_config(self, seed: int, max_copy: int) -> SampleConfig:
        """The resolved sampling configuration, with the seed and copy guard decided."""
        length = self.length
        if length is None:  # --lines asks for lines: the character cap must not cut them short
            length = DEFAULT_LENGTH * max(1, self.line_count)
        return SampleConfig(
            length=length, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
            lines=self.line_count, num_samples=self.num_samples, seed=seed,
            precision=self.precision, acrostic=self.acrostic, max_copy=max_copy,
            form=self.form, rhyme=self.rhyme, rhyme_with=self.rhyme_with,
            rhyme_table=self.rhyme_table, template=self.template or "",
            repeat_chorus=self.repeat_chorus, loop_guard=self.loop_guard,
            line_candidates=self.line_candidates,
        )  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        """The fields given a value other than their default (what a result records)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) != f.default}  # fmt: skip


def check_choice(form: str, template_given: bool) -> None:
    """--form and --template exclude each other: checked before a template file is read."""
    if form and template_given:
        raise UsageError("--form and --template: choose one")


def help_of(name: str) -> str:
    """A field's --help text with its default shown as click shows them."""
    meta = _field(name).metadata
    return meta["help"] + (f"  [default: {meta['shown']}]" if meta["shown"] else "")


def meta_of(name: str) -> dict[str, Any]:
    return dict(_field(name).metadata)


def _field(name: str):
    return next(f for f in fields(GenerationRequest) if f.name == name)


_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _check_type(name: str, value: Any, annotation: str, default: Any) -> None:
    """A value of the field's type (None only where None is its default): a wrong type from the
    API or the page is a UsageError here, not a failure from deep inside torch."""
    kind = annotation.split(" | ")[0]
    if value is None and (default is None or default is MISSING):
        return
    ok = isinstance(value, _TYPES[kind]) and (kind == "bool" or not isinstance(value, bool))
    if not ok:
        flag = "--" + name.replace("_", "-")
        want = {"int": "a whole number", "float": "a number", "str": "text",
                "bool": "true or false"}[kind]  # fmt: skip
        raise UsageError(f"{flag} must be {want}, not {value!r}")
