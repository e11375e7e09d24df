"""English rhyme (the CMU dictionary, hand-checked words) and --rhyme alone: lines of the
model's own length that end on rhyming words, for every seed; scan on English lyrics."""

import json

import numpy as np
import pytest
import torch

from charlm.config import SampleConfig
from charlm.data.vocab import Vocab
from charlm.errors import CharlmError, UsageError
from charlm.generation.form import english
from charlm.generation.form.free_lines import MAX_LINE, RUN_ON, RhymeLines, Shape, parse_scheme
from charlm.generation.form.lexicon import corpus_words, lexicon_for
from charlm.generation.form.rhyme import RhymeBook
from charlm.generation.form.rhyme_word import Spelling
from charlm.generation.form.scan import scan
from charlm.scoring.kneser_ney import KneserNey

from ..conftest import invoke
from .models import songs, untrained

# Twinkle, Twinkle, Little Star (Jane Taylor, 1806: public domain)
TWINKLE = (
    "Twinkle, twinkle, little star,\nHow I wonder what you are!\n"
    "Up above the world so high,\nLike a diamond in the sky.\n"
)
TEXT = (
    TWINKLE
    + (
        "The night is long and the light is gone\nI sing my song until the dawn\n"
        "You were true to me, my love\nLike the stars that shine above\n"
    )
    * 4
)


@pytest.mark.parametrize(
    ("word", "rhymes", "strict"),
    [
        ("night", ("AY T",), "AY T"), ("delight", ("AY T",), "AY T"),
        ("Tonight", ("AY T",), "AY T"),
        ("love", ("AH V",), "AH V"), ("above", ("AH V",), "AH V"), ("I", ("AY",), "AY"),
        ("you", ("UW",), "UW"), ("true", ("UW",), "UW"), ("heart", ("AA R T",), "AA R T"),
        # several pronunciations: heard either way, they fill no rhyme slot
        ("read", ("EH D", "IY D"), None), ("the", ("AH", "IY"), None),
        ("lovin'", ("AH V IH NG",), "AH V IH NG"),  # sung: loving, not the name Lovin
        ("xqzt", (), None),
    ],
)  # fmt: skip
def test_english_rhymes_by_hand(word, rhymes, strict):
    assert set(english.rhymes_of(word)) == set(rhymes)
    assert english.strict_rhyme(word) == strict


def test_last_words_and_named_rhymes():
    assert english.last_word("And I will always love you!") == "you"
    assert english.last_word("'cause I'm leavin' ...") == "leavin"
    assert english.last_word("...") is None
    assert english.rhyme_named("night") == english.rhyme_named("ay  t") == "AY T"
    assert english.rhyme_named("read") is None and english.rhyme_named("ZZ Q") is None


def test_scan_reads_english_lyrics():
    result = scan(TWINKLE, RhymeBook())
    assert [ln["last"] for ln in result["lines"]] == ["star", "are", "high", "sky"]
    assert [ln["rhyme"] for ln in result["lines"]] == ["AA R", "AA R", "AY", "AY"]
    assert result["scheme"] == "AABB" and result["rhyme_table"] == "CMU"
    assert result["rhyming_pairs"] == 2 and result["adjacent_pairs"] == 3
    mixed = scan("床前明月光\n疑是地上霜\nOh my love\nfrom above\n", RhymeBook())
    assert mixed["scheme"] == "AABB" and mixed["rhyme_table"] == "十三辙+CMU"


def test_schemes_parse_and_refuse():
    assert parse_scheme("abab/cdcd") == [
        ("A", False),
        ("B", False),
        ("A", False),
        ("B", True),
        ("C", False),
        ("D", False),
        ("C", False),
        ("D", False),
    ]
    for bad in ("AB1", "AB/", "/AB", "A//B", ""):
        with pytest.raises(UsageError, match="letters A-Z"):
            parse_scheme(bad)


def test_the_count_model_tells_the_words_its_corpus_had():
    vocab = Vocab.build(TEXT + "qxz")
    kn = KneserNey(vocab.encode(TEXT), len(vocab), order=5)
    words = ["night", "light", "star", "sky", "might", "fight", "ni", "lig", "above", "dove"]
    seen = corpus_words(words, vocab, kn)
    assert dict(zip(words, seen, strict=True)) == {
        "night": True, "light": True, "star": True, "sky": True, "might": False,
        "fight": False, "ni": False, "lig": False, "above": True, "dove": False,
    }  # fmt: skip
    assert kn.seen(vocab.encode(" star").reshape(1, -1)).tolist() == [True]
    lex = lexicon_for(vocab, RhymeBook(), kn)
    assert lex.language == "en" and lex.groups["AY T"] == ["light", "night"]


@pytest.fixture(scope="module")
def en(tmp_path_factory):
    """An untrained English model: the rule must hold whatever it says."""
    return untrained(tmp_path_factory.mktemp("en") / "ck", "e", TEXT)


def last_words(stanza: str) -> list[str]:
    return [english.last_word(ln).lower() for ln in stanza.split("\n") if ln]


