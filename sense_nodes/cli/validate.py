"""Checks of command-line values made before any work starts, so a typo costs
a one-line error, not a finished run that cannot save its result."""
from __future__ import annotations

import math
import os
from pathlib import Path

from sense_nodes.errors import UserError


def check_positive(value: float | None, flag: str) -> None:
    """A finite number above zero (or not given)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UserError(f"{flag} must be a finite number above 0, got {value}")


def check_output_path(path: str, flag: str, directory: bool = False) -> None:
    """``path`` can be written: its nearest existing parent is a writable
    folder, and the path itself is not a folder (or, for ``directory``
    outputs such as bags, not a file)."""
    p = Path(path)
    if not str(path).strip():
        raise UserError(f"{flag}: empty path")
    if p.exists() and p.is_dir() != directory:
        raise UserError(f"{flag} {path}: is a {'file' if directory else 'folder'}, "
                        f"expected a {'folder' if directory else 'file'} path")
    parent = p.parent
    while not parent.exists():
        if parent == parent.parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{flag} {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: cannot write in {parent}")
