"""Rhyme groups and tones of Chinese characters, from their pinyin (pypinyin).

Two rhyme tables: 十三辙 (the thirteen rhymes of Peking opera and of popular song lyrics, the
default) and 中华新韵 (the fourteen groups of 《中华新韵（十四韵）》, 中华诗词学会 2005). A
group is a set of pinyin finals; 知/吃/诗/日/资/雌/思's final "-i" is its own final ("-i"),
which 十三辙 files under 一七 and 中华新韵 under its own group 支.

For generation a character counts as rhyming with a group only if *every* reading it has is in
that group (多音字 such as 了 le/liǎo, 着 zhe/zháo/zhuó, 还 hái/huán fill no slot whose group is not
all of their readings), and as level (平: tones 1-2) or oblique (仄: tones 3-4) only if every
toned reading is. "Every reading" means the readings in current use: the character's default
reading and every reading pypinyin's phrase table gives it in a word; archaic readings found
only in the character dictionary (家 gū, 月 rù, 女 rǔ) are left out, or no common character would
qualify. A character in no word of the table (rare, or in traditional script) keeps all its
dictionary readings: unsure, it qualifies less often. `scan` reads a line's last character in
context instead (pypinyin's phrase table chooses the reading), as a reader would."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np

THIRTEEN = "十三辙"
XINYUN = "中华新韵"

# group name -> finals, as pypinyin writes them in strict mode (ü as v); "-i" is the
# apical vowel after zh ch sh r z c s.
TABLES: dict[str, dict[str, tuple[str, ...]]] = {
    THIRTEEN: {
        "发花": ("a", "ia", "ua"),
        "梭波": ("o", "e", "uo"),
        "乜斜": ("ie", "ve", "ê"),
        "一七": ("i", "v", "-i", "er"),
        "姑苏": ("u",),
        "怀来": ("ai", "uai"),
        "灰堆": ("ei", "uei", "ui"),
        "遥条": ("ao", "iao"),
        "由求": ("ou", "iou", "iu"),
        "言前": ("an", "ian", "uan", "van"),
        "人辰": ("en", "in", "uen", "un", "vn"),
        "江阳": ("ang", "iang", "uang"),
        "中东": ("eng", "ing", "ueng", "ong", "iong"),
    },
    XINYUN: {
        "麻": ("a", "ia", "ua"),
        "波": ("o", "e", "uo"),
        "皆": ("ie", "ve", "ê"),
        "开": ("ai", "uai"),
        "微": ("ei", "uei", "ui"),
        "豪": ("ao", "iao"),
        "尤": ("ou", "iou", "iu"),
        "寒": ("an", "ian", "uan", "van"),
        "文": ("en", "in", "uen", "un", "vn"),
        "唐": ("ang", "iang", "uang"),
        "庚": ("eng", "ing", "ueng", "ong", "iong"),
        "齐": ("i", "er", "v"),
        "支": ("-i",),
        "姑": ("u",),
    },
}
APICAL_INITIALS = frozenset({"zh", "ch", "sh", "r", "z", "c", "s"})
LEVEL, OBLIQUE = "平", "仄"
CONTEXT = 4  # characters at a line's end read together (3 gave the same groups, 2 did not)
BATCH = 4096  # line ends read in one pypinyin call (a call costs about as much as 4 characters)


@dataclass(frozen=True)
class Reading:
    final: str  # "-i" for the apical vowel
    tone: int  # 1-4; 0 = neutral


def _reading(syllable: str) -> Reading:
    from pypinyin import Style
    from pypinyin.style import convert

    initial = convert(syllable, Style.INITIALS, True)
    final = convert(syllable, Style.FINALS, True)
    tone3 = convert(syllable, Style.TONE3, True)
    if final == "i" and initial in APICAL_INITIALS:
        final = "-i"
    return Reading(final, int(tone3[-1]) if tone3[-1:].isdigit() else 0)


@lru_cache(maxsize=1)
def _readings_in_words() -> dict[str, set[str]]:
    """Character -> the readings pypinyin's phrase table uses it with (0.3 s, once)."""
    from pypinyin.phrases_dict import phrases_dict

    used: dict[str, set[str]] = {}
    for phrase, syllables in phrases_dict.items():
        if len(phrase) == len(syllables):
            for ch, options in zip(phrase, syllables, strict=True):
                used.setdefault(ch, set()).add(options[0])
    return used


@cache
def readings(ch: str) -> tuple[Reading, ...]:
    """The readings in current use of one character (none for a non-Chinese one): its
    default reading and those the phrase table uses, in a fixed order."""
    from pypinyin.pinyin_dict import pinyin_dict

    if len(ch) != 1:
        return ()
    known = pinyin_dict.get(ord(ch))
    if not known:
        return ()
    default, *others = known.split(",")
    in_words = _readings_in_words().get(ch)
    if in_words is None:  # in no word of the table (rare, or traditional script): all of them
        return tuple(_reading(s) for s in [default, *others])
    return tuple(_reading(s) for s in [default] + [o for o in others if o in in_words])


