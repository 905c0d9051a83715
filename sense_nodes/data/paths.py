"""Where generated data lives: datasets and scenario bags are cached outside
git, under ``$SENSE_CACHE`` (default ``~/.cache/sense_nodes``)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """The cache directory (created), or a subdirectory of it."""
    root = Path(os.environ.get("SENSE_CACHE", Path.home() / ".cache" / "sense_nodes"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
