"""One self-describing checkpoint file: save atomically, load safely, verify integrity.

The file is a plain dict of primitives and tensors, loaded with `weights_only=True` passed
explicitly, so a file carrying pickled code is refused before any of it runs. A sha256 digest
over everything else in the file (weights, vocabulary, configs, count model, optimizer,
progress, random generator states, carried state) catches a damaged file before any of it is
used: torch does not check the zip's CRCs, so without it a flipped byte in the vocabulary
would load silently and change every generated character.
"""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from charlm.config import ModelConfig
from charlm.data.vocab import Vocab
from charlm.errors import CheckpointError, ResourceError, UsageError
from charlm.version import __version__

FORMAT_VERSION = 2  # 2: the digest covers the whole payload; 1: the weights only
# Bases shipped inside the package (base/build_zh_base.py makes them): a name a user types
# where a run goes. A run of the user's own by that name wins; `builtin:NAME` always means
# the shipped one.
ASSETS = Path(__file__).resolve().parents[1] / "assets"
BUILTIN = {"zh": "zh_base.pt"}
BUILTIN_PREFIX = "builtin:"
REQUIRED_KEYS = ("format_version", "model_config", "vocab", "model_state", "digest")
# the shape of every other entry charlm reads back (a digest-valid file made by another charlm
# or by hand is refused here, naming the entry, not deep inside the command that reads it)
OPTIONAL_TYPES: dict[str, type | tuple[type, ...]] = {
    "charlm_version": str, "corpus": dict, "train_config": dict, "metrics": dict,
    "base": dict, "kn": (dict, type(None)), "members": list, "progress": dict,
    "optimizer_state": dict, "carry": list, "member_best": (dict, type(None)),
}  # fmt: skip


def _tensor_bytes(t: torch.Tensor) -> memoryview | bytes:
    """The tensor's raw bytes as a buffer, without copying them (hashlib reads buffers)."""
    t = t.detach().cpu().contiguous().reshape(-1)  # 1-d: a 0-d tensor cannot be viewed as bytes
    return memoryview(t.view(torch.uint8).numpy()) if t.numel() else b""


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and raw bytes, in sorted name order (format 1)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()


def _feed(h: Any, obj: Any) -> None:
    """Feed one value of a payload to the hash in a canonical, type-tagged form."""
    if isinstance(obj, torch.Tensor):
        h.update(f"T{obj.dtype}{tuple(obj.shape)}|".encode())
        h.update(_tensor_bytes(obj))
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}|".encode())
        # keys may mix types (the optimizer's state is keyed by int): order by type, then text
        for k in sorted(obj, key=lambda k: (type(k).__name__, str(k))):
            _feed(h, k)
            _feed(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)}|".encode())
        for v in obj:
            _feed(h, v)
    elif obj is None or isinstance(obj, (bool, int, float, str)):
        h.update(f"{type(obj).__name__}:{obj!r}|".encode())
    else:
        raise TypeError(f"a checkpoint holds only plain data, not {type(obj).__name__}")


