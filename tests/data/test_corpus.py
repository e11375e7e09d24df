import io
import sys
import zipfile

import pytest

from charlm.data.corpus import CorpusOptions, read_corpus, split_text
from charlm.errors import DataError, UsageError


def test_txt_crlf_and_bom_are_normalised(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes("\ufeff分开\r\n不分开\r\n".encode())
    c = read_corpus(str(p))
    assert c.text == "分开\n不分开\n"
    assert "\r" not in c.text and "\ufeff" not in c.text


def test_zip_members_sorted_and_junk_skipped(tmp_path):
    p = tmp_path / "c.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("b.txt", "第二")
        zf.writestr("a.txt", "第一")
        zf.writestr("__MACOSX/._a.txt", "junk")
        zf.writestr(".DS_Store", "junk")
        zf.writestr("dir/", "")
    c = read_corpus(str(p))
    assert c.text == "第一\n第二"


def test_folder_sorted(tmp_path):
    d = tmp_path / "songs"
    d.mkdir()
    (d / "2.txt").write_text("乙\n", encoding="utf-8")
    (d / "1.txt").write_text("甲\n", encoding="utf-8")
    (d / "cover.jpg").write_bytes(b"\xff\xd8\x00")
    assert read_corpus(str(d)).text == "甲\n乙\n"


def test_gb18030_without_encoding_names_offset_and_fix(tmp_path):
    p = tmp_path / "gbk.txt"
    p.write_bytes("abc分开".encode("gb18030"))
    with pytest.raises(DataError) as e:
        read_corpus(str(p))
    msg = str(e.value)
    assert "byte 3" in msg and "--encoding gb18030" in msg and str(p) in msg
    assert read_corpus(str(p), CorpusOptions(encoding="gb18030")).text == "abc分开"


def test_utf16_with_bom_accepted(tmp_path):
    p = tmp_path / "u16.txt"
    p.write_bytes("分开\n".encode("utf-16"))
    assert read_corpus(str(p)).text == "分开\n"


def test_newline_space_and_max_chars(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("一二\n三四\n五", encoding="utf-8")
    c = read_corpus(str(p), CorpusOptions(newline="space", max_chars=4))
    assert c.text == "一二 三"


def test_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("你好\n".encode())))
    assert read_corpus("-").text == "你好\n"


def test_missing_and_empty(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_corpus(str(tmp_path / "nope.txt"))
    (tmp_path / "e.txt").write_bytes(b"")
    with pytest.raises(DataError, match="no usable text"):
        read_corpus(str(tmp_path / "e.txt"))


def test_full_width_punctuation_kept(tmp_path):
    p = tmp_path / "a.txt"
    text = "分开，\u3000不分开！（副歌）\n"
    p.write_text(text, encoding="utf-8")
    assert read_corpus(str(p)).text == text


def test_split_is_contiguous_tail():
    train, val = split_text("0123456789", 0.2)
    assert (train, val) == ("01234567", "89")
    assert split_text("abc", 0.0) == ("abc", "")
    with pytest.raises(UsageError):
        split_text("abc", 1.0)


def test_fingerprint_changes_with_text(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("分开", encoding="utf-8")
    b.write_text("分手", encoding="utf-8")
    assert read_corpus(str(a)).fingerprint != read_corpus(str(b)).fingerprint


def test_utf16_without_a_bom_reads_when_named(tmp_path):
    """Bug: a UTF-16LE file without a BOM was refused as "binary" even with
    --encoding utf-16-le (its zero bytes are text)."""
    p = tmp_path / "le.txt"
    p.write_bytes("分开的时候\nabc\n".encode("utf-16-le"))
    assert read_corpus(str(p), CorpusOptions(encoding="utf-16-le")).text == "分开的时候\nabc\n"
    with pytest.raises(DataError, match="no usable text"):  # unnamed, it still looks binary
        read_corpus(str(p))


def test_a_codec_that_yields_lone_surrogates_is_refused(tmp_path):
    """Bug: text that decodes to code points that are no characters (lone surrogates, via
    an exotic --encoding) crashed the fingerprint with UnicodeEncodeError, exit 1."""
    p = tmp_path / "esc.txt"
    p.write_bytes(b"abc\\ud800def\n")
    with pytest.raises(DataError, match="U\\+D800 at character 3"):
        read_corpus(str(p), CorpusOptions(encoding="unicode_escape"))


def test_stdin_that_is_not_utf8_is_a_data_error(runner):
    from ..conftest import invoke

    r = invoke(runner, ["scan", "-"], input=b"\xff\xfe\xfa not utf-8\n")
    assert r.exit_code == 3 and "not UTF-8" in r.stderr and r.stdout == ""
