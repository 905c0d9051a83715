"""The one safe way to write and read a model file.

Every learned model of the suite (TrajFormer, the imaging networks, DiffLoc's
score networks, FWA's detection and localisation networks) is stored by
:func:`save_checkpoint` and read back by :func:`load_checkpoint`. Reading a
file never executes code and never hands a caller weights it cannot use:

- ``torch.load(weights_only=True)``: the unpickler accepts tensors and plain
  containers only, so a file carrying a pickled object is refused, not run;
- a ``format`` tag, the model ``kind`` and a format ``version`` the caller
  states, so a file of another model or an older layout is refused with the
  reason;
- a SHA-256 over the payload (config and every tensor), so a bit flip or a
  truncated or edited file is refused;
- finite floating-point tensors only;
- :func:`load_state` loads strictly: a missing, extra or wrongly shaped
  tensor (a config that does not match the weights) is refused.

Any failure raises :class:`CheckpointError`, a one-line message that names
the file and the reason (the CLI prints it without a traceback).

    save_checkpoint(path, kind="diffloc", version=1, config=cfg_dict,
                    state_dict=net.state_dict(), extra={"norm": {...}})
    ck = load_checkpoint(path, kind="diffloc", version=1)
    net = load_state(Network(**ck.config), ck)

``config`` and ``extra`` hold JSON-like values (dicts, lists, str, int,
float, bool, None) and tensors (e.g. normalisation statistics); anything else
is refused at save time, so a file that loads is one this module could write.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch

FORMAT = "sense_nodes.checkpoint"


class CheckpointError(ValueError):
    """A model file that cannot be used; the message names the file and why."""


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns (all tensors on ``map_location``)."""

    path: Path
    kind: str
    version: int
    config: dict
    state_dict: dict[str, torch.Tensor]
    extra: dict = field(default_factory=dict)


def _plain(value: Any, where: str) -> Any:
    """Refuse values the weights-only unpickler would not read back."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"checkpoint {where}: key {k!r} is not a string")
            out[k] = _plain(v, f"{where}.{k}")
        return out
    if hasattr(value, "item") and hasattr(value, "dtype"):  # numpy scalar
        return value.item()
    raise TypeError(f"checkpoint {where}: {type(value).__name__} cannot be stored safely")


def _digest_update(h, value: Any) -> None:
    """Feed a plain value into the hash in a canonical order."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(value, dict):
        h.update(b"{")
        for k in sorted(value):
            h.update(json.dumps(k).encode())
            _digest_update(h, value[k])
        h.update(b"}")
    elif isinstance(value, list):
        h.update(b"[")
        for v in value:
            _digest_update(h, v)
        h.update(b"]")
    elif isinstance(value, float) and not math.isfinite(value):
        h.update(repr(value).encode())
    else:
        h.update(json.dumps(value).encode())


def payload_digest(kind: str, version: int, config: dict, state_dict: dict, extra: dict) -> str:
    """SHA-256 (hex) over everything a checkpoint carries but its tag."""
    h = hashlib.sha256()
    _digest_update(h, {"kind": kind, "version": version, "config": config,
                       "state_dict": state_dict, "extra": extra})
    return h.hexdigest()


