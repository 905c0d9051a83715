"""Simulated datasets of (network input, label image, UAV positions), generated
in batches and cached under ``sense_nodes.data.paths.cache_dir('imaging')``."""
from __future__ import annotations

import hashlib
import os
import json
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from sense_nodes.core.imaging.backprojection import back_project
from sense_nodes.core.imaging.geometry import ImagingConfig
from sense_nodes.core.imaging.sensing_matrix import SensingMatrix
from sense_nodes.core.imaging.subspace_pursuit import sp_image
from sense_nodes.core.imaging.targets import label_image, measure, sample_scene

INPUTS = ("bp", "sp", "y")
# the modules that draw scenes, measure them and form the inputs: a cached
# set is stale once any of them changes (its key carries their hash)
_GENERATOR_MODULES = ("dataset", "backprojection", "channel", "geometry", "sensing_matrix",
                      "subspace_pursuit", "targets")


def generator_version() -> str:
    """A hash of the code that generates the sets (see ``_GENERATOR_MODULES``)."""
    from sense_nodes.data.paths import source_hash
    here = os.path.dirname(os.path.abspath(__file__))
    return source_hash([os.path.join(here, f"{name}.py") for name in _GENERATOR_MODULES], _GENERATOR_MODULES)


@dataclass
class ImagingSet:
    """``x``: complex A^H y (bp), real |SP| image (sp) or raw complex y (y);
    ``labels``: (n, N_v) float32; ``positions``: list of (M, 3) arrays."""

    kind: str
    x: np.ndarray
    labels: np.ndarray
    positions: list

    def __len__(self):
        return len(self.labels)


def generate(cfg: ImagingConfig, S: SensingMatrix, n: int, seed: int, kind: str = "bp",
             off_grid: bool = True, n_uavs: int | None = None, sparsity: int = 6,
             batch: int = 128, progress: bool = True) -> ImagingSet:
    """Draw ``n`` scenes and their network inputs (Sec. V-C)."""
    if kind not in INPUTS:
        raise ValueError(f"input kind={kind!r} must be one of {INPUTS}")
    if n < 1:
        raise ValueError(f"n={n} must be >= 1")
    rng = np.random.default_rng(seed)
    xs, labels, positions = [], [], []
    bar = tqdm(total=n, desc=f"simulating {kind}", unit="scene", disable=not progress, leave=False)
    for start in range(0, n, batch):
        scenes = [sample_scene(cfg, rng, n_uavs=n_uavs, off_grid=off_grid)
                  for _ in range(min(batch, n - start))]
        y = measure(cfg, scenes, rng)
        if kind == "bp":
            xs.append(back_project(S, y))
        elif kind == "sp":
            xs.append(np.stack([sp_image(S, yi, sparsity) for yi in y]))
        else:
            xs.append(y)
        labels.append(np.stack([label_image(cfg, s) for s in scenes]))
        positions += [s.positions.astype(np.float32) for s in scenes]
        bar.update(len(scenes))
    bar.close()
    return ImagingSet(kind, np.concatenate(xs), np.concatenate(labels), positions)


def cached(cfg: ImagingConfig, S: SensingMatrix, n: int, seed: int, kind: str = "bp",
           off_grid: bool = True, n_uavs: int | None = None, sparsity: int = 6,
           progress: bool = True) -> ImagingSet:
    """``generate`` with an on-disk cache keyed by every argument and by
    :func:`generator_version` (a set made by older code is not reused)."""
    from sense_nodes.data.paths import cache_dir
    key = json.dumps(dict(cfg=cfg.to_dict(), n=n, seed=seed, kind=kind, off_grid=off_grid,
                          n_uavs=n_uavs, sparsity=sparsity if kind == "sp" else None,
                          v=generator_version()), sort_keys=True)
    path = cache_dir("imaging") / f"set_{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"
    if path.exists():
        z = np.load(path)
        counts = z["counts"]
        pos = np.split(z["positions"], np.cumsum(counts)[:-1]) if len(counts) else []
        return ImagingSet(kind, z["x"], z["labels"], list(pos))
    data = generate(cfg, S, n, seed, kind, off_grid, n_uavs, sparsity, progress=progress)
    counts = np.array([len(p) for p in data.positions])
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, x=data.x, labels=data.labels, counts=counts,
             positions=np.concatenate(data.positions) if counts.sum() else np.zeros((0, 3), np.float32))
    tmp.replace(path)
    return data
