"""Lyric form: rhyme groups (hand-checked, 多音字 included), layouts, templates, scan, and
generation held to them: lengths, rhyme slots and tonal patterns honoured for every seed."""

import json

import pytest
import torch

from charlm.data.vocab import Vocab
from charlm.errors import CharlmError, UsageError
from charlm.generation.form.layout import FORMS, from_template, named_form, parse_form
from charlm.generation.form.rhyme import XINYUN, RhymeBook
from charlm.generation.form.scan import scan

from ..conftest import invoke
from .models import songs, untrained

BOOK, XIN = RhymeBook(), RhymeBook(XINYUN)
SONG = (
    "窗外的麻雀 在电线杆上多嘴\n你说这一句，很有夏天的感觉\n\n"
    "手中的铅笔 在纸上来来回回\n窗外的麻雀 在电线杆上多嘴\n"
)
# Lines with many rhyme groups and both tones, so an untrained model has choices everywhere.
TEXT = "".join(line + "\n" for line in [
    "床前明月光疑是地上霜", "举头望明月低头思故乡", "白日依山尽黄河入海流",
    "欲穷千里目更上一层楼", "春眠不觉晓处处闻啼鸟", "夜来风雨声花落知多少",
    "窗外的麻雀在电线杆上多嘴", "你说这一句很有夏天的感觉", "我想就这样牵着你的手不放开",
    "天空下雨我还在等你回家", "爱能不能够永远单纯没有悲哀", "远方的船唱着歌",
    "手中的铅笔 在纸上来来回回", "我用几行字，形容你是我的谁",
]) * 3  # fmt: skip


@pytest.mark.parametrize(
    ("ch", "thirteen", "xinyun", "tone"),
    [
        ("光", "江阳", "唐", "平"), ("家", "发花", "麻", "平"), ("月", "乜斜", "皆", "仄"),
        ("知", "一七", "支", None), ("女", "一七", "齐", "仄"), ("天", "言前", "寒", "平"),
        ("风", "中东", "庚", "平"), ("我", "梭波", "波", "仄"), ("雪", "乜斜", "皆", "仄"),
        # 多音字: readings in different groups fill no rhyme slot
        ("了", None, None, "仄"), ("还", None, None, "平"), ("着", None, None, "平"),
        ("行", None, None, None), ("长", "江阳", "唐", None), ("a", None, None, None),
    ],
)  # fmt: skip
def test_rhyme_groups_and_tones_by_hand(ch, thirteen, xinyun, tone):
    assert BOOK.strict_group(ch) == thirteen
    assert XIN.strict_group(ch) == xinyun
    assert BOOK.strict_tone(ch) == tone


def test_line_ends_are_read_in_context():
    ends = BOOK.line_end_groups(["他们睡着了", "我还是不知道", "Oh baby", "一起去看海 ~"])
    assert ends == ["梭波", "遥条", None, "怀来"]  # 了 read le; the trailing ~ is skipped
    assert BOOK.group_named("江阳") == BOOK.group_named("光") == BOOK.group_named("阳") == "江阳"


def test_forms_parse_and_refuse():
    layout = parse_form("7,7,7/7,7,7")
    assert layout.lengths == [7] * 6 and layout.spec() == "7,7,7/7,7,7" and layout.breaks() == 7
    assert layout.with_rhyme("AABXXB").scheme == "AABXXB"
    for bad in ("7,x", "0", "7,,7", "201"):
        with pytest.raises(UsageError):
            parse_form(bad)
    with pytest.raises(UsageError, match="one letter per line"):
        layout.with_rhyme("AABB")
    for name, form in FORMS.items():  # lengths and tones agree, and every form cites a source
        lay = named_form(name)
        assert all(len(ln.tones) == len(ln.slots) for ln in lay.lines), name
        assert form["source"] and len(lay.scheme) == len(lay.lines)
    jueju = parse_form("七言绝句")
    assert jueju.lengths == [7] * 4 and jueju.scheme == "AAXA"
    assert all(ln.tones[-1] == "平" for ln in jueju.lines if ln.rhyme != "X")