def test_every_rhymed_line_ends_on_a_rhyming_word_for_every_seed(en):
    for text in songs(en, n_seeds=2, samples=5, rhyme="ABAB/CCXC"):
        stanzas = text.strip("\n").split("\n\n")
        assert len(stanzas) == 2, text
        first, second = (last_words(s) for s in stanzas)
        assert len(first) == len(second) == 4, text
        for a, b in ((first[0], first[2]), (first[1], first[3]), (second[0], second[1]),
                     (second[1], second[3])):  # fmt: skip
            assert english.strict_rhyme(a) is not None, text
            assert english.strict_rhyme(a) == english.strict_rhyme(b) and a != b, text
        assert all(len(ln) <= MAX_LINE + RUN_ON + 24 for ln in text.split("\n")), text


def test_rhyme_with_sets_the_sound_and_the_prefix_starts_line_one(en):
    for text in songs(en, n_seeds=3, prefix="You ", rhyme="AA", rhyme_with="night"):
        assert text.startswith("You ")
        assert [english.strict_rhyme(w) for w in last_words(text)] == ["AY T", "AY T"], text


def test_the_same_seed_writes_the_same_song(en):
    a = en.generate_text("", rhyme="AABB", seed=5)
    assert a == en.generate_text("", rhyme="AABB", seed=5) and a.count("\n") >= 3


def test_cli_rhyme_alone_json_and_refusals(en, runner):
    ck = en.path.parent.parent
    base = ["generate", "--checkpoint", "e", "--checkpoint-dir", ck, "--prefix", ""]
    r = invoke(runner, [*base, "--rhyme", "AABB", "--seed", "2", "--json"])
    assert r.exit_code == 0, r.stderr
    rec = json.loads(r.stdout)
    form = rec["form"]
    assert form["rhyme"] == "AABB" and form["rhyme_table"] == "CMU"
    rhymes = form["line_rhymes"]
    assert rhymes[0] == rhymes[1] and rhymes[2] == rhymes[3] and None not in rhymes
    assert form["lines"] == [len(ln) for ln in rec["text"].split("\n") if ln]
    cases = [
        (["--form", "5,5"], "for English lyrics give --rhyme alone"),
        (["--rhyme", "AA", "--rhyme-with", "read"], "no word the model can write"),
        (["--rhyme", "AB/"], "letters A-Z"),
    ]
    for args, message in cases:
        r = invoke(runner, [*base, *args])
        assert r.exit_code in (2, 3) and r.stdout == "" and message in r.stderr, (args, r.stderr)


def test_a_model_without_line_breaks_is_refused(tmp_path):
    lm = untrained(tmp_path, "n", "the night is long and the light is gone")
    with pytest.raises(CharlmError, match="never saw a line break"):
        lm.generate_text("", rhyme="AA", seed=1)


def test_an_english_template_gives_its_shape_rhymes_and_chorus(en):
    template = TWINKLE + "\n" + TWINKLE.split("\n", 2)[0] + "\nOh the night is long\n"
    for text in songs(en, n_seeds=2, template=template, repeat_chorus=True):
        stanzas = text.strip("\n").split("\n\n")
        assert [len(s.split("\n")) for s in stanzas] == [4, 2], text
        lines = [ln for s in stanzas for ln in s.split("\n")]
        words = [english.last_word(ln).lower() for ln in lines]
        for a, b in ((0, 1), (2, 3)):  # star/are, high/sky
            assert english.strict_rhyme(words[a]) == english.strict_rhyme(words[b]), text
            assert words[a] != words[b], text
        assert lines[4] == lines[0], text  # the repeated line comes back
        for ln, target in zip(lines, [29, 26, 26, 26], strict=False):
            assert 0.6 * target <= len(ln) <= target + RUN_ON + 24, (ln, text)


def test_an_english_template_without_the_chorus_mark_writes_new_lines(en):
    template = "The night is long\nand the light is gone\n\nThe night is long\n"
    for text in songs(en, n_seeds=2, template=template):
        lines = [ln for ln in text.split("\n") if ln]
        assert len(lines) == 3 and lines[2] != lines[0], text
        rhymes = [english.strict_rhyme(english.last_word(ln)) for ln in lines]
        assert rhymes[0] == rhymes[2] and rhymes[0] is not None, text  # long / long: a rhyme


def rule(text=TEXT, scheme="AA", counts=None, rows=1):
    vocab = Vocab.build(text)
    lex = lexicon_for(vocab, RhymeBook(), counts)
    return vocab, RhymeLines(Shape.of_scheme(scheme), vocab, lex, rows, "")


