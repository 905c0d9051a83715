"""The gridless imager (``core.imaging.gridless``) where the paper measures, beside
subspace pursuit and the learned imager on the same scenes: Table III's
off-grid 2D test, the 3D ROI, sensing modes B and C, Table V's datasets, a
P_t sweep, and model mismatch the simulator does not have (per-antenna phase
calibration error, BS position error, UAVs closer than the generator's
spacing). Every row is scored by ``evaluate_images``; the gridless image is
each estimate's |sigma| / 0.1 m in the voxel containing its position.

Mismatched frames are drawn here: the scene as ``sample_scene`` draws it,
the echo through a perturbed array (phases, positions) while every solver
keeps the nominal model.
"""
from __future__ import annotations

import time

import numpy as np
from scipy.optimize import linear_sum_assignment
from tqdm import tqdm

from sense_nodes.core.imaging.geometry import ImagingConfig, config_3d, voxel_centres
from sense_nodes.core.imaging.targets import Scene, label_image, sample_scene
from sense_nodes.eval.imaging_metrics import evaluate_images

PT_SWEEP_DBM = (30.0, 40.0, 50.0)
PHASE_RMS_DEG = (5.0, 15.0)
BS_ERROR_M = (0.1, 0.5)
CLOSE_VOXELS = (1, 2)


def draw(cfg: ImagingConfig, n: int, seed: int, phase_rms_deg: float = 0.0, bs_error_m: float = 0.0,
         close_voxels: int = 0):
    """(y (n, N_1), labels (n, N_v), positions) of off-grid scenes, with the
    requested mismatch: per-antenna phase errors N(0, rms) (fixed per scene),
    each BS's array moved by ``bs_error_m`` in a random direction, or UAV 1
    put ``close_voxels`` voxels from UAV 0 along a random axis."""
    from sense_nodes.core.imaging.steering import SteeringModel
    rng = np.random.default_rng(seed)
    nominal = SteeringModel(cfg)
    ys, labels, positions = [], [], []
    for _ in range(n):
        scene = sample_scene(cfg, rng)
        if close_voxels:
            scene = _move_close(cfg, scene, close_voxels, rng)
        ants = nominal.ants
        if bs_error_m:
            shift = rng.normal(size=(cfg.n_bs, 3))
            shift *= bs_error_m / np.linalg.norm(shift, axis=1, keepdims=True)
            ants = ants + shift[:, None, :]
        model = SteeringModel(cfg, ants)
        P = scene.positions if cfg.is_3d else scene.positions[:, :2]
        y = model.vectors(P) @ scene.sigma if len(scene.sigma) else np.zeros(model.n1, complex)
        if phase_rms_deg:
            eps = np.exp(1j * np.deg2rad(phase_rms_deg) * rng.normal(size=(cfg.n_bs, cfg.n_antennas)))
            y = y * np.concatenate([np.tile(np.outer(eps[b1], eps[b2]).ravel(), cfg.n_subcarriers)
                                    for b1, b2 in model.pairs])
        std = np.sqrt(cfg.noise_var / 2)
        y = y + std * (rng.normal(size=y.shape) + 1j * rng.normal(size=y.shape))
        ys.append(y.astype(np.complex64))
        labels.append(label_image(cfg, scene))
        positions.append(scene.positions)
    return np.stack(ys), np.stack(labels), positions


def _move_close(cfg, scene: Scene, gap: int, rng) -> Scene:
    """Scene with UAV 1 moved to the voxel ``gap`` voxels from UAV 0's along one
    random axis (inside the grid, not on another UAV), off-grid within it."""
    if len(scene.voxels) < 2:
        return scene
    shape = np.array(cfg.grid_shape)
    v0 = np.array(np.unravel_index(scene.voxels[0], cfg.grid_shape))
    for axis in rng.permutation(len(shape)):
        for sign in rng.permutation([-1, 1]):
            v1 = v0.copy()
            v1[axis] += sign * gap
            flat = int(np.ravel_multi_index(tuple(np.clip(v1, 0, shape - 1)), cfg.grid_shape))
            if 0 <= v1[axis] < shape[axis] and flat not in scene.voxels:
                vox = scene.voxels.copy()
                vox[1] = flat
                pos = scene.positions.copy()
                pos[1] = voxel_centres(cfg)[flat]
                dims = len(shape)
                pos[1, :dims] += rng.uniform(-0.5, 0.5, dims) * cfg.voxel_m
                return Scene(positions=pos, sigma=scene.sigma, voxels=vox)
    return scene


