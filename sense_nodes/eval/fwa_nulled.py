"""The background-nulled network input (core/fwa/nulled.py) of every scene
of an ``fwa`` dataset, for training and evaluating the networks on it.

Computed once per dataset, noise setting and subspace calibration from
the loader's delay taps (the numbers the nodes get from the CFRs, see
core/fwa/features.py) and cached as a float16 memory map under
``$SENSE_CACHE/fwa_nulled``, keyed by the dataset, the calibration's
digest and a hash of the code that makes the maps.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from sense_nodes.errors import UserError


def _code_hash() -> str:
    from sense_nodes.data.paths import source_hash
    core = Path(__file__).parents[1] / "core" / "fwa"
    csi = Path(__file__).parents[1] / "data" / "csi"
    files = [core / "nulled.py", core / "subspace.py", core / "preprocess.py", Path(__file__),
             csi / "fwa_pairs.py", csi / "cfr.py"]
    return source_hash(files, [f.name for f in files])


def load_calibration(path, ds, noise: bool, snr_offset_db: float):
    """The subspace calibration at ``path`` (None: the cache's for ``ds``),
    refused with the command that makes one when it is missing or was made
    on other data."""
    from sense_nodes.core.fwa.calibration import MAKE_COMMAND, SubspaceCalibration, default_path
    try:
        path = path or default_path(ds.path.name)
        cal = SubspaceCalibration.load(path)
    except (OSError, ValueError) as exc:
        raise UserError(str(exc)) from None
    m = ds.manifest
    want = {"seed": m["seed"], "samples": m["num_samples"], "noise": bool(noise),
            "snr_offset_db": float(snr_offset_db)}
    got = {k: cal.info.get(k) for k in want}
    if got != want:
        raise UserError(f"{path}: calibrated on {got}, the data here is {want}; "
                        f"remake it with `{MAKE_COMMAND} --dataset {ds.path}`")
    return cal


def _cache_path(ds, digest: str, noise: bool, snr_offset_db: float) -> Path:
    from sense_nodes.data.paths import cache_dir
    m = ds.manifest
    key = json.dumps(dict(path=str(Path(ds.path).resolve()), seed=m["seed"], n=m["num_samples"],
                          code=m["code_version"], noise=bool(noise), snr=float(snr_offset_db),
                          cal=digest, v=_code_hash()), sort_keys=True)
    return cache_dir("fwa_nulled") / (hashlib.sha1(key.encode()).hexdigest()[:16] + ".npy")


def nulled_maps_all(ds, cal, noise: bool, snr_offset_db: float, progress: bool = True) -> np.ndarray:
    """[S, P, 8, 8, n_taps] float16 (memory-mapped) maps of every scene;
    an interrupted run leaves no file that loads."""
    from threadpoolctl import threadpool_limits
    from tqdm import tqdm
    from sense_nodes.core.fwa.nulled import NulledInput, nulled_maps
    from sense_nodes.data.csi.fwa_pairs import sample_taps
    path = _cache_path(ds, NulledInput(cal).digest, noise, snr_offset_db)
    if path.exists():
        return np.load(path, mmap_mode="r")
    n_pairs = cal.n_bs * cal.n_cpe
    sub = cal.subspace(range(n_pairs))
    tmp = path.with_name(path.stem + ".tmp.npy")
    path.parent.mkdir(parents=True, exist_ok=True)
    out = None
    with threadpool_limits(limits=1):
        for i in tqdm(range(ds.num_samples), desc="fwa background-nulled maps", unit="scene", disable=not progress):
            taps, _ = sample_taps(ds, i, cal.n_taps, noise=noise, snr_offset_db=snr_offset_db)
            x = nulled_maps(sub, taps.reshape(len(taps), -1), cal.n_t, cal.n_taps)
            if out is None:
                out = np.lib.format.open_memmap(tmp, "w+", np.float16, (ds.num_samples,) + x.shape)
            out[i] = x
    out.flush()
    del out
    tmp.replace(path)
    return np.load(path, mmap_mode="r")


def with_nulled_inputs(ds, feat, cal, noise: bool, snr_offset_db: float, progress: bool = True):
    """A copy of the cached features ``feat`` whose network input ``x`` is
    the background-nulled map of every scene."""
    return replace(feat, x=nulled_maps_all(ds, cal, noise, snr_offset_db, progress))
