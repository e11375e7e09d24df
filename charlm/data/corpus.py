"""Read a corpus (zip, .txt, folder or stdin) into one normalised string.

No torch here: this module only turns bytes into text, and says clearly why when it cannot.
"""

from __future__ import annotations

import codecs
import hashlib
import re
import sys
import zipfile
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from charlm.errors import CheckpointError, DataError, UsageError

DEFAULT_MAX_CORPUS_BYTES = 512 * 1024 * 1024  # bigger corpora need --max-corpus-bytes
TEXT_SUFFIXES = (".txt", ".lrc", ".text")
_JUNK_PARTS = ("__MACOSX", ".DS_Store", "Thumbs.db")


@dataclass(frozen=True)
class CorpusOptions:
    """How to read a corpus; stored in checkpoints so `evaluate` can re-read the same text."""

    encoding: str | None = None  # None: strict UTF-8 (BOM removed), UTF-16 when it has a BOM
    newline: str = "keep"  # "keep" or "space" (the d2l textbook's treatment)
    max_chars: int = 0  # 0 = all; the textbook uses the first 10,000
    max_bytes: int = DEFAULT_MAX_CORPUS_BYTES

    def __post_init__(self) -> None:
        if self.newline not in ("keep", "space"):
            raise UsageError(f"--newline must be 'keep' or 'space', not {self.newline!r}")
        if self.max_chars < 0:
            raise UsageError("--max-chars must be >= 0 (0 means the whole corpus)")
        if self.max_bytes <= 0:
            raise UsageError("--max-corpus-bytes must be > 0")
        if self.encoding is not None:
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise UsageError(
                    f"--encoding {self.encoding!r} is not an encoding Python knows "
                    "(try utf-8, gb18030, big5, utf-16)"
                ) from None


@dataclass(frozen=True)
class Corpus:
    """Normalised text, where it came from, and notes about what was skipped."""

    text: str
    source: str
    fingerprint: str  # sha256 of the text, hex; ties checkpoints to their corpus
    notes: tuple[str, ...] = field(default=())


def fingerprint(text: str) -> str:
    """sha256 of the text's UTF-8, encoded a chunk at a time (no second full-size copy)."""
    h = hashlib.sha256()
    for i in range(0, len(text), 1 << 22):
        h.update(text[i : i + (1 << 22)].encode("utf-8"))
    return h.hexdigest()


_SURROGATE = re.compile("[\ud800-\udfff]")


def read_stdin_text(what: str) -> str:
    """All of stdin as text (see document_text), or a DataError naming `what`."""
    return document_text(sys.stdin.buffer.read(), "<stdin>", what)


def unix_newlines(text: str) -> str:
    """CRLF and CR line breaks as \n: every text charlm reads counts its lines the same."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def document_text(data: bytes, where: str, what: str) -> str:
    """One document's bytes (a template, a lyric to scan, a prefix) as text, read alike from
    a file and from stdin: UTF-8 with or without a BOM (whatever the locale says), line breaks
    as \n (CRLF and CR too), or a DataError naming `where`."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{where} ({what}): not UTF-8 text at byte {e.start}; save it as UTF-8"
        ) from None
    return unix_newlines(text)


def read_text_arg(source: str, what: str) -> str:
    """A one-document argument (a template, a lyric): a UTF-8 file, or "-" for stdin, read by
    document_text; what cannot be read is a DataError naming the file and the fix."""
    if source == "-":
        return read_stdin_text(what)
    try:
        data = Path(source).read_bytes()
    except FileNotFoundError:
        raise DataError(
            f"{source}: no such {what} file; pass a {what} as a UTF-8 text file, or -"
        ) from None
    except IsADirectoryError:
        raise DataError(f"{source}: is a folder; pass a {what} as a UTF-8 text file") from None
    except OSError as e:
        raise DataError(f"{source}: cannot read the {what} ({e.strerror})") from None
    return document_text(data, source, what)