def test_a_template_gives_its_shape():
    layout = from_template(SONG, BOOK, repeat_chorus=True)
    assert layout.spec() == "13,13/13,13" and layout.scheme == "AXAX"  # 嘴/回 灰堆; 4 repeats
    assert layout.lines[0].slots[5] == " " and layout.lines[1].slots[5] == "，"
    assert layout.lines[3].repeat_of == 0 and layout.lines[0].stanza_end is False
    assert layout.lines[1].stanza_end is True
    with pytest.raises(UsageError):
        from_template("hello\nworld\n", BOOK)


def test_scan_reads_a_lyric():
    r = scan("床前明月光\n疑是地上霜\n\n举头望明月\n低头思故乡\n", BOOK)
    assert r["scheme"] == "AA/XA" and r["stanzas"] == 2
    assert [ln["rhyme"] for ln in r["lines"]] == ["江阳", "江阳", "乜斜", "江阳"]
    assert (r["rhyming_pairs"], r["adjacent_pairs"]) == (1, 2)


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    """An untrained model over TEXT's characters: the constraints must hold whatever it says."""
    tmp = tmp_path_factory.mktemp("form")
    corpus = tmp / "poems.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    extra = {"corpus": {"source": str(corpus), "options": {}, "val_fraction": 0.1}, "kn": None}
    return untrained(tmp / "ck", "p", TEXT, extra)


def stanzas_of(text):
    return [[ln for ln in s.split("\n") if ln] for s in text.strip("\n").split("\n\n")]


def test_lengths_and_rhymes_hold_for_every_seed(lm):
    for text in songs(lm, form="5,5,7/5,5,7", rhyme="AABCCB"):
        lines = text.split("\n")
        assert [len(ln) for ln in lines] == [5, 5, 7, 0, 5, 5, 7, 0], text  # the blank line
        ends = [ln[-1] for ln in lines if ln]
        groups = [BOOK.strict_group(c) for c in ends]
        assert None not in groups, text
        assert groups[0] == groups[1] and groups[3] == groups[4] and groups[2] == groups[5]


def test_rhyme_with_sets_the_sound_and_the_prefix_starts_line_one(lm):
    for text in songs(lm, prefix="床前", form="5,5,5,5", rhyme="AXAA", rhyme_with="光"):
        lines = text.rstrip("\n").split("\n")
        assert lines[0].startswith("床前") and [len(ln) for ln in lines] == [5] * 4
        assert {BOOK.strict_group(lines[i][-1]) for i in (0, 2, 3)} == {"江阳"}


def test_named_forms_keep_their_tones(lm):
    for name in ("七言绝句", "如梦令"):
        layout = named_form(name)
        for text in songs(lm, n_seeds=3, form=name):
            lines = [ln for ln in text.split("\n") if ln]
            assert [len(ln) for ln in lines] == layout.lengths, text
            for line, spec in zip(lines, layout.lines, strict=True):
                for ch, tone in zip(line, spec.tones, strict=True):
                    assert tone == "中" or BOOK.strict_tone(ch) == tone, (name, line)
            rhymed = {BOOK.strict_group(ln[-1]) for ln, s in zip(lines, layout.lines, strict=True)
                      if s.rhyme == "A"}  # fmt: skip
            assert len(rhymed) == 1 and None not in rhymed, text


def test_template_symbols_stanzas_rhymes_and_chorus(lm):
    for text in songs(lm, n_seeds=4, template=SONG, repeat_chorus=True):
        got = stanzas_of(text)
        assert [len(s) for s in got] == [2, 2]
        lines = got[0] + got[1]
        assert [len(ln) for ln in lines] == [13, 13, 13, 13]
        assert lines[0][5] == " " and lines[1][5] == "，" and lines[2][5] == " "
        assert lines[3] == lines[0]  # the chorus comes back
        assert BOOK.strict_group(lines[0][-1]) == BOOK.strict_group(lines[2][-1]) is not None


def test_acrostic_with_a_form(lm):
    for text in songs(lm, n_seeds=3, form="七言绝句", acrostic="春夜花白"):
        lines = [ln for ln in text.split("\n") if ln]
        assert [ln[0] for ln in lines] == list("春夜花白") and [len(x) for x in lines] == [7] * 4