def position_dr(est: list, truth: list, radius: float) -> float:
    """UAVs with an estimate within ``radius`` (one-to-one, optimal assignment), %
    of all UAVs: a detection rate on positions, which still counts two UAVs in
    adjacent voxels that the image metric merges into one connected target."""
    found = total = 0
    for e, t in zip(est, truth):
        total += len(t)
        if len(e) and len(t):
            d = np.linalg.norm(np.asarray(e)[:, None, :] - np.asarray(t)[None, :, :], axis=-1)
            r, c = linear_sum_assignment(d)
            found += int(np.sum(d[r, c] <= radius))
    return 100.0 * found / max(total, 1)


def image_positions(preds, cfg) -> list:
    """Detected-target positions (value-weighted centroids) of each image."""
    from sense_nodes.core.imaging.detection import find_targets
    centres = voxel_centres(cfg)
    return [np.array([t.position for t in find_targets(p.reshape(cfg.grid_shape), centres)]).reshape(-1, 3)
            for p in preds]


def position_rmse(est: list, truth: list) -> float:
    """RMSE (m) of estimated against true positions, optimal assignment per scene,
    pairs further than one voxel diagonal apart left out (they are misses)."""
    errs = []
    for e, t in zip(est, truth):
        if len(e) and len(t):
            d = np.linalg.norm(np.asarray(e)[:, None, :] - np.asarray(t)[None, :, :], axis=-1)
            r, c = linear_sum_assignment(d)
            errs += [x for x in d[r, c] if x < 6.0]
    return float(np.sqrt(np.mean(np.square(errs)))) if errs else float("nan")


def score_gridless(cfg: ImagingConfig, ys, labels, positions, imager=None) -> dict:
    """The gridless imager on frames ys: the five metrics, position RMSE and the
    median ms per frame."""
    from sense_nodes.core.imaging.gridless import GridlessImager
    g = imager or GridlessImager(cfg)
    preds, est, times = [], [], []
    for y in tqdm(ys, desc="gridless", unit="frame", leave=False):
        t0 = time.perf_counter()
        res = g.solve(y)
        times.append((time.perf_counter() - t0) * 1e3)
        preds.append(g.render(res).ravel())
        est.append(res.positions[np.abs(res.gains) / 0.1 >= g.threshold])
    s = evaluate_images(np.stack(preds), labels, positions, voxel_centres(cfg), cfg.grid_shape)
    s.update(pos_rmse_m=position_rmse(est, positions), ms=float(np.median(times)),
             pos_dr_pct=position_dr(est, positions, cfg.voxel_m))
    return s


def score_sp(cfg: ImagingConfig, ys, labels, positions, sparsity: int) -> dict:
    from sense_nodes.core.imaging.sensing_matrix import build_sensing_matrix
    from sense_nodes.core.imaging.subspace_pursuit import sp_image
    S = build_sensing_matrix(cfg)
    preds = np.stack([sp_image(S, y, sparsity) for y in tqdm(ys, desc="SP", unit="frame", leave=False)])
    s = evaluate_images(preds, labels, positions, voxel_centres(cfg), cfg.grid_shape)
    s["pos_dr_pct"] = position_dr(image_positions(preds, cfg), positions, cfg.voxel_m)
    return s


def score_learned(imager, cfg: ImagingConfig, ys, labels, positions):
    """The learned imager, only where its checkpoint was made for this geometry."""
    if imager is None or imager.cfg.replace(pt_dbm=cfg.pt_dbm, pn_dbm=cfg.pn_dbm,
                                            mean_uavs=cfg.mean_uavs) != cfg:
        return None
    preds = np.stack([imager.forward(imager.features(y)).reshape(-1) for y in ys])
    s = evaluate_images(preds, labels, positions, voxel_centres(cfg), cfg.grid_shape)
    s["pos_dr_pct"] = position_dr(image_positions(preds, cfg), positions, cfg.voxel_m)
    return s


def cases(n: int, n_3d: int):
    """(key, config, scenes, mismatch) of every gridless row."""
    base = ImagingConfig()
    out = [("gridless", base, n, {})]
    out += [(f"gridless_pt{int(p)}", base.replace(pt_dbm=p), n, {}) for p in PT_SWEEP_DBM if p != 40]
    out += [("gridless_3d", config_3d(), n_3d, {}),
            ("gridless_mode_b", base.replace(mode="B"), n, {}),
            ("gridless_mode_c", base.replace(mode="C"), n, {})]
    out += [(f"gridless_table5_ds{k}", base.replace(mean_uavs=float(m), pn_dbm=pn), n, {})
            for k, m, pn in (("2", 6, -120.0), ("3", 6, -110.0), ("4", 6, -100.0),
                             ("5", 4, -110.0), ("6", 8, -110.0))]
    out += [(f"gridless_phase{int(d)}", base, n, dict(phase_rms_deg=d)) for d in PHASE_RMS_DEG]
    out += [(f"gridless_bspos{str(e).replace('.', 'p')}", base, n, dict(bs_error_m=e)) for e in BS_ERROR_M]
    out += [(f"gridless_close{v}", base, n, dict(close_voxels=v)) for v in CLOSE_VOXELS]
    return out