def _is_junk(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return any(p in _JUNK_PARTS or p.startswith("._") for p in parts)


def _guess_encoding(data: bytes) -> str | None:
    for enc in ("gb18030", "big5", "utf-16"):
        try:
            data.decode(enc)
        except UnicodeDecodeError:
            continue
        return enc
    return None


def decode_bytes(data: bytes, where: str, encoding: str | None) -> str:
    """Decode one document strictly, naming the byte offset and a likely fix on failure."""
    if encoding is None:
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            encoding = "utf-16"  # a BOM makes UTF-16 unambiguous
        else:
            encoding = "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        hint = ""
        if encoding.lower().replace("_", "-") in ("utf-8", "utf-8-sig", "utf8"):
            guess = _guess_encoding(data)
            if guess:
                hint = f" (it looks like {guess.upper()}); pass --encoding {guess}"
            else:
                hint = "; pass --encoding with the file's real encoding"
        else:
            hint = "; check --encoding"
        raise DataError(f"{where}: not valid {encoding} at byte {e.start}{hint}") from None
    text = text.lstrip("\ufeff")
    bad = _SURROGATE.search(text)
    if bad:  # an exotic codec can yield code points that are no characters (lone surrogates)
        raise DataError(
            f"{where}: decodes with {encoding} to U+{ord(bad.group()):04X} at character "
            f"{bad.start()}, which is not a character; check --encoding"
        )
    # \r\n and lone \r are line breaks, never vocabulary entries.
    return unix_newlines(text)


def _looks_binary(data: bytes, encoding: str | None = None) -> bool:
    head = data[:8192]
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    if encoding and encoding.lower().replace("_", "-").startswith(("utf-16", "utf-32")):
        return False  # asked for by name: its zero bytes are text, BOM or no BOM
    return b"\x00" in head


def _zip_member_name(info: zipfile.ZipInfo) -> str:
    # Without the UTF-8 flag, zipfile decodes names as cp437; Chinese tools write GBK.
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("gbk")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _read_zip(path: Path, opts: CorpusOptions, notes: list[str]) -> list[tuple[str, bytes]]:
    docs: list[tuple[str, bytes]] = []
    try:
        with zipfile.ZipFile(path) as zf:
            members = sorted(zf.infolist(), key=lambda i: i.filename)
            budget = opts.max_bytes
            for info in members:
                name = _zip_member_name(info)
                if info.is_dir() or _is_junk(name):
                    continue
                if info.flag_bits & 0x1:
                    raise DataError(
                        f"{path}: member {name!r} is encrypted; decrypt the zip and try again"
                    )
                # file_size is only a claim: read at most budget+1 bytes whatever it says.
                if info.file_size > budget:
                    raise DataError(
                        f"{path}: member {name!r} is {info.file_size:,} bytes, over the "
                        f"{opts.max_bytes:,}-byte limit; raise --max-corpus-bytes if it is real"
                    )
                with zf.open(info) as fh:
                    data = fh.read(budget + 1)
                if len(data) > budget:
                    raise DataError(
                        f"{path}: member {name!r} expands past the {opts.max_bytes:,}-byte "
                        "limit; raise --max-corpus-bytes if it is real"
                    )
                budget -= len(data)
                docs.append((f"{path}:{name}", data))
    except zipfile.BadZipFile as e:
        raise DataError(f"{path}: not a readable zip file ({e}); re-create the archive") from None
    except (EOFError, OSError, zipfile.LargeZipFile) as e:
        raise DataError(f"{path}: the zip is truncated or damaged ({e}); re-create it") from None
    except RuntimeError as e:  # zipfile raises RuntimeError for encrypted members
        raise DataError(f"{path}: {e}; decrypt the zip and try again") from None
    return docs


def _read_limited(fh, where: str, limit: int) -> bytes:
    data = fh.read(limit + 1)
    if len(data) > limit:
        raise DataError(
            f"{where}: larger than the {limit:,}-byte limit; raise --max-corpus-bytes if it is real"
        )
    return data


def _read_folder(path: Path, opts: CorpusOptions) -> list[tuple[str, bytes]]:
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES and not _is_junk(str(p))
    )
    docs, budget = [], opts.max_bytes
    for p in files:
        with open(p, "rb") as fh:
            data = _read_limited(fh, str(p), budget)
        budget -= len(data)
        docs.append((str(p), data))
    if not files:
        raise DataError(f"{path}: folder has no {'/'.join(TEXT_SUFFIXES)} files; add some text")
    return docs