def test_acrostic_without_a_form_heads_every_line():
    """The step context counts each line from its break: at the start of line k only head k may be
    written, and right after it the line may not end."""
    from charlm.generation.constraints import AcrosticHeads
    from charlm.generation.processor import StepContext

    vocab = Vocab.build("春夜花白风\n")
    ids = {c: vocab.id_of(c) for c in "春夜花白风\n"}
    heads = AcrosticHeads([ids[c] for c in "春夜花"], ids["\n"])
    ctx = StepContext.start("", [], n=1, max_lines=0, keep=1)

    def allowed() -> set[str]:
        row = heads(torch.zeros(1, len(vocab)), ctx)[0]
        return {c for c, i in ids.items() if row[i] == 0}

    for text, head in (("", "春"), ("春风风\n", "夜"), ("夜风\n", "花")):
        for ch in text:
            ctx.add([ids[ch]], vocab)
        assert allowed() == {head}
        ctx.add([ids[head]], vocab)
        assert "\n" not in allowed() and "风" in allowed()


def test_rhyme_alone_ends_chinese_lines_of_any_length_on_the_group(lm):
    for text in songs(lm, n_seeds=4, rhyme="AAXA"):
        lines = [ln for ln in text.split("\n") if ln]
        assert len(lines) == 4, text
        groups = [BOOK.strict_group(ln[-1]) for ln in lines]
        assert groups[0] is not None and groups[0] == groups[1] == groups[3], text
        assert len({lines[0][-1], lines[1][-1], lines[3][-1]}) == 3, text  # no repeats


def test_same_seed_same_song(lm):
    a = lm.generate_text(form="7,7,7,7", rhyme="AABB", seed=11)
    assert a == lm.generate_text(form="7,7,7,7", rhyme="AABB", seed=11)


def test_refusals_write_nothing(lm, runner, tmp_path):
    ck = lm.path.parent.parent
    (tmp_path / "t.txt").write_text("床前明月光\n疑是地上霜\n", encoding="utf-8")
    cases = [
        (["--form", "5,5", "--prefix", "床前明月光疑"], "does not fit"),
        (["--form", "5,5", "--rhyme", "AAB"], "one letter per line"),
        (["--rhyme", "A1"], "letters A-Z"),
        (["--rhyme", "AA", "--template", str(tmp_path / "t.txt")], "the template rhymes"),
        (["--form", "5,5", "--rhyme", "AA", "--rhyme-with", "xyz"], "not a 十三辙 group"),
        (["--form", "5,5", "--template", str(tmp_path / "none.txt")], "choose one"),
        (["--template", str(tmp_path / "none.txt")], "no such template"),
    ]
    for args, message in cases:
        r = invoke(runner, ["generate", "--checkpoint", "p", "--checkpoint-dir", ck, *args])
        assert r.exit_code in (2, 3) and r.stdout == "" and message in r.stderr, (args, r.stderr)


def test_cli_json_carries_the_form_and_scan_reads_it(lm, runner, tmp_path):
    ck = lm.path.parent.parent
    form = ["--form", "5,5,5,5", "--rhyme", "AABB", "--seed", "3", "--json", "--prefix", ""]
    r = invoke(runner, ["generate", "--checkpoint", "p", "--checkpoint-dir", ck, *form])
    assert r.exit_code == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["form"]["rhyme"] == "AABB" and rec["form"]["lines"] == [5, 5, 5, 5]
    rhymes = rec["form"]["line_rhymes"]
    assert rhymes[0] == rhymes[1] and rhymes[2] == rhymes[3]
    song = tmp_path / "song.txt"
    song.write_text(rec["text"], encoding="utf-8")
    s = invoke(runner, ["scan", song, "--json"])
    assert s.exit_code == 0 and json.loads(s.stdout)["lines"][0]["length"] == 5
    table = invoke(runner, ["scan", "-"], input=rec["text"])
    assert table.exit_code == 0 and "scheme" in table.stdout
    forms = invoke(runner, ["generate", "--list-forms", "--json"])
    assert {json.loads(x)["name"] for x in forms.stdout.splitlines()} == set(FORMS)


def test_a_form_on_a_model_without_chinese_is_refused(tmp_path):
    en = untrained(tmp_path, "e", "hello world\nthe sky is blue\n")
    with pytest.raises(CharlmError, match="no Chinese character"):
        en.generate_text("", form="5,5", seed=1)


