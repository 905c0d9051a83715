"""The gridless imager on the ray-traced urban canyon (Table VI, Sec. V-C5),
beside subspace pursuit and the learned imager on the same test frames, at
every residual-interference ratio of the table.

Frames are Table VI's (``imaging_canyon``): H_echo + g H_background + AWGN at
P_n / P_t, the residual's power r times each link's echo power, the test split
of the imaging CSI dataset, noise drawn as ``table6`` draws it. The gridless
imager gets the canyon's config (``canyon_config``: the dataset's subcarrier
grid, ROI and powers) and the BS antenna positions of the Sionna scene; its
model-order rule takes the noise level P_n / P_t from the dataset's manifest.
No solver is told about the residual: it is a model mismatch for all three.

Beside the plain solvers (at the ratios ``CLUTTER_RATIOS``), the same three on frames with a clutter map
projected out (``core.imaging.clutter``): the per-link mean of the training
split's frames at the same ratio (measured CSI only, no truth, no empty
scene). The paper removes the static background by a calibration (Sec. II);
the residual of Table VI is what that left, and in the dataset the residual
is a copy of the static background, so a map of it from earlier frames is a
fair second calibration there; a residual that changed from frame to frame
in direction would not be removed by it.

SP's prior sparsity is the dataset's UAV count per sample (8: it is told the
count, the gridless imager is not). The test split is 10 % of the samples;
the gridless imager takes seconds per frame, so ``n`` frames (a prefix of
the test split, the same for every solver) are scored.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from sense_nodes.eval.imaging_metrics import evaluate_images

METRICS = ("mse", "ssim", "ospa", "dr_pct", "far_pct", "pos_dr_pct")
# Gauss-Newton iterations of the gridless imager here (its default is 3): along the
# canyon's near-aliases (see test_imaging_gridless_canyon) the joint fit needs more
# steps; chosen on synthetic canyon scenes (noiseless, seeds 7 and 100), not the dataset
CANYON_GN_ITERS = 10
# ratios with the clutter-map rows: where the residual is well above the noise (at 0.1 %
# and 1 % it is near the noise of the weaker links; the gridless imager's tens of
# seconds per frame at high model order pay for the rows where it matters)
CLUTTER_RATIOS = (0.1, 1.0)


def clutter_map(ds, ratio: float, block_rows: int, seed: int = 0, chunk: int = 200):
    """The clutter map of the training split's frames at ``ratio`` (with noise)."""
    from sense_nodes.core.imaging.clutter import ClutterMap
    from sense_nodes.eval.imaging_canyon import measurements
    tr = np.flatnonzero(np.asarray(ds.arrays["split_random"]) == 0)
    rng = np.random.default_rng([seed, 8])
    batches = (measurements(ds, tr[i:i + chunk], ratio, rng) for i in range(0, len(tr), chunk))
    return ClutterMap.fit(batches, block_rows)


def _score_images(cfg, preds, labels, positions) -> dict:
    from sense_nodes.core.imaging.geometry import voxel_centres
    from sense_nodes.eval.imaging_gridless import image_positions, position_dr
    s = evaluate_images(preds, labels, positions, voxel_centres(cfg), cfg.grid_shape)
    s["pos_dr_pct"] = position_dr(image_positions(preds, cfg), positions, cfg.voxel_m)
    return s


def _solvers(cfg, S, imager, learned, sparsity):
    """name -> frames (n, N_1) -> scores, for SP, the gridless imager and the learned
    one (``learned``: a callable giving its predictor, called at its first use)."""
    from sense_nodes.core.imaging.subspace_pursuit import sp_image
    from sense_nodes.eval.imaging_gridless import score_gridless
    cache: list = []

    def gridless(ys, labels, positions):
        return score_gridless(cfg, ys, labels, positions, imager)

    def sp(ys, labels, positions):
        preds = np.stack([sp_image(S, y, sparsity).ravel() for y in tqdm(ys, desc="SP", unit="frame",
                                                                          leave=False)])
        return _score_images(cfg, preds, labels, positions)

    def net(ys, labels, positions):
        if not cache:
            cache.append(learned())
        return _score_images(cfg, cache[0](ys), labels, positions)
    out = {"": gridless, "_sp": sp}
    if learned is not None:
        out["_learned"] = net
    return out


