"""Difficulty figures of simulated scenarios, measured (BSense paper,
Sections 1, 3.2.1 and 4.1).

* ``noise_points_per_frame``: points that are not UAV points, per frame (the
  paper: 168.05). A point is a UAV point when it came from a UAV and lies
  within 10 m of it (the paper's point-level rule, Section 4.1): a UAV echo
  placed 200 m off by a grating lobe counts as noise, as it would there.
* ``noise_to_uav_ratio``: noise points over UAV points, in the cases that have
  a UAV (the paper: "over 100:1").
* ``uav_point_missing_pct``: frames in which a flying UAV has no UAV point
  (occlusion, tangential flight, weak echo, out of view).
* ``single_point_auc``: ROC AUC of the better of logistic regression and
  gradient boosting telling UAV points from noise on eight single-point
  features (range, height, Doppler, SNR, SCR, noise, signal power, received
  power), cross-validated by trajectory type as the paper's folds are (by
  blocks of frames when there is one type only).
* ``single_point_auc_vs_<source>``: the gradient-boosting AUC of UAV points
  against the noise points of one source only (clutter, multipath, ...):
  which kind of noise gives the UAV away.
* ``false_trajectory_*``: runs of ghost points that follow one vehicle from
  frame to frame (multipath and sidelobe ghosts), their horizontal extent.
* ``clutter_cubes_gaussian_pct``: share of 40 m cubes of a UAV-free recording
  whose five signal metrics pass the Henze-Zirkler test at the 5% level (the
  paper: over 75%, Section 3.2.1).
* ``paper_point_filter_auc_floor``: not a measurement but a consistency
  check (:func:`point_filter_auc_floor`): the paper's point-level filter is
  itself a single-point classifier (position and the five metrics), and its
  reported operating point bounds the AUC of such classifiers from below.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sstats

from sense_nodes.bs_sensor import ANTENNA_HEIGHT_M, FRAME_S

from .scenario import MULTIPATH, SIDELOBE, UAV, Scenario

UAV_RADIUS_M = 10.0    # Section 4.1
FEATURES = ("range", "z", "doppler", "snr", "scr", "noise", "signal_power", "rx_power")
PAPER = {"noise_points_per_frame": 168.05, "noise_to_uav_ratio": 100.0,
         "clutter_cubes_gaussian_pct": 75.0}


def uav_point_mask(frame) -> np.ndarray:
    """Points that came from a UAV and lie within 10 m of it (Section 4.1)."""
    src = frame.labels["source"]
    mask = src == UAV
    if not mask.any():
        return mask
    t = frame.truth
    pos_by_id = {int(i): p for i, p in zip(t["id"], t["position"])}
    idx = np.flatnonzero(mask)
    p = np.stack([frame.points["x"][idx], frame.points["y"][idx], frame.points["z"][idx]], 1)
    q = np.stack([pos_by_id[int(i)] for i in frame.labels["object_id"][idx]])
    mask[idx] = np.linalg.norm(p - q, axis=1) <= UAV_RADIUS_M
    return mask


def features(points: np.ndarray) -> np.ndarray:
    r = np.sqrt(points["x"].astype(float) ** 2 + points["y"].astype(float) ** 2
                + (points["z"].astype(float) - ANTENNA_HEIGHT_M) ** 2)
    return np.stack([r] + [points[k].astype(float) for k in FEATURES[1:]], 1)


@dataclass
class ScenarioCounts:
    name: str
    family: str
    traj_type: str = ""
    frames: int = 0
    noise_points: int = 0
    uav_points: int = 0
    uav_frames: int = 0
    uav_frames_missing: int = 0
    runs_m: list = field(default_factory=list)
    X: list = field(default_factory=list)
    y: list = field(default_factory=list)
    block: list = field(default_factory=list)
    source: list = field(default_factory=list)


def count(scenario: Scenario, max_frames: int | None = None, noise_sample: float = 0.08,
          progress=None) -> ScenarioCounts:
    """Walk a scenario once: counts, ghost runs and a sample of points for the AUC."""
    sc = ScenarioCounts(scenario.name, scenario.spec.family, scenario.spec.traj_type)
    n = len(scenario) if max_frames is None else min(len(scenario), int(max_frames))
    rng = np.random.default_rng([scenario.spec.seed, 4242])
    ghost_pos: dict = {}     # (source, vehicle id) -> [(frame, x, y)]
    for k in range(n):
        f = scenario.frame(k)
        u = uav_point_mask(f)
        sc.frames += 1
        sc.uav_points += int(u.sum())
        sc.noise_points += int((~u).sum())
        flying = f.truth["object_class"] == UAV
        if flying.any():
            have = set(f.labels["object_id"][u].tolist())
            ids = f.truth["id"][flying]
            sc.uav_frames += ids.size
            sc.uav_frames_missing += sum(int(i) not in have for i in ids)
        keep = u | (rng.random(u.size) < noise_sample)
        if keep.any():
            sc.X.append(features(f.points[keep]))
            sc.y.append(u[keep])
            sc.block.append(np.full(int(keep.sum()), k // 50))
            sc.source.append(np.where(u, UAV, f.labels["source"])[keep])
        g = np.flatnonzero(np.isin(f.labels["source"], (MULTIPATH, SIDELOBE)) & (f.labels["object_id"] >= 0))
        for i in g:
            key = (int(f.labels["source"][i]), int(f.labels["object_id"][i]))
            ghost_pos.setdefault(key, []).append((k, float(f.points["x"][i]), float(f.points["y"][i])))
        if progress is not None:
            progress.update(1)
    sc.runs_m = _runs(ghost_pos)
    return sc


def _runs(ghost_pos: dict, max_gap: int = 2, min_frames: int = 5, max_step_m: float = 30.0) -> list:
    """Horizontal extent (bounding-box diagonal, m) of the ghost trajectories
    a tracker could follow: the ghosts of one vehicle linked frame to frame to
    the nearest open run that moved at most ``max_step_m`` a frame (the
    paper's tracker gates at 15 m, Section 3.3.2; twice that here, for
    measurement noise), with at most ``max_gap`` missed frames."""
    out = []
    for obs in ghost_pos.values():
        runs: list = []      # [last frame, last xy, min xy, max xy, n]
        done: list = []
        for k, x, y in sorted(obs):
            p = np.array([x, y])
            alive = [r for r in runs if k - r[0] <= max_gap + 1]
            done += [r for r in runs if k - r[0] > max_gap + 1]
            runs = alive
            best, best_d = None, np.inf
            for r in runs:
                if r[0] == k:
                    continue
                d = np.linalg.norm(p - r[1])
                if d <= max_step_m * (k - r[0]) and d < best_d:
                    best, best_d = r, d
            if best is None:
                runs.append([k, p, p.copy(), p.copy(), 1])
            else:
                best[0], best[1] = k, p
                best[2], best[3] = np.minimum(best[2], p), np.maximum(best[3], p)
                best[4] += 1
        out += [float(np.linalg.norm(r[3] - r[2])) for r in done + runs if r[4] >= min_frames]
    return out


def single_point_scores(X: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int = 5,
                        max_points: int = 20000, seed: int = 0) -> dict:
    """Out-of-fold UAV scores of logistic regression and gradient boosting on
    single-point features (a group is never split between train and test).
    Noise points beyond ``max_points`` are subsampled. Returns
    {name: (index of the scored points, scores)}."""

    idx = np.arange(y.size)
    if y.size > max_points:
        noise = np.flatnonzero(~y)
        keep = np.random.default_rng(seed).choice(noise, max(max_points - int(y.sum()), 10), replace=False)
        idx = np.sort(np.concatenate([np.flatnonzero(y), keep]))
    X, y, groups = X[idx], y[idx], groups[idx]
    if y.sum() < 10 or (~y).sum() < 10 or np.unique(groups).size < 2:
        return {}
    out_idx = idx
    k = min(folds, np.unique(groups).size)
    out = {}
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):   # one thread: far faster than OpenMP on a busy machine
        _fit_all(X, y, groups, k, out)
    return {name: (out_idx, score) for name, (_, score) in out.items()}


def _fit_all(X, y, groups, k, out):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    for name, make in (("logreg", lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))),
                       ("gbdt", lambda: HistGradientBoostingClassifier(max_iter=100, random_state=0))):
        score = np.full(y.shape, np.nan)
        for tr, te in GroupKFold(n_splits=k).split(X, y, groups):
            if y[tr].all() or (~y[tr]).all():
                continue
            score[te] = make().fit(X[tr], y[tr]).predict_proba(X[te])[:, 1]
        out[name] = (None, score)


def auc_of(y: np.ndarray, scored: dict, subset: np.ndarray | None = None) -> dict:
    """ROC AUC per classifier of out-of-fold scores (optionally of a subset of points)."""
    from sklearn.metrics import roc_auc_score
    out = {}
    for name, (idx, score) in scored.items():
        yy = y[idx]
        ok = np.isfinite(score) if subset is None else np.isfinite(score) & subset[idx]
        out[name] = float(roc_auc_score(yy[ok], score[ok])) if yy[ok].any() and (~yy[ok]).any() else float("nan")
    return out


def henze_zirkler(X: np.ndarray) -> float:
    """p-value of the Henze-Zirkler test of multivariate normality (Henze and
    Zirkler 1990), lognormal approximation of the statistic."""
    n, p = X.shape
    S = np.cov(X, rowvar=False, bias=True)
    Si = np.linalg.pinv(S)
    Xc = X - X.mean(0)
    Di = np.einsum("ij,jk,ik->i", Xc, Si, Xc)
    G = Xc @ Si @ Xc.T
    Dij = Di[:, None] + Di[None, :] - 2 * G
    b = (1 / np.sqrt(2)) * ((2 * p + 1) * n / 4) ** (1 / (p + 4))
    b2 = b * b
    hz = (np.exp(-b2 / 2 * Dij).sum() / n - 2 * (1 + b2) ** (-p / 2) * np.exp(-b2 / (2 * (1 + b2)) * Di).sum()
          + n * (1 + 2 * b2) ** (-p / 2))
    a = 1 + 2 * b2
    w = (1 + b2) * (1 + 3 * b2)
    mu = 1 - a ** (-p / 2) * (1 + p * b2 / a + p * (p + 2) * b2 ** 2 / (2 * a * a))
    si2 = (2 * (1 + 4 * b2) ** (-p / 2) + 2 * a ** (-p) * (1 + 2 * p * b2 ** 2 / a ** 2 + 3 * p * (p + 2) * b2 ** 4 / (4 * a ** 4))
           - 4 * w ** (-p / 2) * (1 + 3 * p * b2 ** 2 / (2 * w) + p * (p + 2) * b2 ** 4 / (2 * w * w)))
    pmu = np.log(np.sqrt(mu ** 4 / (si2 + mu ** 2)))
    psi = np.sqrt(np.log((si2 + mu ** 2) / mu ** 2))
    return float(1 - sstats.lognorm.cdf(hz, psi, scale=np.exp(pmu)))


def gaussian_cubes(scenario: Scenario, max_frames: int | None = None, cube_m: float = 40.0,
                   min_points: int = 50, max_points: int = 400, alpha: float = 0.05, progress=None) -> dict:
    """Henze-Zirkler test of the five signal metrics per 40 m cube of a
    UAV-free recording (Section 3.2.1)."""
    n = len(scenario) if max_frames is None else min(len(scenario), int(max_frames))
    cols = ("snr", "scr", "noise", "signal_power", "rx_power")
    keys, vals = [], []
    for k in range(n):
        f = scenario.frame(k)
        p = f.points
        keys.append(np.floor(np.stack([p["x"], p["y"], p["z"]], 1) / cube_m).astype(np.int64))
        vals.append(np.stack([p[c] for c in cols], 1).astype(float))
        if progress is not None:
            progress.update(1)
    keys = np.concatenate(keys)
    vals = np.concatenate(vals)
    _, inv, cnt = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    rng = np.random.default_rng(0)
    passed = tested = 0
    for c in np.flatnonzero(cnt >= min_points):
        x = vals[inv.ravel() == c]
        if x.shape[0] > max_points:
            x = x[rng.choice(x.shape[0], max_points, replace=False)]
        tested += 1
        passed += henze_zirkler(x) >= alpha
    return {"cubes_tested": tested, "gaussian_pct": 100.0 * passed / tested if tested else float("nan")}


def auc_points(counts: list[ScenarioCounts]):
    """The sampled points of the cases with a UAV: X, y, case index, family."""
    with_uav = [c for c in counts if c.uav_frames > 0]
    if not with_uav:
        return None
    X = np.concatenate([x for c in with_uav for x in c.X])
    y = np.concatenate([v for c in with_uav for v in c.y])
    sizes = [sum(len(v) for v in c.y) for c in with_uav]
    # group by trajectory type, as the paper's folds do (Section 4.1): the two
    # repetitions of a path never sit on both sides of a split
    types = sorted({c.traj_type for c in with_uav})
    case = np.repeat(np.array([types.index(c.traj_type) for c in with_uav]), sizes)
    fam = np.repeat(np.array([c.family for c in with_uav]), sizes)
    src = np.concatenate([v for c in with_uav for v in c.source])
    if len(types) == 1:   # one trajectory type: blocks of 50 frames of the first case
        X = np.concatenate(with_uav[0].X)
        y = np.concatenate(with_uav[0].y)
        fam = fam[:y.size]
        src = src[:y.size]
        case = np.concatenate(with_uav[0].block)
    return X, y, case, fam, src


def measure(counts: list[ScenarioCounts]) -> dict:
    """All figures of walked scenarios: overall, then per family (prefixed
    ``<family>_``). The AUC is cross-validated once over every case; a
    family's AUC is that of its own points' out-of-fold scores."""
    pts = auc_points(counts)
    scored = single_point_scores(pts[0], pts[1], pts[2]) if pts is not None else {}
    out = figures(counts, auc=auc_of(pts[1], scored) if scored else {})
    if scored and "gbdt" in scored:
        from .scenario import SOURCE_NAMES
        y, src = pts[1], pts[4]
        for code in np.unique(src[~y]):
            a = auc_of(y, {"gbdt": scored["gbdt"]}, y | (src == code))["gbdt"]
            out[f"single_point_auc_vs_{SOURCE_NAMES[int(code)]}"] = a
    fams = sorted({c.family for c in counts}, key=[c.family for c in counts].index)
    if len(fams) > 1:
        for fam in fams:
            cs = [c for c in counts if c.family == fam]
            a = auc_of(pts[1], scored, pts[3] == fam) if scored and (pts[3] == fam).any() else None
            out.update(figures(cs, prefix=f"{fam}_", auc=a))
    return out


def point_filter_auc_floor(noise_removed: float = 0.618, uav_lost: float = 0.017) -> float:
    """Lowest ROC AUC of a single-point classifier that reaches the paper's
    point-level operating point (61.8% of noise removed, 1.7% of UAV points
    lost, Section 4.2): the area under the ROC hull through (0, 0),
    (FPR, TPR) = (1 - removed, 1 - lost) and (1, 1). About 0.80, so a
    simulator whose points no single-point classifier tells apart at better
    than 0.80 cannot also let BSense's point filter meet the paper's figures."""
    fpr, tpr = 1.0 - noise_removed, 1.0 - uav_lost
    return fpr * tpr / 2.0 + (1.0 - fpr) * (tpr + 1.0) / 2.0


def figures(counts: list[ScenarioCounts], prefix: str = "", auc: dict | None = None) -> dict:
    """Figures of a set of walked scenarios (keys as in the module doc);
    ``auc``: {classifier: AUC} already measured."""
    frames = sum(c.frames for c in counts)
    noise = sum(c.noise_points for c in counts)
    with_uav = [c for c in counts if c.uav_frames > 0]
    uav = sum(c.uav_points for c in with_uav)
    noise_u = sum(c.noise_points for c in with_uav)
    uf = sum(c.uav_frames for c in with_uav)
    miss = sum(c.uav_frames_missing for c in with_uav)
    runs = np.array([r for c in counts for r in c.runs_m])
    out = {
        f"{prefix}noise_points_per_frame": noise / frames if frames else float("nan"),
        f"{prefix}noise_to_uav_ratio": noise_u / uav if uav else float("nan"),
        f"{prefix}uav_point_missing_pct": 100.0 * miss / uf if uf else float("nan"),
    }
    if auc is not None:
        a = auc if isinstance(auc, dict) else {}
        best = [v for v in a.values() if np.isfinite(v)]
        out[f"{prefix}single_point_auc"] = max(best) if best else float("nan")
        for name, v in a.items():
            out[f"{prefix}single_point_auc_{name}"] = v
    out[f"{prefix}false_trajectory_max_m"] = float(runs.max()) if runs.size else 0.0
    out[f"{prefix}false_trajectory_p90_m"] = float(np.percentile(runs, 90)) if runs.size else 0.0
    out[f"{prefix}false_trajectories_over_200m_per_min"] = (
        float((runs > 200).sum()) / (frames * FRAME_S / 60.0) if frames else float("nan"))
    out[f"{prefix}frames"] = frames
    for k, v in PAPER.items():
        if f"{prefix}{k}" in out and not prefix:
            out[f"paper_{k}"] = v
    if not prefix and "single_point_auc" in out:
        out["paper_point_filter_auc_floor"] = point_filter_auc_floor()
    return out
