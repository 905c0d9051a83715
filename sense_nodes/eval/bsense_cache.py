"""The BSense evaluation's cache of deterministic per-case work.

What the evaluation would otherwise redo (every stage, every fold, every
run) is computed once per case and kept, in memory for the run and on disk
under ``$SENSE_CACHE/bsense_eval`` for the next run:

* ``model``: a day's noise fingerprints (Section 3.2), fitted on its
  UAV-free frames;
* ``clusters``: each frame's noise-filter keep mask (Section 3.2) and its
  clusters (Section 3.3.1), with the wall time each took; stages 2-5, the
  threshold source and the TrajFormer windows all start from the same ones;
* ``confidences``: C_s, C_v of the objects matched to a UAV (Section 3.3.4);
* ``windows``: a case's TrajFormer training windows at one fold's object
  thresholds (Section 3.4.2), shared by every fold with those thresholds;
* ``classifier``: a fold's trained TrajFormer, keyed by its training
  windows and settings (and the code that trains it, which the windows do
  not depend on).

Every entry is named by a SHA-256 over the source of the code that made it
(:func:`~sense_nodes.data.paths.source_hash`, the simulator's version
included) and over its inputs (the case's scenario spec, frame cap, the
noise model's bytes, the thresholds' exact values), so a change to any of
them makes a new entry rather than reusing a stale one. Arrays are stored as
``.npz`` written atomically and read with ``allow_pickle=False``; the
classifier goes through the suite's checkpoint writer and safe loader. An
entry that cannot be read is recomputed (and the reason printed), never
trusted. ``enabled=False`` (``--no-cache``) keeps the in-memory reuse within
the run but neither reads nor writes the disk.
"""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np

# the code each kind of entry depends on, by module file; the simulator's own
# version (bs_sim.sim_version) is added to every key
POINT_MODULES = ("core/bsense/noise_model.py", "core/bsense/fallback.py", "core/bsense/cubes.py",
                 "core/bsense/normality.py",
                 "core/bsense/clustering.py", "eval/bsense_cases.py", "eval/bsense_cache.py")
CHAIN_MODULES = POINT_MODULES + tuple(
    f"core/bsense/{m}.py" for m in ("object_filter", "stages", "pipeline", "tracker", "imm_ukf", "tracks",
                                    "track_roles", "verification", "trajformer", "training")) + (
    "eval/bsense_stage.py", "eval/bsense_metrics.py", "eval/bsense_record.py", "core/checkpoint.py")
# a trained network depends on the chain (its windows) and on how the
# evaluation trains it; changing only the latter keeps the windows
CLASSIFIER_MODULES = CHAIN_MODULES + ("eval/bsense_verify.py", "core/bsense/boosted.py")
# in neither: eval/bsense_policy.py (the output policy is replayed on the
# recorded tracks every run, never stored), so changing it reuses every entry


def code_hash(modules) -> str:
    """The version of ``modules`` (paths under the package) and of the simulator."""
    from sense_nodes.data.bs_sim import sim_version
    from sense_nodes.data.paths import source_hash

    root = Path(__file__).resolve().parent.parent
    return f"{sim_version()}-{source_hash([root / m for m in modules], list(modules))}"


def digest(*parts) -> str:
    """24 hex digits of a SHA-256 over ``parts`` (str, bytes or arrays, in order)."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(str((p.dtype.str, p.shape)).encode())
            h.update(np.ascontiguousarray(p).tobytes())
        else:
            h.update(p if isinstance(p, bytes) else repr(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


class StageCache:
    """In-memory memo for the run plus, when ``enabled``, ``.npz`` files
    under ``root`` (default ``$SENSE_CACHE/bsense_eval``)."""

    def __init__(self, enabled: bool = True, root: Path | None = None):
        from sense_nodes.data.paths import cache_dir

        self.enabled = bool(enabled)
        self.root = Path(root) if root is not None else (cache_dir("bsense_eval") if enabled else None)
        self.memo: dict = {}
        self.hits = self.misses = 0
        self.point_code = code_hash(POINT_MODULES)
        self.chain_code = code_hash(CHAIN_MODULES)
        self.classifier_code = code_hash(CLASSIFIER_MODULES)

    def path(self, kind: str, key: str, suffix: str = ".npz") -> Path | None:
        return None if not self.enabled else self.root / kind / f"{key}{suffix}"

    def load(self, kind: str, key: str) -> dict | None:
        """The arrays stored under (kind, key), or None (absent, disabled or unreadable)."""
        path = self.path(kind, key)
        if path is None or not path.exists():
            self.misses += 1
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError) as exc:
            print(f"cache entry '{path}' unreadable ({exc}): recomputing it")
            self.misses += 1
            return None
        self.hits += 1
        return arrays

    def save(self, kind: str, key: str, arrays: dict) -> None:
        """Atomic write (temp file + rename) of plain arrays (no objects)."""
        path = self.path(kind, key)
        if path is None:
            return
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write(path, buf.getvalue())

    def memoised(self, kind: str, key: str, compute, encode, decode):
        """``compute()`` once per (kind, key): from memory, else from disk
        (``decode(arrays)``), else computed and stored (``encode(value)``)."""
        if (kind, key) in self.memo:
            return self.memo[(kind, key)]
        arrays = self.load(kind, key)
        value = decode(arrays) if arrays is not None else None
        if value is None:
            value = compute()
            self.save(kind, key, encode(value))
        self.memo[(kind, key)] = value
        return value

    def summary(self) -> str:
        where = f"'{self.root}'" if self.enabled else "disabled (--no-cache)"
        return f"stage cache {where}: {self.hits} entries read, {self.misses} computed"


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