def test_the_loop_guard_stops_loops_and_lets_lyrics_repeat():
    from charlm.generation.processor import StepContext
    from charlm.generation.repeats import RepeatGuard

    vocab = Vocab.build("我想你 每天都想你\n啊")
    guard = RepeatGuard(vocab)
    ids = {c: vocab.id_of(c) for c in "我想你 每天都啊"}

    def forbidden(line: str) -> set[str]:
        ctx = StepContext.start(line, [int(i) for i in vocab.encode(line)], 1, 0, 1)
        out = guard(torch.zeros(1, len(vocab)), ctx)[0]
        return {c for c, i in ids.items() if out[i] == float("-inf")}

    assert forbidden("我我我") == {"我"}  # a fourth in a row
    assert forbidden("我我 我") == {"我"}  # spaces do not separate the copies
    assert forbidden("我我") == set()  # real lyrics double and triple
    assert forbidden("每天每天") == set()  # two copies of a short phrase: lyrics do that
    assert forbidden("每天每天每") == {"天"}  # not a third
    assert forbidden("想你 想你 想") == {"你"}
    assert forbidden("我想你每天都我想你每天") == {"都"}  # a long phrase: not twice
    assert forbidden("我想你每天都想") == set()


def test_the_english_loop_guard_counts_words_so_refrains_pass():
    """la la la, yeah yeah yeah, merrily merrily: what English lyrics repeat is words; the
    guard bars the first letter of the word that would be one copy too many."""
    from charlm.generation.form.lexicon import language_of
    from charlm.generation.processor import StepContext
    from charlm.generation.repeats import WordRepeatGuard, repeat_guard

    vocab = Vocab.build("La la la, merrily we row our boat yeah! Zzz...\n")
    guard = repeat_guard(vocab, language_of(vocab))
    assert isinstance(guard, WordRepeatGuard)

    def forbidden(line: str) -> set[str]:
        ctx = StepContext.start(line, [int(i) for i in vocab.encode(line)], 1, 0, 1)
        out = guard(torch.zeros(1, len(vocab)), ctx)[0]
        return {t for t in vocab.tokens if out[vocab.id_of(t) or 0] == float("-inf")}

    assert forbidden("la la ") == set() and forbidden("La la la, ") == {"l", "L"}  # a 4th
    assert forbidden("la la la") == set()  # inside a word: judged where the next starts
    assert forbidden("yeah yeah, we row row ") == set()
    assert forbidden("row our boat, row our ") == set()  # a short phrase twice: lyrics do
    assert forbidden("row our row our row ") == {"o"}  # not a third
    assert forbidden("merrily we row merrily we ") == set()
    assert forbidden("merrily we row our boat merrily we row our ") == {"b"}  # long: once
    assert forbidden("Zzz") == {"z", "Z"} and forbidden("...") == {"."}  # no character 4 in a row


def test_best_of_n_lines_keeps_a_drawn_candidate_and_the_form(lm):
    from charlm.generation.choice import LineChoice

    choice = LineChoice(2, 3)  # rows 0-2: sample 0's candidates, 3-5: sample 1's
    logp = torch.log(torch.tensor([[0.5, 0.5]] * 6))
    ids = torch.tensor([0, 1, 0, 1, 1, 1])
    assert choice.add(logp, ids, ["a", "b", "c", "d", "e", "f"]) == ([""] * 2, None)
    step = torch.log(torch.tensor([[0.1, 0.9]] * 6))
    pieces, index = choice.add(step, torch.tensor([0, 1, 0, 0, 0, 1]), ["\n"] * 6)
    assert pieces == ["b\n", "f\n"] and index.tolist() == [1, 1, 1, 5, 5, 5]
    for k in (1, 3):  # the form holds whatever the number of candidates
        for text in songs(lm, n_seeds=3, form="5,5/5,5", rhyme="AABB", line_candidates=k):
            lines = [ln for ln in text.split("\n") if ln]
            assert [len(ln) for ln in lines] == [5] * 4, text
    a = lm.generate_text("", form="5,5,5,5", rhyme="XAXA", seed=4, line_candidates=4)
    assert a == lm.generate_text("", form="5,5,5,5", rhyme="XAXA", seed=4, line_candidates=4)


