"""BSense metrics exactly as Section 4.1 defines them, plus GOSPA and HOTA.

- Point level (Eq. 17): a point is a UAV point if it lies within 10 m of a
  true UAV position, else noise; R_uav-filtered is the share of UAV points the
  filter removed, R_noise-filtered the share of noise points it removed.
- Object level (Eq. 18): minimum-distance binary matching (Hungarian) between
  detected objects and true UAVs per frame; a match within 10 m is a true
  positive, any other detection a false positive, an unmatched UAV a false
  negative. Recall = TP / (TP + FN); false objects per frame = FP / frames.
- Trajectory level (Eq. 19-20): the same matching on the system's output
  (confirmed UAV tracks); precision, recall, F1 and the mean localisation
  error over the true positives. The paper gives no gate for this level; we
  use its 10 m object-level gate (our choice, stated in the eval output).
- Beyond the paper: GOSPA (alpha = 2, p = 1, cutoff c = 20 m: our choice) and
  HOTA through TrackEval with a Euclidean similarity scaled to the range,
  S = max(0, 1 - d / (10 m + 0.02 r)) (our choice: the base station's
  angular error grows with range r, so a fixed metric scale would punish far
  UAVs for the sensor's resolution).

- Beyond the paper, for simulated data only: :class:`SourceTally` says
  which noise source the false objects and false outputs come from (the
  most common source label among each one's points).

All functions take plain arrays; nothing here knows about ROS.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

MATCH_GATE_M = 10.0       # Section 4.1: UAV point radius and object match gate
GOSPA_C_M = 20.0          # our choice
GOSPA_P = 1
HOTA_D0_M = 10.0          # similarity scale at range 0 (our choice)
HOTA_D0_PER_M = 0.02      # ... growing by 2 cm per metre of range (our choice)
RANGE_BANDS_M = tuple(range(100, 1000, 100))  # Figure 23: 100-900 m


# --- point level (Eq. 17) -----------------------------------------------------

def uav_point_mask(xyz: np.ndarray, uav_positions: np.ndarray, radius: float = MATCH_GATE_M) -> np.ndarray:
    """True for points within ``radius`` of any true UAV position."""
    xyz = np.asarray(xyz, dtype=float).reshape(-1, 3)
    uav = np.asarray(uav_positions, dtype=float).reshape(-1, 3)
    if uav.shape[0] == 0 or xyz.shape[0] == 0:
        return np.zeros(xyz.shape[0], dtype=bool)
    d, _ = cKDTree(uav).query(xyz, k=1)
    return d <= radius


@dataclass
class PointCounts:
    """UAV and noise points before and after the point-level filter."""

    uav_before: int = 0
    uav_after: int = 0
    noise_before: int = 0
    noise_after: int = 0
    frames: int = 0

    def add(self, xyz: np.ndarray, keep: np.ndarray, uav_positions: np.ndarray) -> None:
        is_uav = uav_point_mask(xyz, uav_positions)
        keep = np.asarray(keep, dtype=bool)
        self.uav_before += int(is_uav.sum())
        self.uav_after += int((is_uav & keep).sum())
        self.noise_before += int((~is_uav).sum())
        self.noise_after += int((~is_uav & keep).sum())
        self.frames += 1

    def merge(self, other: "PointCounts") -> "PointCounts":
        """The counts of both (integers: the order of merging does not matter)."""
        return PointCounts(*(getattr(self, k) + getattr(other, k) for k in self.__dataclass_fields__))

    @property
    def uav_lost_pct(self) -> float:
        """R_uav-filtered, Eq. 17 (lower is better)."""
        return _pct(self.uav_before - self.uav_after, self.uav_before)

    @property
    def noise_removed_pct(self) -> float:
        """R_noise-filtered, Eq. 17 (higher is better)."""
        return _pct(self.noise_before - self.noise_after, self.noise_before)

    @property
    def noise_per_frame(self) -> float:
        return self.noise_before / self.frames if self.frames else float("nan")

    @property
    def noise_after_per_frame(self) -> float:
        return self.noise_after / self.frames if self.frames else float("nan")


# --- object and trajectory level (Eq. 18-20) ------------------------------------

def match(detections: np.ndarray, truth: np.ndarray, gate: float = MATCH_GATE_M):
    """Minimum-distance binary matching; returns (det_idx, truth_idx, dist) of
    the matched pairs within ``gate`` (the true positives)."""
    det = np.asarray(detections, dtype=float).reshape(-1, 3)
    gt = np.asarray(truth, dtype=float).reshape(-1, 3)
    if det.shape[0] == 0 or gt.shape[0] == 0:
        empty = np.zeros(0, dtype=int)
        return empty, empty, np.zeros(0)
    cost = np.linalg.norm(det[:, None, :] - gt[None, :, :], axis=2)
    rows, cols = linear_sum_assignment(cost)
    d = cost[rows, cols]
    ok = d <= gate
    return rows[ok], cols[ok], d[ok]


@dataclass
class DetectionCounts:
    """TP/FP/FN and localisation error accumulated over frames."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    frames: int = 0
    error_sum_m: float = 0.0
    frames_with_fp: int = 0

    def add(self, detections: np.ndarray, truth: np.ndarray, gate: float = MATCH_GATE_M):
        det = np.asarray(detections, dtype=float).reshape(-1, 3)
        gt = np.asarray(truth, dtype=float).reshape(-1, 3)
        _, _, d = match(det, gt, gate)
        tp = d.size
        fp = det.shape[0] - tp
        self.tp += tp
        self.fp += fp
        self.fn += gt.shape[0] - tp
        self.error_sum_m += float(d.sum())
        self.frames += 1
        self.frames_with_fp += int(fp > 0)
        return d

    def merge(self, other: "DetectionCounts") -> "DetectionCounts":
        return DetectionCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn,
                               self.frames + other.frames, self.error_sum_m + other.error_sum_m,
                               self.frames_with_fp + other.frames_with_fp)

    @property
    def precision_pct(self) -> float:
        return _pct(self.tp, self.tp + self.fp)

    @property
    def recall_pct(self) -> float:
        return _pct(self.tp, self.tp + self.fn)

    @property
    def f1_pct(self) -> float:
        p, r = self.precision_pct, self.recall_pct
        if np.isnan(p) or np.isnan(r):
            return float("nan")
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    @property
    def false_per_frame(self) -> float:
        return self.fp / self.frames if self.frames else float("nan")

    @property
    def mean_error_m(self) -> float:
        """Eq. 20 over the true positives."""
        return self.error_sum_m / self.tp if self.tp else float("nan")

    @property
    def fp_frame_rate_pct(self) -> float:
        """Share of frames with at least one false detection (UAV-free FP rate)."""
        return _pct(self.frames_with_fp, self.frames)


