"""Bad input on the newer surfaces, class by class (issue: nothing trusted): each fails with a
one-line CharlmError naming the fix, or is read the same whichever way it comes in."""

from __future__ import annotations

import numpy as np
import pytest

from charlm.data.corpus import document_text, read_text_arg
from charlm.data.vocab import Vocab
from charlm.errors import DataError, UsageError
from charlm.generation.form.layout import parse_form, scheme_letters
from charlm.generation.request import GenerationRequest
from charlm.scoring import lexicon

from .conftest import invoke


@pytest.mark.parametrize("spec", ["²,7", "٣,5", "7,7.0", "7, ,7", "+7", "0x7", "7" * 6])
def test_form_lengths_are_ascii_numbers_or_a_usage_error(spec):
    with pytest.raises(UsageError, match="give line lengths"):
        parse_form(spec)
    assert parse_form(" 7, 7 /5").lengths == [7, 7, 5]


def test_a_document_reads_the_same_from_any_file_or_stdin(tmp_path):
    plain = "分开的时候\n我还在想你\n\n天空\n"
    variants = {
        "bom": b"\xef\xbb\xbf" + plain.encode(),
        "crlf": plain.replace("\n", "\r\n").encode(),
        "cr": plain.replace("\n", "\r").encode(),
        "bom_crlf": b"\xef\xbb\xbf" + plain.replace("\n", "\r\n").encode(),
    }
    for name, data in variants.items():
        (tmp_path / name).write_bytes(data)
        assert read_text_arg(str(tmp_path / name), "template") == plain, name
        assert document_text(data, "<stdin>", "template") == plain, name
    (tmp_path / "latin1").write_bytes("café\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1 \(template\): not UTF-8 text at byte 3"):
        read_text_arg(str(tmp_path / "latin1"), "template")
    with pytest.raises(DataError, match="is a folder"):
        read_text_arg(str(tmp_path), "template")
    # the API and the page hand a template's text: the same normalisation
    crlf = GenerationRequest(template=plain.replace("\n", "\r\n")).template
    assert crlf == GenerationRequest(template="\ufeff" + plain).template == plain


def test_scheme_letters_are_linear_in_the_lines():
    groups = ["江阳", "江阳", None, "一七"] * 200_000  # 800k lines: quadratic took minutes
    letters = scheme_letters(groups)
    assert letters[:4] == "AAXB" and len(letters) == len(groups)


def test_the_lexicon_cache_degrades_and_leaves_no_debris(tmp_path, monkeypatch):
    vocab = Vocab.build("分开的时候我还在想你\n")
    (tmp_path / ".cache").write_text("a file where the cache folder would go")
    kn = lexicon.build("zh", vocab, cache_root=tmp_path)  # no cache, the model all the same
    assert kn.vocab_size == len(vocab)
    lexicon._build.cache_clear()

    def killed(*args, **kwargs):  # SIGTERM arrives while the entry is written
        raise KeyboardInterrupt

    other = tmp_path / "run"
    other.mkdir()
    monkeypatch.setattr(np, "savez", killed)
    with pytest.raises(KeyboardInterrupt):
        lexicon.build("zh", vocab, cache_root=other)
    left = [p for p in other.rglob("*") if p.is_file()]
    assert left == [], left


def test_init_from_empty_is_refused(tmp_path, runner, corpus_file):
    r = invoke(runner, ["train", "--corpus", corpus_file, "--init-from", "",
                        "--checkpoint-dir", tmp_path / "ck", "--max-steps", "2"])  # fmt: skip
    assert r.exit_code == 2 and "--init-from needs a run" in r.stderr
    assert not (tmp_path / "ck").exists() or not any((tmp_path / "ck").iterdir())


def test_an_unknown_split_is_a_usage_error(tmp_path):
    from charlm.api import SPLITS, LanguageModel

    lm = LanguageModel.__new__(LanguageModel)
    with pytest.raises(UsageError, match="--split must be one of"):
        lm.corpus_split(None, "heldout")
    assert SPLITS == ("val", "train", "all")