def test_the_look_ahead_weighs_only_where_a_line_could_end_on_no_rhyme():
    vocab, rl = rule()
    rl.groups[0]["A"] = "AY T"  # the line must end on -ight
    rl.text[0] = "I see the nigh"  # "t" completes night (fits); "s" an unknown word
    looked = []

    def peek_rows(rows, ids):  # the model would end the line after anything
        looked.extend(vocab.tokens[i] for i in ids.tolist())
        out = torch.full((len(ids), len(vocab)), -30.0)
        out[:, vocab.id_of("\n")] = 0.0
        return out

    logits = torch.full((1, len(vocab)), -50.0)
    for ch, v in (("t", 0.0), (" ", 0.0), ("s", 0.0), (",", 0.0)):
        logits[0, vocab.id_of(ch)] = v
    out = rl._look_ahead(logits, peek_rows)[0]
    assert looked == [","]  # after "nigh,": a line could end on "nigh", which does not fit
    at = {ch: float(out[vocab.id_of(ch)]) for ch in "t s,"}
    assert at["t"] == at[" "] == at["s"] > at[","] + 10  # the comma would end it wrongly
    rl.blank[0] = True  # a stanza's blank line is no rhyme line: nothing to weigh
    assert torch.equal(rl._look_ahead(logits, peek_rows), logits)


def test_a_unit_past_the_last_word_and_a_new_line_start_fresh():
    _, rl = rule()
    assert not rl._fits(0, "A", "zzzz") and rl._fits(0, "A", "night")
    rl.survival[0], rl.text[0] = 0.3, "the night"
    rl._wrote(0, "\n")
    assert rl.survival == [1.0] and rl.text == [""] and rl.done == [["the night"]]
    assert rl.groups[0]["A"] == "AY T" and rl.used[0]["A"] == {"night"}


def test_a_chinese_lexicon_keeps_every_group():
    lex = lexicon_for(Vocab.build("家花光霜天前" * 3 + "\n"), RhymeBook())
    assert lex.language == "zh" and lex.groups["发花"] == ["家", "花"]  # group 0 of 十三辙
    assert lex.groups["江阳"] == ["光", "霜"] and lex.groups["言前"] == ["前", "天"]


def test_spelling_a_rhyme_word():
    vocab = Vocab.build("I light lights zz\n。")
    ids = {ch: i for i, ch in enumerate(vocab.tokens)}
    nl, stop = ids["\n"], ids["。"]
    spell = Spelling(ids, (nl,), len(vocab))
    assert spell.spelled_as("i") == "I" and spell.spelled_as("light") == "light"
    assert Spelling({"i": 1}, (0,), 2).spelled_as("i") == "i"  # no capital to write
    words, scores = ["light", "lights"], np.array([-2.0, -5.0])
    row = torch.zeros(len(vocab))
    row[nl] = 3.0  # the model's own chance of the break after the word does not count twice
    out = spell.logits(words, scores, "light", row)
    assert float(out[nl]) == pytest.approx(-2.0) and float(out[ids["s"]]) == -5.0
    assert torch.isinf(out[ids["l"]])
    both = Spelling(ids, (nl, stop), len(vocab)).logits(["光"], np.array([-1.0]), "光", row)
    assert float(both[nl] - both[stop]) == pytest.approx(3.0)  # as the model has them
    assert spell.mask(words, "q").tolist() == [i == nl for i in range(len(vocab))]


def test_the_rhyme_word_comes_once_the_line_has_a_quarter_chance_of_having_ended():
    counts = KneserNey(Vocab.build(TEXT).encode(TEXT), len(Vocab.build(TEXT)), order=5)
    vocab, rl = rule(counts=counts)  # the corpus's -ight words: light, night
    rl.groups[0]["A"] = "AY T"
    rl.text[0], rl.survival[0] = "the long way home ", 0.8
    assert rl._allowed(0, 0.05) is not None and rl.forcing == [None]  # 1 - 0.76 < 0.25
    assert rl._allowed(0, 0.05)[vocab.id_of("\n")] == 0  # the break stays forbidden
    mask = rl._allowed(0, 0.05)  # 1 - 0.69: past a quarter, the rhyme word starts
    assert rl.forcing == [""] and {vocab.tokens[i] for i in np.flatnonzero(mask)} == {"l", "n"}


def test_the_look_ahead_is_used_when_asked(en):
    def text(look: bool) -> str:  # lookahead is a knob of SampleConfig, not an option
        cfg = SampleConfig(length=800, rhyme="AABB", seed=4, lookahead=look)
        return "".join(p[0] for p in en.stream("", cfg))

    assert text(True) != text(False)


def test_a_short_word_must_have_stood_whole():
    text = "the string rings\nthe string rings\n"
    vocab = Vocab.build(text)
    kn = KneserNey(vocab.encode(text), len(vocab), order=6)
    assert corpus_words(["ring", "string", "rings"], vocab, kn).tolist() == [False, True, True]


def test_a_rhyme_word_is_weighed_by_its_first_letter_and_the_rest():
    ids = {"\n": 0, "a": 1, "b": 2}
    spell = Spelling(ids, (0,), 3)
    logp = torch.tensor([-3.0, -1.0, -2.0])
    seen = []

    def rest(seqs):
        seen.extend(seqs)
        return torch.tensor([-0.5, -4.0], dtype=torch.float64)

    assert spell.weigh(["ab", "b"], logp, rest).tolist() == [-1.5, -6.0]
    assert seen == [[1, 2, 0], [2, 0]]  # each word with the line break after it
