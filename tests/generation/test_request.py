"""The generation request: one owner of generate's options, the same bytes from CLI and API."""

import json
from dataclasses import fields

import pytest

import charlm
from charlm.cli.generate import REQUEST_FIELDS
from charlm.errors import UsageError
from charlm.generation.request import (
    AUTO_MAX_COPY,
    DEFAULT_LENGTH,
    GenerationRequest,
    help_of,
)

from ..conftest import invoke, train_tiny


@pytest.fixture(scope="module")
def ck(tmp_path_factory):
    tiny = ["--cell", "gru", "--embed", "16", "--hidden", "32", "--batch-size", "8", "--seq-len",
            "16", "--max-steps", "30", "--eval-every", "15", "--seed", "5"]  # fmt: skip
    return train_tiny(tmp_path_factory.mktemp("req"), "r", *tiny)


# (CLI arguments, the same as API keywords): free text, a form, a template, an acrostic, the
# copy guard off and tight, adaptation off, several samples, a rhyme scheme alone
MATRIX = [
    (["--length", "40", "--seed", "1"], {"length": 40, "seed": 1}),
    (["--form", "5,5/7,7", "--seed", "2"], {"form": "5,5/7,7", "seed": 2}),
    (["--form", "七言绝句", "--seed", "3", "--prefix", "分开"],
     {"form": "七言绝句", "seed": 3, "prefix": "分开"}),
    (["--template", "@T", "--seed", "4"], {"template": "分开的时候\n我还在想你\n", "seed": 4}),
    (["--acrostic", "分不天", "--seed", "5"], {"acrostic": "分不天", "seed": 5}),
    (["--max-copy", "0", "--lines", "3", "--seed", "6"], {"max_copy": 0, "lines": 3, "seed": 6}),
    (["--max-copy", "4", "--temperature", "1.2", "--top-k", "5", "--seed", "7"],
     {"max_copy": 4, "temperature": 1.2, "top_k": 5, "seed": 7}),
    (["--no-adapt", "--top-p", "0.9", "--length", "60", "--seed", "8"],
     {"adapt": False, "top_p": 0.9, "length": 60, "seed": 8}),
    (["--rhyme", "AABB", "--seed", "9"], {"rhyme": "AABB", "seed": 9}),
]  # fmt: skip


@pytest.mark.parametrize(("args", "kwargs"), MATRIX)
def test_cli_and_api_write_the_same_bytes(ck, runner, tmp_path, args, kwargs):
    tpl = tmp_path / "t.txt"
    tpl.write_text("分开的时候\n我还在想你\n", encoding="utf-8")
    args = [str(tpl) if a == "@T" else a for a in args]
    r = invoke(runner, ["generate", "--checkpoint", "r", "--checkpoint-dir", ck, *args])
    assert r.exit_code == 0, r.stderr
    lm = charlm.load("r", checkpoint_dir=ck, device="cpu")
    text = lm.generate_text(**kwargs)
    assert r.stdout.encode() == (text + ("" if text.endswith("\n") else "\n")).encode()
    # several samples: the API's records are the CLI's --json lines, byte for byte
    j = invoke(runner, ["generate", "--checkpoint", "r", "--checkpoint-dir", ck, *args,
                        "--num-samples", "2", "--json", "--report-novelty"])  # fmt: skip
    assert j.exit_code == 0, j.stderr
    recs = lm.samples(**kwargs, num_samples=2, report_novelty=True)
    assert [json.dumps(x, ensure_ascii=False) for x in recs] == j.stdout.splitlines()


def test_the_api_guards_copies_by_default_as_the_cli(ck):
    lm = charlm.load("r", checkpoint_dir=ck, device="cpu")
    run = lm.prepare(prefix="分开", seed=1)
    assert run.cfg.max_copy == AUTO_MAX_COPY and run.index is not None
    assert lm.prepare(prefix="分开", seed=1, max_copy=0).cfg.max_copy == 0
    assert run.cfg.length == DEFAULT_LENGTH
    assert lm.prepare(seed=1, lines=3).cfg.length == 3 * DEFAULT_LENGTH


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"length": "40"}, "--length must be a whole number"),
        ({"temperature": "hot"}, "--temperature must be a number"),
        ({"top_k": 2.5}, "--top-k must be a whole number"),
        ({"num_samples": True}, "--num-samples must be a whole number"),
        ({"prefix": 3}, "--prefix must be text"),
        ({"lenght": 4}, "unknown generate option.*lenght"),
        ({"length": -1}, "--length must be in"),
        ({"form": "7,7", "template": "x\n"}, "choose one"),
        ({"template": " \n"}, "--template is empty"),
        ({"acrostic": "春夏秋", "lines": 2}, "fewer than the 3 lines"),
        ({"max_copy": -3}, "--max-copy must be 0 or 2-64"),
    ],
)
def test_bad_requests_are_usage_errors_before_any_text(kwargs, match):
    with pytest.raises(UsageError, match=match):
        GenerationRequest.from_fields(kwargs)


def test_every_request_field_is_a_generate_option_with_its_help(runner):
    import inspect

    from charlm.cli.generate import generate

    names = {f.name for f in fields(GenerationRequest)}
    assert names == REQUEST_FIELDS <= set(inspect.signature(generate).parameters)
    r = invoke(runner, ["generate", "--help"])
    flat = " ".join(r.stdout.split())
    for name in names:
        assert "--" + name.replace("_", "-") in flat
    assert " ".join(help_of("line_candidates").split()[:6]) in flat
