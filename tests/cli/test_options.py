"""Each option declared once: `charlm train`'s parameters and TrainOptions' fields are the
same set, so the mapping between them (cli.options.train_options) is derived, not written."""

import inspect
import typing
from dataclasses import fields

import pytest

from charlm.cli import app
from charlm.cli import options as o
from charlm.cli.train import train
from charlm.training.options import TrainOptions
from tests.conftest import invoke

NOT_TRAINING = o.TRAIN_SHELL  # where and how, not what


def test_every_train_option_is_a_field_and_every_field_an_option():
    params = set(inspect.signature(train).parameters) - NOT_TRAINING
    assert params == {f.name for f in fields(TrainOptions)} - o.NOT_OPTIONS


def test_train_options_carries_every_value_by_name():
    values = {name: f"v-{name}" for name in inspect.signature(train).parameters}
    values["preview"] = ["分开", "不"]
    values["softmax"] = "full"  # checked when given (TrainOptions): a real one, carried by name
    opts = o.train_options(values)
    for f in fields(TrainOptions):
        if f.name in o.NOT_OPTIONS:
            assert getattr(opts, f.name) is None
        elif f.name == "preview":
            assert opts.preview == ("分开", "不")
        elif f.name == "softmax":
            assert opts.softmax == "full"
        else:
            assert getattr(opts, f.name) == f"v-{f.name}", f.name


def test_shared_options_are_one_declaration():
    """The model options `train` and `info` take are the same objects, help text included."""
    from charlm.cli.info import info

    t = typing.get_type_hints(train, include_extras=True)
    i = typing.get_type_hints(info, include_extras=True)
    for name in ("cell", "embed", "hidden", "layers", "tie", "impl", "checkpoint_dir"):
        assert t[name] is i[name], name  # the very same Annotated alias


@pytest.mark.parametrize("command", ["train", "generate", "evaluate", "info"])
def test_help_lists_every_option_under_a_titled_group(runner, command):
    from charlm.cli.options import HELP_GROUPS

    r = invoke(runner, [command, "--help"])
    assert r.exit_code == 0 and "Other options" not in r.stdout
    for title, _ in HELP_GROUPS[command]:
        assert f"\n{title}:\n" in r.stdout


def test_help_lists_the_allowed_values_and_the_shell_completes_them(runner, tmp_path):
    import typer

    from charlm.cli.options import complete_from, complete_run

    text = invoke(runner, ["train", "--help"]).stdout
    assert "--cell [rnn|gru|lstm]" in text and "--sampler [random|consecutive]" in text
    assert "(default:" not in text  # one style: [default: ...]
    assert complete_from(("rnn", "gru", "lstm"))("g") == ["gru"]
    for name in ("jay", "jazz", "tang", ".cache"):
        (tmp_path / name).mkdir()
    ctx = typer.Context(typer.main.get_command(app))
    ctx.params["checkpoint_dir"] = tmp_path
    assert complete_run(ctx, "ja") == ["jay", "jazz"] and complete_run(ctx, "") == [
        "jay", "jazz", "tang"
    ]  # fmt: skip


def test_the_command_list_shows_whole_summaries(runner):
    text = invoke(runner, ["--help"]).stdout
    commands = text.split("Commands:")[1].strip().splitlines()
    assert len(commands) == 8 and not any(line.rstrip().endswith("...") for line in commands)