def test_a_prefix_fits_the_form_line_by_line():
    from charlm.config import SampleConfig
    from charlm.generation.constraints import form_constraint

    from .conftest import tiny_text

    vocab = Vocab.build(tiny_text())
    cfg = SampleConfig(form="5,5")
    with pytest.raises(UsageError, match="its line 1 must have 5 character"):
        form_constraint(vocab, cfg, "分开\n我")  # the first line would lose three characters
    with pytest.raises(UsageError, match="its line 2 must have 5"):
        form_constraint(vocab, cfg, "分开的时候\n我还在想你啊")
    assert form_constraint(vocab, cfg, "分开的时候\n我").start == 7  # a whole line, and more


@pytest.mark.parametrize(
    ("form", "heads", "words"),
    [("5,5", "分不天", "3 heads and the form 2 lines"), ("1,5", "分不", "line.s. 1 of the form")],
)
def test_acrostic_heads_must_fit_the_form(form, heads, words):
    from charlm.config import SampleConfig
    from charlm.generation.constraints import form_constraint

    from .conftest import tiny_text

    with pytest.raises(UsageError, match=words):
        form_constraint(Vocab.build(tiny_text()), SampleConfig(form=form, acrostic=heads), "")


def test_only_a_checkpoint_hides_the_shipped_base(tmp_path, monkeypatch):
    from charlm.store.checkpoint import builtin_name

    monkeypatch.chdir(tmp_path)
    (tmp_path / "zh").mkdir()  # a folder of lyrics, say: not a checkpoint
    assert builtin_name("zh", tmp_path / "checkpoints") == "zh"
    (tmp_path / "zh" / "best.pt").write_bytes(b"")  # a run folder given by its path
    assert builtin_name("zh", tmp_path / "checkpoints") is None
    assert builtin_name("builtin:zh", tmp_path / "checkpoints") == "zh"


def test_an_empty_checkpoint_name_is_refused_not_the_newest_run(tmp_path):
    from charlm.store.checkpoint import resolve

    for spec in ("", "  "):
        with pytest.raises(UsageError, match="--checkpoint is empty"):
            resolve(spec, tmp_path)


def test_acrostic_heads_must_fit_a_rhyme_scheme():
    from charlm.config import SampleConfig
    from charlm.generation.constraints import build

    from .conftest import tiny_text

    vocab = Vocab.build(tiny_text())
    cfg = SampleConfig(rhyme="AABB", acrostic="分不天窗我")
    with pytest.raises(UsageError, match="5 heads and the scheme 4 lines"):
        build(vocab, cfg, [1])


def test_a_prefix_reads_its_line_breaks_as_a_file_does():
    assert (
        GenerationRequest(prefix="分开\r\n我").prefix == GenerationRequest(prefix="分开\r我").prefix
    )
    assert GenerationRequest(prefix="分开\r\n我").prefix == "分开\n我"


def test_derived_caches_follow_the_run_not_the_working_folder(tmp_path, monkeypatch):
    from charlm.store.caches import cache_root_for
    from charlm.store.checkpoint import ASSETS

    run = tmp_path / "ck" / "jay"
    run.mkdir(parents=True)
    (run / "best.pt").write_bytes(b"")
    monkeypatch.chdir(tmp_path / "ck" / "jay")  # anywhere: the run's checkpoint folder
    assert cache_root_for(run / "best.pt") == (tmp_path / "ck").resolve()
    monkeypatch.setenv("CHARLM_CACHE_DIR", str(tmp_path / "user-cache"))
    assert cache_root_for(ASSETS / "zh_base.pt") == tmp_path / "user-cache"  # a shipped base
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("CHARLM_CACHE_DIR", str(tmp_path / "file" / "x"))
    assert cache_root_for(ASSETS / "zh_base.pt") is None  # no cache, and no failure