def test_a_template_line_ending_in_punctuation_rhymes_on_its_last_character(lm):
    template = "床前明月光，\n疑是地上霜。\n举头望明月，\n低头思故乡。\n"  # 光 霜 乡: AAXA
    for text in songs(lm, n_seeds=3, template=template):
        lines = text.rstrip("\n").split("\n")
        assert [ln[-1] for ln in lines] == ["，", "。", "，", "。"], text
        groups = [BOOK.strict_group(ln[-2]) for ln in lines]
        assert groups[0] == groups[1] == groups[3] is not None, text


def test_a_template_symbol_the_model_never_saw_is_written_as_itself(lm):
    for text in songs(lm, n_seeds=2, template="床前明月光~\n疑是地上霜 ~\n"):
        lines = text.rstrip("\n").split("\n")
        assert [len(ln) for ln in lines] == [6, 7] and lines[0][5] == "~" and lines[1][5:] == " ~"
        assert "<unk>" not in text


def test_the_look_ahead_weighs_each_candidate_by_what_may_follow_it():
    """A candidate's score is its own log-prob among the top k plus the log of the allowed
    share of the network's next distribution: computed as one product (Lookahead.mass), it
    equals the log-sum-exp over the allowed log-probs, rows allowing different ids included."""
    from charlm.generation.form.constraint import _weigh_by_next
    from charlm.generation.lookahead import Lookahead

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 20, generator=g)
    table = torch.randn(20, 20, generator=g) * 4  # the next logits after each id

    class Stepper:  # one step: the candidate's row of the table, whatever the state
        def step(self, ids, state):
            return table[ids], state

    state = [(torch.zeros(3, 2),)]
    look = Lookahead(Stepper())
    allowed = torch.zeros(3, 20, dtype=torch.bool)
    allowed[:, 7] = True
    allowed[1, 9] = True  # rows that allow different ids
    out = _weigh_by_next(logits, allowed, lambda c, a: look.mass(c, a, state), k=12)
    top = torch.topk(logits, 12, dim=1)
    nxt = torch.log_softmax(table[top.indices], dim=-1)  # (3, 12, 20)
    mass = torch.logsumexp(nxt.masked_fill(~allowed[:, None, :], float("-inf")), dim=2)
    want = torch.log_softmax(top.values, dim=1) + mass
    assert torch.allclose(out.gather(1, top.indices), want, atol=1e-5)
    assert torch.isinf(out).sum() == 3 * 8  # the rest out
    nothing = torch.zeros(3, 20, dtype=torch.bool)  # no candidate can go on: logits kept
    assert torch.equal(_weigh_by_next(logits, nothing, lambda c, a: look.mass(c, a, state)),
                       logits)  # fmt: skip


def test_a_vocabulary_s_rhymes_are_read_once_per_table():
    from charlm.generation.form.constraint import vocab_rhymes

    vocab = Vocab.build("春风吹又生光明\n")
    ten, xin = RhymeBook(), RhymeBook(XINYUN)
    assert vocab_rhymes(vocab, ten) is vocab_rhymes(vocab, RhymeBook())
    assert vocab_rhymes(vocab, xin) is not vocab_rhymes(vocab, ten)
    assert vocab_rhymes(vocab, xin).book.table == xin.table


def test_the_look_ahead_weighs_fewer_candidates_before_a_tone_than_before_a_rhyme():
    from charlm.generation.form.constraint import (
        LOOKAHEAD_K,
        TONE_K,
        FormConstraint,
        vocab_rhymes,
    )
    from charlm.generation.form.layout import layout_for

    book = RhymeBook()
    vocab = Vocab.build("春风吹又生光明天山水花落知多少夜来风雨声处处闻啼鸟\n")
    layout = layout_for("七言绝句", "", "", book)
    rule = FormConstraint(layout, vocab, vocab_rhymes(vocab, book), 1, "")
    widths = []

    class Ahead:
        def mass(self, cands, allowed):  # (B, K), (B, V) -> (B, K)
            widths.append(cands.shape[1])
            return torch.zeros(cands.shape)

    class Ctx:
        steps, spell, ahead = 0, None, Ahead()

        def last_ids(self):
            return [vocab.id_of("春")]

    ctx = Ctx()
    for step in range(7):  # the first line: tones at fixed slots, a rhyme at its end
        ctx.steps = step
        rule(torch.zeros(1, len(vocab)), ctx)
    # slot 5 looks ahead to the rhyme (slot 6, 12 candidates), slot 6 to the line break
    assert widths[-2:] == [min(LOOKAHEAD_K, len(vocab))] * 2
    assert TONE_K < LOOKAHEAD_K and TONE_K in widths[:-2]