def canyon_rows(ds_path: str | Path | None, n: int, minutes: float = 8.0, seed: int = 0,
                device: str = "cpu", learned: bool = True, clutter: bool = True) -> dict:
    """Keys ``gridless_canyon_<ratio key>[_sp|_learned][_clutter]_<metric>`` for the
    ratio keys of ``imaging_canyon.RATIO_KEYS``, ``gridless_canyon_dr_pct`` (r = 0),
    frame counts and the paper's Table VI; {} with a printed line when the
    dataset is missing. Ratios run from r = 0, then the largest down (a run cut
    short still shows the trend); per ratio the gridless imager, then SP; the
    learned imager last (trained here only if no checkpoint of this dataset
    exists by then)."""
    from sense_nodes.core.imaging.gridless import GridlessImager
    from sense_nodes.data.csi.dataset import load_dataset
    from sense_nodes.eval import imaging_canyon as canyon
    path = canyon.dataset_path(ds_path)
    if not (path / "manifest.json").exists():
        print(f"gridless canyon row (Table VI): not measured: no imaging CSI dataset at {path} "
              "(make one with `sense data generate --kind imaging`, or pass --canyon-dataset DIR)")
        return {}
    ds = load_dataset(path)
    ants = canyon._antennas(path)
    S = canyon.sensing_matrix(ds, ants)
    cfg = S.cfg
    imager = GridlessImager(cfg, antennas=ants, gn_iters=CANYON_GN_ITERS)
    test, labels, positions = canyon.held_out(ds)
    te, labels, positions = test[:n], labels[:n], positions[:n]
    solvers = _solvers(cfg, S, imager, (lambda: canyon.learned_imager(ds, S, minutes, seed, device)[0])
                       if learned else None, int(ds.manifest["geometry"]["targets_per_sample"]))
    block = cfg.n_subcarriers * cfg.n_antennas ** 2
    figs: dict = {"gridless_canyon_n": int(len(te)), "gridless_canyon_test_split": int(len(test)),
                  "gridless_canyon_noise_var": cfg.noise_var,
                  "gridless_canyon_truth_image_dr_pct": _score_images(cfg, labels, labels, positions)["dr_pct"]}
    cases = []
    for r in sorted(canyon.RATIOS, key=lambda r: (r > 0, -r)):       # 0, then the largest first
        key = canyon.RATIO_KEYS[canyon.RATIOS.index(r)]
        ys = canyon.frames_at(ds, te, r, seed)
        cases.append((key, "", ys))
        if clutter and r in CLUTTER_RATIOS:
            cases.append((key, "_clutter", clutter_map(ds, r, block, seed).project(ys)))
        for m in ("dr_pct", "far_pct"):
            figs[f"paper_table6_{key}_{m}"] = canyon.PAPER_TABLE6[m][canyon.RATIOS.index(r)]
    # per ratio the gridless imager and SP, then the learned imager over all ratios (its
    # checkpoint may be trained meanwhile by Table VI's run)
    order = [(c, n) for c in cases for n in solvers if n != "_learned"] + \
        [(c, "_learned") for c in cases if "_learned" in solvers]
    for (key, suffix, frames), name in order:
        s = solvers[name](frames, labels, positions)
        k = f"gridless_canyon_{key}{name}{suffix}"
        for m in METRICS:
            figs[f"{k}_{m}"] = s[m]
        if not name:
            figs[f"{k}_pos_rmse_m"], figs[f"{k}_ms"] = s["pos_rmse_m"], s["ms"]
        _say(k, len(te), s)
    figs["gridless_canyon_dr_pct"] = figs.get("gridless_canyon_r0_dr_pct")
    return figs


def _say(key: str, n: int, s: dict) -> None:
    """One solver at one ratio, printed as it is measured."""
    extra = f", RMSE {s['pos_rmse_m']:.3f} m, {s['ms']:.0f} ms/frame" if "ms" in s else ""
    print(f"{key} ({n} frames): DR {s['dr_pct']:.2f} % FAR {s['far_pct']:.2f} % pos-DR "
          f"{s['pos_dr_pct']:.2f} % SSIM {s['ssim']:.4f} OSPA {s['ospa']:.3f}{extra}", flush=True)