@dataclass
class RangeBands:
    """Detection counts per 100 m range band of the true UAV (Figure 23)."""

    edges: tuple = RANGE_BANDS_M
    bands: dict = field(default_factory=dict)

    def _band(self, r: float):
        for lo in self.edges:
            if lo <= r < lo + 100:
                return lo
        return None

    def add(self, detections: np.ndarray, truth: np.ndarray, gate: float = MATCH_GATE_M) -> None:
        det = np.asarray(detections, dtype=float).reshape(-1, 3)
        gt = np.asarray(truth, dtype=float).reshape(-1, 3)
        di, gi, d = match(det, gt, gate)
        for j in range(gt.shape[0]):
            band = self._band(float(np.linalg.norm(gt[j, :2])))
            if band is None:
                continue
            c = self.bands.setdefault(band, DetectionCounts())
            hit = np.flatnonzero(gi == j)
            if hit.size:
                c.tp += 1
                c.error_sum_m += float(d[hit[0]])
            else:
                c.fn += 1
        unmatched = np.setdiff1d(np.arange(det.shape[0]), di)
        for i in unmatched:
            band = self._band(float(np.linalg.norm(det[i, :2])))
            if band is not None:
                self.bands.setdefault(band, DetectionCounts()).fp += 1


# --- GOSPA --------------------------------------------------------------------

def gospa(estimates: np.ndarray, truth: np.ndarray, c: float = GOSPA_C_M, p: int = GOSPA_P) -> dict:
    """GOSPA with alpha = 2 (Rahmathullah et al. 2017): localisation, missed and
    false terms of one frame; ``total`` is the p-th root of their sum."""
    est = np.asarray(estimates, dtype=float).reshape(-1, 3)
    gt = np.asarray(truth, dtype=float).reshape(-1, 3)
    loc = 0.0
    assigned = 0
    if est.shape[0] and gt.shape[0]:
        d = np.minimum(np.linalg.norm(est[:, None] - gt[None], axis=2), c) ** p
        rows, cols = linear_sum_assignment(d)
        keep = d[rows, cols] < c ** p
        loc = float(d[rows, cols][keep].sum())
        assigned = int(keep.sum())
    missed = (gt.shape[0] - assigned) * c ** p / 2
    false = (est.shape[0] - assigned) * c ** p / 2
    return {"total": (loc + missed + false) ** (1 / p), "localisation": loc, "missed": missed, "false": false}


# --- HOTA ---------------------------------------------------------------------

