"""A small synthetic uplink SRS dataset in the ``diffloc`` layout, made in
seconds without ray tracing, for the DiffLoc tests: four BSs at the corners
of a square, UEs on short walks, per link a line-of-sight path (delay d / c,
amplitude 1 / d, BS-array steering) and one reflection with a position-
dependent excess delay. Fewer subcarriers than the real dataset keep it small.
"""
from __future__ import annotations

import numpy as np

C = 299_792_458.0
K = 16
SCS_HZ = 5.76e6
CARRIER_HZ = 3.6e9
BS_POS = np.array([[-60.0, -60.0, 25.0], [60.0, -60.0, 25.0], [60.0, 60.0, 25.0], [-60.0, 60.0, 25.0]])


def _channel(ue, bs, rng_phase):
    """H [32, 4, K]: LoS + one reflection, 4x4 dual-pol BS array, 1x2 dual-pol UE."""
    f = (np.arange(K) - K // 2) * SCS_HZ
    d = ue - bs
    dist = np.linalg.norm(d)
    az = np.arctan2(d[1], d[0])
    el = np.arcsin(d[2] / dist)
    grid = np.stack(np.meshgrid(np.arange(4), np.arange(4), indexing="ij"), -1).reshape(16, 2)
    steer = np.exp(1j * np.pi * (grid[:, 0] * np.cos(el) * np.sin(az) + grid[:, 1] * np.sin(el)))
    steer = np.repeat(steer, 2)  # two polarisations per element
    ue_ports = np.exp(1j * np.pi * np.array([0, 0, 1, 1]) * np.cos(az))
    H = np.zeros((32, 4, K), complex)
    for amp, tau, ph in ((1 / dist, dist / C, 0.0),
                         (0.5 / dist, (dist + 20 + 0.2 * abs(ue[0])) / C, rng_phase)):
        H += amp * np.exp(1j * ph) * steer[:, None, None] * ue_ports[None, :, None] * \
            np.exp(-2j * np.pi * (f + CARRIER_HZ) * tau)[None, None, :]
    return H.astype(np.complex64)


def synthetic_dataset(path, users: int = 30, snapshots: int = 8, seed: int = 0, dead_link=(0, 1)):
    """Write the dataset; sample ``dead_link[0]`` has no path to BS
    ``dead_link[1]`` (all-zero CFR, ``link_valid`` false)."""
    from sense_nodes.data.csi import dataset as dsmod
    rng = np.random.default_rng(seed)
    pos, vel, uid = [], [], []
    for u in range(users):
        p = rng.uniform(-45, 45, 2)
        v = rng.normal(0, 1.5, 2)
        for t in range(snapshots):
            pos.append([*(p + v * t), 1.5])
            vel.append([*v, 0.0])
            uid.append(u)
    pos, vel, uid = np.array(pos, np.float32), np.array(vel, np.float32), np.array(uid, np.int32)
    n = len(pos)
    phase = rng.uniform(0, 2 * np.pi, 4)
    H = np.stack([[_channel(pos[i].astype(float), BS_POS[b], phase[b]) for b in range(4)] for i in range(n)])
    valid = np.ones((n, 4), bool)
    if dead_link is not None:
        H[dead_link[0], dead_link[1]] = 0
        valid[dead_link] = False
    fim = np.zeros((n, 4, 2, 2))
    for i in range(n):
        for b in range(4):
            u = (pos[i, :2] - BS_POS[b, :2]) / np.linalg.norm(pos[i, :2] - BS_POS[b, :2])
            fim[i, b] = 2 * 128 * np.sum((2 * np.pi * (np.arange(K) - K // 2) * SCS_HZ) ** 2) \
                / np.linalg.norm(pos[i] - BS_POS[b]) ** 2 / C ** 2 * np.outer(u, u) * valid[i, b]
    user_split = dsmod.random_split(users, rng)
    manifest = {"kind": "diffloc", "scene": "synthetic", "num_samples": n, "tiny": True, "seed": seed,
                "code_version": "test", "carrier_hz": CARRIER_HZ, "subcarrier_spacing_hz": SCS_HZ,
                "num_subcarriers": K, "geometry": {"bs_pos_m": BS_POS},
                "links": [{"index": b, "tx_id": "ue", "rx_id": f"bs{b}"} for b in range(4)],
                "split": {"schemes": {"random": {"array": "split_random", "ratios": [3, 1, 1]},
                                      "user": {"array": "split_user", "ratios": [3, 1, 1]}}},
                "generation": {"seconds": 0.0, "samples_per_s": 0.0}}
    arrays = {"H": H, "ue_pos": pos, "ue_vel": vel, "user_id": uid,
              "time_s": np.tile(np.arange(snapshots, dtype=np.float32), users),
              "variant": (uid % 5 == 0).astype(np.int8), "snr_db": rng.choice([50.0, 30.0, 10.0], n).astype(np.float32),
              "link_valid": valid, "num_paths": valid.astype(np.int16) * 2,
              "delay_spread_s": np.full((n, 4), 1e-8, np.float32), "crb_fim": fim,
              "split_random": dsmod.random_split(n, rng), "split_user": user_split[uid].astype(np.int8),
              "bs_pos": BS_POS.astype(np.float32)}
    return dsmod.write_dataset(path, manifest, arrays)


def ensure_default_cache():
    """The default diffloc dataset and ct model in the (temporary) test
    cache, so the diffloc deployment starts as it would for a user."""
    from sense_nodes.core.diffloc.models import default_path
    from sense_nodes.data.csi.dataset import default_dir
    ds_dir = default_dir("diffloc", False, 0)
    if not (ds_dir / "manifest.json").exists():
        synthetic_dataset(ds_dir, users=10, snapshots=5)
    ck = default_path("ct")
    if not ck.exists():
        tiny_model(ds_dir, "ct", ck)
    return ds_dir, ck


def tiny_model(ds_dir, model, out, steps=60, scheme="random"):
    from sense_nodes.core.diffloc.dataset import load_positioning
    from sense_nodes.core.diffloc.training import TrainConfig, train
    from sense_nodes.data.csi.dataset import load_dataset
    data = load_positioning(load_dataset(ds_dir))
    train(data, TrainConfig(model=model, steps=steps, eval_every=max(1, steps // 2), components=16, scheme=scheme,
                            grid_spacing_m=20.0 if model == "grid" else None), out, progress=False, log=lambda *_: None)
    return out


def trained_models(tmp_dir, models=("ct",), steps=60, scheme="random"):
    """Tiny checkpoints of ``models`` on a synthetic dataset in ``tmp_dir``."""
    from pathlib import Path
    tmp_dir = Path(tmp_dir)
    ds = tmp_dir / "syn"
    if not (ds / "manifest.json").exists():
        synthetic_dataset(ds)
    out = {}
    for m in models:
        name = m + ("" if scheme == "random" else f"-{scheme}") + ".pt"
        out[m] = tiny_model(ds, m, tmp_dir / "models" / name, steps=steps, scheme=scheme)
    return ds, out
