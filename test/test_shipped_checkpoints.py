"""Checkpoints shipped in the package carry no path of the machine that
trained them: the repository is installed on other machines, and a path
there says nothing (or names a user's home)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import sense_nodes

SHIPPED = sorted(Path(sense_nodes.__file__).parent.glob("core/*/checkpoints/**/*.pt"))


def _strings(obj, where=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(v, f"{where}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _strings(v, f"{where}[{i}]")
    elif isinstance(obj, str):
        yield where, obj


def test_there_are_shipped_checkpoints():
    assert len(SHIPPED) >= 8


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: "/".join(p.parts[p.parts.index("core") + 1:]))
def test_a_shipped_checkpoint_names_no_machine_path(path):
    raw = torch.load(path, weights_only=True, map_location="cpu")
    meta = {k: v for k, v in raw.items() if k != "state_dict"}
    paths = [(w, s) for w, s in _strings(meta) if s.startswith(("/", "~")) or "/home/" in s or "/root" in s]
    assert not paths, f"{path.name} carries machine paths: {paths}"