def _tensors(value: Any, where: str) -> Iterable[tuple[str, torch.Tensor]]:
    if isinstance(value, torch.Tensor):
        yield where, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _tensors(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _tensors(v, f"{where}[{i}]")


def save_checkpoint(path, *, kind: str, version: int, config: dict,
                    state_dict: dict[str, torch.Tensor], extra: dict | None = None) -> Path:
    """Write a checkpoint atomically (temporary file, then rename).

    Refuses non-finite weights: a model that diverged is not saved over a
    good one."""
    path = Path(path)
    config = _plain(dict(config), "config")
    extra = _plain(dict(extra or {}), "extra")
    state = {str(k): v.detach().cpu().clone() for k, v in state_dict.items()}
    for name, t in list(_tensors(state, "state_dict")) + list(_tensors(extra, "extra")):
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise CheckpointError(f"{path}: refusing to save non-finite values in {name}")
    payload = {"format": FORMAT, "kind": kind, "version": int(version), "config": config,
               "state_dict": state, "extra": extra,
               "sha256": payload_digest(kind, int(version), config, state, extra)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first if len(first) <= 200 else first[:197] + "..."


def _read(path: Path, map_location="cpu") -> dict:
    """The file's payload through the weights-only unpickler, with its format tag checked."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        raw = path.read_bytes()
        ck = torch.load(io.BytesIO(raw), map_location=map_location, weights_only=True)
    except Exception as exc:  # the unpickler's refusals and corrupt archives alike
        reason = _short(exc)
        if "Weights only load failed" in reason or "Unsupported global" in str(exc):
            reason = "it holds objects other than tensors and plain values (refused, nothing executed)"
        raise CheckpointError(f"{path}: not a readable checkpoint: {reason}") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a sense_nodes checkpoint (no '{FORMAT}' tag)")
    return ck


def load_checkpoint(path, *, kind: str, version: int | Iterable[int],
                    map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read and verify a checkpoint written by :func:`save_checkpoint`.

    ``version``: the format version(s) the caller can read."""
    return load_any_checkpoint(path, {kind: version}, map_location=map_location)


def load_any_checkpoint(path, accept: dict, *, what: str | None = None,
                        map_location: str | torch.device = "cpu") -> Checkpoint:
    """:func:`load_checkpoint` for callers that take several model kinds:
    ``accept`` maps each kind to the format version(s) read of it; the file
    is read once and ``Checkpoint.kind`` says which it holds. ``what`` names
    the accepted kinds in the refusal (default: the kinds themselves)."""
    path = Path(path)
    ck = _read(path, map_location)
    kind = ck.get("kind")
    if kind not in accept:
        names = " or ".join(f"'{k}'" for k in accept)
        raise CheckpointError(f"{path}: a '{kind}' checkpoint, not {what or names}")
    version = accept[kind]
    versions = {int(version)} if isinstance(version, int) else {int(v) for v in version}
    if ck.get("version") not in versions:
        raise CheckpointError(f"{path}: format version {ck.get('version')}; this code reads "
                              f"version {', '.join(map(str, sorted(versions)))} (retrain or convert it)")
    config, state, extra = ck.get("config"), ck.get("state_dict"), ck.get("extra", {})
    if not isinstance(config, dict) or not isinstance(state, dict) or not isinstance(extra, dict):
        raise CheckpointError(f"{path}: config, state_dict or extra is missing or malformed")
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: state_dict holds values that are not tensors")
    if payload_digest(kind, ck["version"], config, state, extra) != ck.get("sha256"):
        raise CheckpointError(f"{path}: checksum mismatch (the file was altered or damaged)")
    for name, t in list(_tensors(state, "state_dict")) + list(_tensors(extra, "extra")):
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise CheckpointError(f"{path}: non-finite values in {name}")
    return Checkpoint(path=path, kind=kind, version=int(ck["version"]), config=config,
                      state_dict=state, extra=extra)


def load_state(module: torch.nn.Module, ck: Checkpoint) -> torch.nn.Module:
    """Load ``ck``'s weights into ``module`` strictly; refusal names the file.

    Tensors are cast to the module's own dtype (a checkpoint may store
    float16 to halve its size)."""
    own = module.state_dict()
    missing = sorted(set(own) - set(ck.state_dict))
    unexpected = sorted(set(ck.state_dict) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{'...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:3])}{'...' if len(unexpected) > 3 else ''}")
        raise CheckpointError(f"{ck.path}: weights do not match the configured network ({'; '.join(parts)})")
    cast = {}
    for k, v in ck.state_dict.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise CheckpointError(f"{ck.path}: {k} has shape {tuple(v.shape)}, the configured network "
                                  f"needs {tuple(own[k].shape)}")
        cast[k] = v.to(own[k].dtype) if v.is_floating_point() else v
    module.load_state_dict(cast, strict=True)
    return module
