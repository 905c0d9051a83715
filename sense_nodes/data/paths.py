"""Where generated data lives: datasets and scenario bags are cached outside
git, under ``$SENSE_CACHE`` (default ``~/.cache/sense_nodes``)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """The cache directory (created), or a subdirectory of it."""
    root = Path(os.environ.get("SENSE_CACHE", Path.home() / ".cache" / "sense_nodes"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def source_hash(files, names) -> str:
    """12 hex digits of a SHA-256 over each (name, file content) pair, in
    order: the version of the code that made a cached artefact (a cache
    keyed by it is not reused once that code changes)."""
    h = hashlib.sha256()
    for f, name in zip(files, names):
        h.update(name.encode())
        h.update(Path(f).read_bytes())
    return h.hexdigest()[:12]
