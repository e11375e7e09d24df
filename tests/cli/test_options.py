"""Each option declared once: `charlm train`'s parameters and TrainOptions' fields are the
same set, so the mapping between them (cli.options.train_options) is derived, not written."""

import inspect
import typing
from dataclasses import fields

from charlm.cli import options as o
from charlm.cli.train import train
from charlm.training.options import TrainOptions

NOT_TRAINING = {"device", "checkpoint_dir", "quiet", "json_out"}  # where and how, not what


def test_every_train_option_is_a_field_and_every_field_an_option():
    params = set(inspect.signature(train).parameters) - NOT_TRAINING
    assert params == {f.name for f in fields(TrainOptions)} - o.NOT_OPTIONS


def test_train_options_carries_every_value_by_name():
    values = {name: f"v-{name}" for name in inspect.signature(train).parameters}
    values["preview"] = ["分开", "不"]
    opts = o.train_options(values)
    for f in fields(TrainOptions):
        if f.name in o.NOT_OPTIONS:
            assert getattr(opts, f.name) is None
        elif f.name == "preview":
            assert opts.preview == ("分开", "不")
        else:
            assert getattr(opts, f.name) == f"v-{f.name}", f.name


def test_shared_options_are_one_declaration():
    """The model options `train` and `info` take are the same objects, help text included."""
    from charlm.cli.info import info

    t = typing.get_type_hints(train, include_extras=True)
    i = typing.get_type_hints(info, include_extras=True)
    for name in ("cell", "embed", "hidden", "layers", "tie", "impl", "checkpoint_dir"):
        assert t[name] is i[name], name  # the very same Annotated alias