def tone_class(tone: int) -> str | None:
    return LEVEL if tone in (1, 2) else OBLIQUE if tone in (3, 4) else None


class RhymeBook:
    """One rhyme table: characters and finals to groups, tones to 平/仄."""

    def __init__(self, table: str = THIRTEEN) -> None:
        if table not in TABLES:
            raise ValueError(table)
        self.table = table
        self.groups = list(TABLES[table])  # group index -> name
        self._of_final = {f: g for g, finals in TABLES[table].items() for f in finals}

    def group_of_final(self, final: str) -> str | None:
        return self._of_final.get(final)

    def strict_group(self, ch: str) -> str | None:
        """The group every reading of `ch` is in; None when they differ or it has none."""
        groups = {self.group_of_final(r.final) for r in readings(ch)}
        return groups.pop() if len(groups) == 1 and None not in groups else None

    def strict_tone(self, ch: str) -> str | None:
        """平 or 仄 when every toned reading of `ch` is; None otherwise."""
        classes = {tone_class(r.tone) for r in readings(ch) if r.tone}
        return classes.pop() if len(classes) == 1 else None

    def group_named(self, name_or_char: str) -> str | None:
        """A group by name (江阳, 阳 for 江阳, ...) or by a character that rhymes in it."""
        if name_or_char in self.groups:
            return name_or_char
        partial = [g for g in self.groups if name_or_char and name_or_char in g]
        if len(partial) == 1 and len(name_or_char) > 1:
            return partial[0]
        if len(name_or_char) == 1:
            return self.strict_group(name_or_char)
        return None

    def line_end_groups(self, lines: list[str]) -> list[str | None]:
        """The rhyme group of each line's last Chinese character, read in context."""

        keys = []
        for line in lines:
            # the line's last CONTEXT readable characters: enough for the phrase table to
            # choose the last one's reading (the same groups as the whole line on 36k lines of
            # Jay Chou and the Tang poems), so a long text costs its lines, not its characters
            chars: list[str] = []
            for c in reversed(line):
                if readings(c):
                    chars.append(c)
                    if len(chars) == CONTEXT:
                        break
            keys.append("".join(reversed(chars)))
        # a last character whose readings share one final needs no context (most do)
        finals = {k: f for k in keys if k and (f := _one_final(k[-1])) is not None}
        finals.update(_last_finals(sorted({k for k in keys if k and k not in finals})))
        return [self.group_of_final(finals[k]) if finals.get(k) else None for k in keys]


@cache
def _one_final(ch: str) -> str | None:
    """The final every reading in use of `ch` has, or None when they differ (多音字)."""
    finals = {r.final for r in readings(ch)}
    return finals.pop() if len(finals) == 1 else None


def _last_finals(keys: list[str]) -> dict[str, str]:
    """Each key's last character's final, read in the context of the key: BATCH keys a
    pypinyin call, joined by line breaks (pypinyin's phrases never cross one)."""
    from pypinyin import Style, pinyin

    out: dict[str, str] = {}
    for at in range(0, len(keys), BATCH):
        chunk = keys[at : at + BATCH]
        items = pinyin("\n".join(chunk), style=Style.TONE3, strict=True, errors="default")
        words: list[list[str]] = [[]]
        for (item,) in items:
            if item == "\n":
                words.append([])
            else:
                words[-1].append(item)
        for key, syllables in zip(chunk, words, strict=True):
            last = syllables[-1] if syllables else ""
            out[key] = _reading(last.rstrip("012345")).final if last else ""
    return out


@dataclass(frozen=True)
class VocabRhymes:
    """A vocabulary's characters by rhyme group and tone, as boolean masks over ids (V,)."""

    book: RhymeBook
    group_ids: np.ndarray  # (V,) index into book.groups of the strict group, -1 for none
    level: np.ndarray  # (V,) bool: every toned reading is level (平)
    oblique: np.ndarray  # (V,) bool: every toned reading is oblique (仄)
    chinese: np.ndarray  # (V,) bool: a character pypinyin reads

    @classmethod
    def of(cls, tokens: list[str], book: RhymeBook) -> VocabRhymes:
        index = {g: i for i, g in enumerate(book.groups)}
        groups = [book.strict_group(t) for t in tokens]
        tones = [book.strict_tone(t) for t in tokens]
        return cls(
            book,
            np.array([index[g] if g else -1 for g in groups], dtype=np.int64),
            np.array([t == LEVEL for t in tones]),
            np.array([t == OBLIQUE for t in tones]),
            np.array([bool(readings(t)) for t in tokens]),
        )

    def in_group(self, group: str) -> np.ndarray:
        return self.group_ids == self.book.groups.index(group)

    def group_of_id(self, i: int) -> str | None:
        g = int(self.group_ids[i])
        return self.book.groups[g] if g >= 0 else None