def test_the_step_after_a_look_ahead_is_read_from_it(lm, monkeypatch):
    """A tonal form looks ahead before most characters; the drawn candidate's step is then
    already computed, and is taken from there: the same songs, fewer network steps."""
    from charlm.generation import lookahead, sampling
    from charlm.models.stepper import Stepper

    rows = []  # the batch of every step the network takes
    real_step = Stepper.step

    def counted(self, ids, st):
        rows.append(len(ids))
        return real_step(self, ids, st)

    monkeypatch.setattr(Stepper, "step", counted)
    reused = songs(lm, n_seeds=3, form="七言绝句")
    main = rows.count(4 * sampling.NAMED_FORM_CANDIDATES)  # samples x candidate lines
    rows.clear()
    monkeypatch.setattr(
        lookahead.Lookahead, "step", lambda self, ids, st: self.stepper.step(ids, st)
    )
    assert songs(lm, n_seeds=3, form="七言绝句") == reused
    every = rows.count(4 * sampling.NAMED_FORM_CANDIDATES)
    assert main < every / 3  # most steps after the draw came from the look ahead


def test_a_named_form_draws_one_candidate_line_unless_asked_for_more():
    """A tonal form looks ahead before nearly every slot: a second candidate line would double
    the costliest part of each step, so it is asked for, not the default."""
    from charlm.config import SampleConfig
    from charlm.generation import sampling

    vocab = Vocab.build("春风吹又生\n")
    assert sampling.line_candidates(SampleConfig(form="七言绝句"), vocab) == 1
    assert sampling.line_candidates(SampleConfig(form=" 五言律诗 "), vocab) == 1
    assert sampling.line_candidates(SampleConfig(form="7,7,7,7"), vocab) == 2
    assert sampling.line_candidates(SampleConfig(form="七言绝句", line_candidates=3), vocab) == 3
    assert sampling.line_candidates(SampleConfig(), vocab) == 1


def test_a_named_form_never_repeats_a_line_but_for_its_last_two_characters(lm):
    """The song cache pulls a song back to its own lines; a named form's line may not come
    back with only its last two characters changed (forms by line lengths may: a chorus)."""
    from charlm.generation.form.constraint import FormConstraint, vocab_rhymes
    from charlm.generation.form.layout import layout_for

    book = RhymeBook()
    vocab = Vocab.build("春风吹又生光明天山水花落知多少夜来风雨声处处闻啼鸟\n")
    ids = [vocab.id_of(c) for c in "春风吹又生光明"]
    other = [vocab.id_of(c) for c in "山水花落"]
    nl = vocab.id_of("\n")
    rhymes = vocab_rhymes(vocab, book)
    rule = FormConstraint(layout_for("七言绝句", "", "", book), vocab, rhymes, 2, "")
    rule.written = [[*ids, nl, *ids[:4]], [*ids, nl, *other]]  # line 2 starts as line 1 did
    allowed = torch.ones(1, len(vocab), dtype=torch.bool).expand(2, -1)
    out = rule._no_near_copy(allowed, 1, 4)  # the third slot from the end of line 2
    assert not out[0, ids[4]] and int(out[0].sum()) == len(vocab) - 1 and out[1].all()
    assert rule._no_near_copy(allowed, 1, 3) is allowed
    only = torch.zeros(2, len(vocab), dtype=torch.bool)
    only[:, ids[4]] = True  # all a row has left stays
    assert rule._no_near_copy(only, 1, 4)[0, ids[4]]
    lengths = FormConstraint(layout_for("7,7,7,7", "", "", book), vocab, rhymes, 2, "")
    lengths.written = rule.written
    assert lengths._no_near_copy(allowed, 1, 4) is allowed
    for text in songs(lm, n_seeds=3, form="五言绝句"):
        lines = [ln for ln in text.split("\n") if ln]
        heads = [ln[:-2] for ln in lines]
        assert len(set(heads)) == len(heads), text