def gridless_rows(n: int, n_3d: int, seed: int, learned=None, sparsity: int = 6,
                  only: set | None = None) -> dict:
    """Every gridless row beside SP and the learned imager (where its checkpoint
    fits the geometry) on the same frames: keys ``<row>_<metric>``,
    ``<row>_sp_<metric>``, ``<row>_learned_<metric>``, and ``<row>_n``."""
    figs: dict = {}
    for key, cfg, count, mismatch in cases(n, n_3d):
        if only and key not in only:
            continue
        ys, labels, positions = draw(cfg, count, seed, **mismatch)
        g = score_gridless(cfg, ys, labels, positions)
        sp = score_sp(cfg, ys, labels, positions, sparsity)
        net = score_learned(learned, cfg, ys, labels, positions)
        figs[f"{key}_n"] = count
        # the metric's ceiling on these scenes: the true image itself, scored
        figs[f"{key}_truth_image_dr_pct"] = evaluate_images(
            labels, labels, positions, voxel_centres(cfg), cfg.grid_shape)["dr_pct"]
        for m in ("mse", "ssim", "ospa", "dr_pct", "far_pct", "voxel_dr_pct", "pos_dr_pct"):
            figs[f"{key}_{m}"] = g[m]
            figs[f"{key}_sp_{m}"] = sp[m]
            figs[f"{key}_learned_{m}"] = None if net is None else net[m]
        figs[f"{key}_pos_rmse_m"], figs[f"{key}_ms"] = g["pos_rmse_m"], g["ms"]
        _say(key, count, figs[f"{key}_truth_image_dr_pct"], g, sp, net)
    return figs


def _say(key: str, count: int, ceiling: float, g: dict, sp: dict, net: dict | None) -> None:
    """One row, printed: gridless, SP and the learned imager on the same frames."""
    learned = "n/a (no checkpoint for this geometry)" if net is None else \
        f"DR {net['dr_pct']:.2f} % FAR {net['far_pct']:.2f} % pos-DR {net['pos_dr_pct']:.2f} %"
    print(f"{key} ({count} frames; the true image scores DR {ceiling:.2f} %): gridless DR "
          f"{g['dr_pct']:.2f} % FAR {g['far_pct']:.2f} % pos-DR {g['pos_dr_pct']:.2f} % OSPA "
          f"{g['ospa']:.3f} RMSE {g['pos_rmse_m']:.3f} m, {g['ms']:.0f} ms | SP DR {sp['dr_pct']:.2f} % "
          f"FAR {sp['far_pct']:.2f} % pos-DR {sp['pos_dr_pct']:.2f} % | learned {learned}", flush=True)


def add_arguments(parser) -> None:
    """``sense eval imaging`` options of the gridless rows (``--tables g``)."""
    parser.add_argument("--gridless-n", type=int, default=200,
                        help="frames per gridless row, 2D (default 200)")
    parser.add_argument("--gridless-n-3d", type=int, default=50,
                        help="frames of the gridless 3D row (default 50)")
    parser.add_argument("--gridless-rows", default="", help="comma list of gridless row keys "
                        "(default all; e.g. gridless,gridless_3d,gridless_phase15,gridless_canyon)")
    parser.add_argument("--gridless-canyon-n", type=int, default=40,
                        help="test frames of the gridless canyon row (Table VI, the imaging CSI "
                        "dataset of --canyon-dataset), per residual ratio (default 40)")


def eval_rows(ctx) -> dict:
    """The gridless rows for ``sense eval imaging``, beside SP and Net-10 (the
    learned imager with the paper's best DR) from the checkpoint directory."""
    from sense_nodes.core.imaging.imager import Imager
    path = ctx.checkpoint("net10")
    learned = Imager.from_checkpoint(path, str(ctx.device), ctx.args.precision) if path else None
    only = {r.strip() for r in ctx.args.gridless_rows.split(",") if r.strip()} or None
    figs = gridless_rows(ctx.args.gridless_n, ctx.args.gridless_n_3d, ctx.args.seed, learned,
                         ctx.args.sparsity, only)
    figs["gridless_canyon_dr_pct"] = None
    if only is None or "gridless_canyon" in only:
        from sense_nodes.eval.imaging_canyon import CANYON_SEED
        from sense_nodes.eval.imaging_gridless_canyon import canyon_rows
        figs.update(canyon_rows(ctx.args.canyon_dataset, ctx.args.gridless_canyon_n,
                                ctx.args.canyon_minutes, CANYON_SEED, str(ctx.device)))
    return figs