def payload_digest(payload: dict[str, Any]) -> str:
    """sha256 over every entry of a payload but the digest itself."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in payload.items() if k != "digest"})
    return h.hexdigest()


def build_payload(
    model: torch.nn.Module,
    model_cfg: ModelConfig,
    vocab: Vocab,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Everything a checkpoint holds; `extra` adds training state, corpus info and metrics.
    An Ensemble's first network is `model_state`, the others `members` (averaged with it)."""
    from charlm.models.ensemble import networks

    first, *others = [_cpu_state(net) for net in networks(model)]
    payload = {
        "format_version": FORMAT_VERSION,
        "charlm_version": __version__,
        "model_config": {**model_cfg.__dict__},
        "vocab": list(vocab.tokens),
        "model_state": first,
    }
    if others:
        payload["members"] = others
    payload.update(extra)
    payload["digest"] = payload_digest(payload)
    return payload


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def save(payload: dict[str, Any], path: Path) -> None:
    """Write to a temporary file in the same folder, fsync, then os.replace: a crash or a full
    disk at any moment leaves the previous file at `path` whole."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ResourceError(
                f"{path}: disk full while saving; free space (the previous checkpoint is intact)"
            ) from None
        if isinstance(e, OSError):
            raise ResourceError(f"{path}: cannot write checkpoint ({e.strerror})") from None
        raise


REPLACED_RETRIES = 3  # loads in a row that may meet a trainer replacing the file


def _inode(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _load_whole(path: Path, map_location: str | torch.device) -> Any:
    """torch.load with mmap opens the file by name twice (the zip's records, then the mapped
    tensors): a trainer that replaces the file in between (os.replace, every save) would mix
    two checkpoints, which the digest then refuses as damage. The file's identity is read
    before and after; when it changed, the load is done again."""
    for _ in range(REPLACED_RETRIES):
        before = _inode(path)
        payload = torch.load(path, map_location=map_location, weights_only=True, mmap=True)
        if _inode(path) == before:
            return payload
    return payload  # replaced on every try: the digest decides


def _describe(path: Path) -> str:
    try:
        return f"{path} ({path.stat().st_size:,} bytes)"
    except OSError:
        return str(path)


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and verify a checkpoint; any problem is a CheckpointError naming file and field."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint; train one with `charlm train`")
    where = _describe(path)
    if path.stat().st_size == 0:
        raise CheckpointError(f"{where}: empty file, not a charlm checkpoint")
    if not zipfile.is_zipfile(path):
        # charlm always writes torch's zip format; anything else is text, legacy or damaged.
        raise CheckpointError(f"{where}: not a charlm checkpoint (not a torch zip file)")
    try:
        # weights_only=True, explicitly: it wins over TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD, and
        # refuses any pickled class or function, so a malicious file's code never runs.
        # mmap: tensors are mapped, not copied (copy-on-write: in-place updates never reach
        # the file, and charlm replaces files rather than rewriting them); the digest below
        # then reads each byte once. Halves the load of a 258 MB checkpoint.
        payload = _load_whole(path, map_location)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unsafe content"
        raise CheckpointError(
            f"{where}: refused: it holds pickled objects, not plain data ({first[:120]}); "
            "only load checkpoints written by charlm"
        ) from None
    except Exception as e:  # torch raises many types on damaged files; all mean the same
        msg = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{where}: not a readable checkpoint (truncated or not a torch file: {msg})"
        ) from None
    return validate(payload, where)


def validate(payload: Any, where: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise CheckpointError(f"{where}: not a charlm checkpoint (top level is not a dict)")
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"{where}: not a charlm checkpoint (missing {', '.join(missing)})")
    version = payload["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{where}: format_version {version!r} is newer than this charlm understands "
            f"({FORMAT_VERSION}); upgrade charlm"
        )
    for key, kind in OPTIONAL_TYPES.items():
        if key in payload and not isinstance(payload[key], kind):
            raise CheckpointError(
                f"{where}: {key} is a {type(payload[key]).__name__}, not what charlm writes "
                "there (the file comes from another program)"
            )
    state = payload["model_state"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{where}: model_state is not a dict of tensors")
    try:
        digest = payload_digest(payload) if version >= 2 else tensor_digest(state)
    except TypeError as e:
        raise CheckpointError(f"{where}: not a charlm checkpoint ({e})") from None
    if digest != payload["digest"]:
        raise CheckpointError(
            f"{where}: the contents do not match their stored digest (the file is damaged); "
            "use another checkpoint, e.g. last.pt or best.pt"
        )
    return payload


def restore_model(payload: dict[str, Any], where: str, device: torch.device | str = "cpu"):
    """Build the model (on `device`), Vocab and ModelConfig a verified payload describes: a
    CharRNN, or an Ensemble when the payload has `members`."""
    from charlm.models.charrnn import CharRNN
    from charlm.models.ensemble import join

    cfg = ModelConfig.from_dict(payload["model_config"])
    vocab = Vocab(payload["vocab"])
    if len(vocab) != cfg.vocab_size:
        raise CheckpointError(
            f"{where}: vocab has {len(vocab)} entries but model_config.vocab_size is "
            f"{cfg.vocab_size}"
        )
    members = payload.get("members") or []
    if not isinstance(members, list):
        raise CheckpointError(f"{where}: members is not a list of network states")
    nets = []
    for name, state in [("model_state", payload["model_state"]),
                        *((f"members[{i}]", m) for i, m in enumerate(members))]:  # fmt: skip
        net = CharRNN(cfg, device)
        _check_state(net, state, f"{where}: {name}")
        net.load_state_dict(state)
        nets.append(net)
    return join(nets), vocab, cfg


def _check_state(net: torch.nn.Module, state: Any, where: str) -> None:
    expected = net.state_dict()
    if not isinstance(state, dict):
        raise CheckpointError(f"{where} is not a dict of tensors")
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{where} does not fit model_config "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    for name, t in expected.items():
        if not isinstance(state[name], torch.Tensor):
            raise CheckpointError(f"{where}.{name} is not a tensor")
        if tuple(state[name].shape) != tuple(t.shape):
            raise CheckpointError(
                f"{where}.{name} has shape {tuple(state[name].shape)} but "
                f"model_config needs {tuple(t.shape)}"
            )


def restore_mixture(
    payload: dict[str, Any],
    vocab_size: int,
    where: str,
    model: torch.nn.Module | None = None,
    cache_root: Path | None = None,
):
    """The count model and weight a checkpoint ships with, or None for the network alone;
    with `model`, its dynamic evaluation's scales checked against the network's weights; a
    lexicon's tables cached under `cache_root` (the checkpoint folder) where given."""
    from charlm.scoring.mixture import from_payload

    block = payload.get("kn")
    if block is None:
        return None
    try:
        mixture = from_payload(block, vocab_size, Vocab(payload["vocab"]), cache_root)
        if model is not None and mixture.dynamic is not None:
            mixture.dynamic.check_fits(model)
        return mixture
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: bad kn block ({e})") from None