def range_similarity(est: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """S[g, t] = max(0, 1 - d / (d0 + k * range(g))) between truth and estimates."""
    est = np.asarray(est, dtype=float).reshape(-1, 3)
    gt = np.asarray(gt, dtype=float).reshape(-1, 3)
    d = np.linalg.norm(gt[:, None] - est[None], axis=2)
    scale = HOTA_D0_M + HOTA_D0_PER_M * np.linalg.norm(gt[:, :2], axis=1)[:, None]
    return np.clip(1.0 - d / scale, 0.0, 1.0)


def hota(frames: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> dict:
    """HOTA, DetA, AssA, LocA (averaged over TrackEval's alpha thresholds).

    ``frames``: per frame (gt_ids, gt_xyz, track_ids, track_xyz).
    """
    from trackeval.metrics import HOTA

    gt_map, tr_map = {}, {}
    data = {"gt_ids": [], "tracker_ids": [], "similarity_scores": []}
    n_gt = n_tr = 0
    for gt_ids, gt_xyz, tr_ids, tr_xyz in frames:
        g = np.array([gt_map.setdefault(int(i), len(gt_map)) for i in gt_ids], dtype=int)
        t = np.array([tr_map.setdefault(int(i), len(tr_map)) for i in tr_ids], dtype=int)
        data["gt_ids"].append(g)
        data["tracker_ids"].append(t)
        data["similarity_scores"].append(range_similarity(tr_xyz, gt_xyz))
        n_gt += g.size
        n_tr += t.size
    data.update(num_gt_dets=n_gt, num_tracker_dets=n_tr, num_gt_ids=len(gt_map), num_tracker_ids=len(tr_map),
                num_timesteps=len(frames))
    res = HOTA().eval_sequence(data)
    return {k: float(np.mean(res[k])) for k in ("HOTA", "DetA", "AssA", "LocA")}


@dataclass
class SourceTally:
    """False objects and false outputs (farther than 10 m from every true
    UAV) by the source of their points: per object, the most common source
    label of the points clustered into it; per output track, that of the
    object it was associated with this frame ("coasting" when none)."""
    objects: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    frames: int = 0

    def add(self, point_source: np.ndarray, point_cluster: np.ndarray, object_pos: np.ndarray,
            object_keep: np.ndarray, output_pos: np.ndarray, output_detection: np.ndarray,
            truth: np.ndarray, names: dict) -> None:
        """One frame. ``point_source`` (N,) integer source codes, named by
        ``names``; ``point_cluster`` (N,) object of each point (-1: none);
        ``output_detection`` (K,) object index of each output (-1: coasting)."""
        self.frames += 1
        m = len(object_pos)
        dom = np.full(m, -1)
        inside = point_cluster >= 0
        if m and inside.any():
            codes = np.unique(point_source[inside])
            tab = np.zeros((m, codes.size), np.int64)
            np.add.at(tab, (point_cluster[inside], np.searchsorted(codes, point_source[inside])), 1)
            has = tab.sum(1) > 0
            dom[has] = codes[tab[has].argmax(1)]
        far_obj = ~uav_point_mask(object_pos, truth) & np.asarray(object_keep, bool)
        for c in dom[far_obj]:
            key = names.get(int(c), "other")
            self.objects[key] = self.objects.get(key, 0) + 1
        far_out = ~uav_point_mask(output_pos, truth)
        for j in np.asarray(output_detection)[far_out]:
            key = names.get(int(dom[j]), "other") if 0 <= j < m else "coasting"
            self.outputs[key] = self.outputs.get(key, 0) + 1

    def merge(self, other: "SourceTally") -> "SourceTally":
        """The tallies of both (integer counts)."""
        def add(a: dict, b: dict) -> dict:
            return {k: a.get(k, 0) + b.get(k, 0) for k in {**a, **b}}
        return SourceTally(add(self.objects, other.objects), add(self.outputs, other.outputs),
                           self.frames + other.frames)

    def figures(self) -> dict:
        """``false_objects_per_frame_<source>`` and ``false_outputs_pct_<source>``."""
        out = {f"false_objects_per_frame_{k}": v / max(self.frames, 1) for k, v in sorted(self.objects.items())}
        n = sum(self.outputs.values())
        out.update({f"false_outputs_pct_{k}": _pct(v, n) for k, v in sorted(self.outputs.items())})
        return out


def score_stamped(truth: dict, tracks: dict, detections: dict) -> tuple[dict, list]:
    """The paper's trajectory-level figures of UAV-classified track
    positions against UAV truth, frames matched by stamp (each dict maps a
    stamp to an (n, 3) array); frames with truth but no output count as
    misses. Returns the figures and the per-frame outputs in stamp order."""
    full, objects = DetectionCounts(), DetectionCounts()
    outputs = []
    for stamp in sorted(truth):
        out = tracks.get(stamp, np.zeros((0, 3)))
        full.add(out, truth[stamp])
        objects.add(detections.get(stamp, np.zeros((0, 3))), truth[stamp])
        outputs.append(out)
    figures = {"frames": len(truth), "frames_with_tracks_pct": 100.0 * len(tracks) / max(len(truth), 1),
               "f1_pct": full.f1_pct, "precision_pct": full.precision_pct, "recall_pct": full.recall_pct,
               "mean_loc_error_m": full.mean_error_m, "false_per_frame": full.false_per_frame,
               "false_objects_per_frame": objects.false_per_frame, "object_recall_pct": objects.recall_pct}
    return figures, outputs


def _pct(num: float, den: float) -> float:
    return 100.0 * num / den if den else float("nan")