def read_corpus(source: str, opts: CorpusOptions | None = None) -> Corpus:
    """Read `source` (a .zip, a text file, a folder, or "-" for stdin) into a Corpus.

    Documents are joined in sorted order with a line break between them; binary and empty
    documents are skipped with a note. Raises DataError when nothing usable is left.
    """
    opts = opts or CorpusOptions()
    notes: list[str] = []
    if source == "-":
        docs = [("<stdin>", _read_limited(sys.stdin.buffer, "<stdin>", opts.max_bytes))]
    else:
        path = Path(source)
        if not path.exists():
            raise DataError(f"{source}: no such file or folder; check the --corpus path")
        if path.is_dir():
            docs = _read_folder(path, opts)
        elif zipfile.is_zipfile(path) or path.suffix.lower() == ".zip":
            docs = _read_zip(path, opts, notes)
        else:
            try:
                with open(path, "rb") as fh:
                    docs = [(str(path), _read_limited(fh, str(path), opts.max_bytes))]
            except OSError as e:
                raise DataError(f"{source}: cannot read it ({e.strerror})") from None

    parts: list[str] = []
    docs.reverse()
    while docs:  # each document's bytes are let go once decoded
        where, data = docs.pop()
        if not data.strip():
            notes.append(f"skipped {where}: empty")
            continue
        if _looks_binary(data, opts.encoding):
            notes.append(f"skipped {where}: binary, not text")
            continue
        text = decode_bytes(data, where, opts.encoding)
        if parts and not parts[-1].endswith("\n"):
            parts.append("\n")
        parts.append(text)
    text = "".join(parts)
    if opts.newline == "space":
        text = text.replace("\n", " ")
    if opts.max_chars:
        text = text[: opts.max_chars]
    if not text.strip():
        detail = "; ".join(notes) if notes else "no text in it"
        raise DataError(f"{source}: no usable text ({detail}); point --corpus at UTF-8 lyrics")
    return Corpus(text=text, source=source, fingerprint=fingerprint(text), notes=tuple(notes))


def check_val_fraction(val_fraction: float) -> None:
    if not 0.0 <= val_fraction < 1.0:
        raise UsageError(f"--val-fraction must be in [0, 1), not {val_fraction}")


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    """Split off the last `val_fraction` of the characters, contiguous, as held-out text."""
    check_val_fraction(val_fraction)
    n_val = int(len(text) * val_fraction)
    if n_val == 0:
        return text, ""
    return text[:-n_val], text[-n_val:]


def read_recorded(
    record: dict[str, Any], source: str | None = None, encoding: str | None = None
) -> tuple[str, Corpus]:
    """The corpus a checkpoint's record names (source and reading options, as
    `corpus_record` stored them), read as it was; `source` and `encoding` replace the recorded
    ones when given. The one reader for resume, torchrun followers, evaluate and novelty."""
    options = record.get("options") or {}
    if not isinstance(options, dict):
        raise CheckpointError("the checkpoint's corpus options are not a mapping")
    unknown = set(options) - {f.name for f in fields(CorpusOptions)}
    if unknown:  # a checkpoint from a newer charlm, or one made by hand
        raise CheckpointError(
            f"the checkpoint records corpus options this charlm does not know "
            f"({', '.join(sorted(unknown))}); upgrade charlm"
        )
    options = CorpusOptions(**options)
    if encoding:
        options = replace(options, encoding=encoding)
    if not source and record.get("built_by"):  # a shipped base: its text is not installed
        raise DataError(
            f"{record.get('source')}: a shipped base's training text is not installed with "
            f"charlm ({record['built_by']} rebuilds it); pass --corpus FILE"
        )
    source = source or record.get("source")
    return source, read_corpus(source, options)


def corpus_record(
    source: str, fingerprint: str, options: CorpusOptions, val_fraction: float
) -> dict[str, Any]:
    """What a checkpoint records about its corpus (to resume, evaluate, and refuse another)."""
    src = source if source == "-" else str(Path(source).resolve())
    return {
        "source": src,
        "fingerprint": fingerprint,
        "options": asdict(options),
        "val_fraction": val_fraction,
    }