def _no_best_yet(folder: Path) -> str:
    return (
        f"{folder}: has no best.pt yet (the run stopped before its first evaluation); continue "
        f"it with `charlm train --run {folder.name} --resume`, or pass --checkpoint "
        f"{folder / 'last.pt'} to use its weights as they are"
    )


def builtin_name(spec: str | None, checkpoint_dir: Path) -> str | None:
    """The shipped base `spec` names, or None: `builtin:zh` always, `zh` unless a file or a
    run of that name exists (the user's own files are never shadowed)."""
    if not spec:
        return None
    if spec.startswith(BUILTIN_PREFIX):
        name = spec[len(BUILTIN_PREFIX) :]
        if name not in BUILTIN:
            raise CheckpointError(
                f"{spec}: no such shipped base; the shipped bases are "
                + ", ".join(f"{BUILTIN_PREFIX}{n}" for n in BUILTIN)
            )
        return name
    if (
        spec in BUILTIN
        and not _names_checkpoint(Path(spec))
        and not (checkpoint_dir / spec).exists()
    ):
        return spec
    return None


def _names_checkpoint(path: Path) -> bool:
    """A path that is a checkpoint file or a run folder holding one: only that hides a shipped
    base's name (any folder called zh in the working folder did)."""
    return path.is_file() or (path / "best.pt").is_file() or (path / "last.pt").is_file()


def shadow_note(spec: str | None, checkpoint_dir: Path) -> str | None:
    """What to tell a user whose own run hides a shipped base's name."""
    if spec in BUILTIN and builtin_name(spec, checkpoint_dir) is None:
        return (
            f"{spec} is your run under {checkpoint_dir}/; the shipped one is {BUILTIN_PREFIX}{spec}"
        )
    return None


def builtin_path(name: str) -> Path:
    path = ASSETS / BUILTIN[name]
    if not path.is_file():
        raise CheckpointError(
            f"{path}: the shipped base {name!r} is missing from this install; reinstall "
            "charlm, or rebuild it with base/build_zh_base.py"
        )
    return path


def resolve(spec: str | None, checkpoint_dir: Path, which: str = "best") -> Path:
    """A checkpoint path from a path, a run name, a shipped base's name (`zh`,
    `builtin:zh`), or None (the newest run's `which`.pt). An empty one (a script's unset
    variable) is refused: it would have meant "the newest run" without a word."""
    if spec is not None and not spec.strip():
        raise UsageError("--checkpoint is empty; name a run, a .pt file or zh (or leave it "
                         "out for the newest run)")  # fmt: skip
    name = builtin_name(spec, checkpoint_dir)
    if name is not None:
        return builtin_path(name)
    if spec:
        p = Path(spec)
        if p.is_file() or p.suffix == ".pt":
            return p
        # a folder here that holds no checkpoint (a corpus unzipped to ./kjv) does not hide
        # the run of that name
        local = p.is_dir() and any((p / f).is_file() for f in ("best.pt", "last.pt"))
        under = checkpoint_dir / spec
        folder = p if local or (p.is_dir() and not under.is_dir()) else under
        run = folder / f"{which}.pt"
        if run.is_file() or (folder == p and p.is_dir() and not (folder / "last.pt").is_file()):
            return run
        if which == "best" and (folder / "last.pt").is_file():
            raise CheckpointError(_no_best_yet(folder))
        raise CheckpointError(
            f"{spec}: neither a checkpoint file nor a run under {checkpoint_dir}/; "
            "list runs with `ls " + str(checkpoint_dir) + "`"
        )
    runs = sorted(
        checkpoint_dir.glob(f"*/{which}.pt"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    if not runs:
        raise CheckpointError(
            f"no checkpoint under {checkpoint_dir}/; run `charlm train` first or pass --checkpoint"
        )
    return runs[0]
