"""The background-nulling detector (:mod:`.subspace`) and the bistatic
localiser (:mod:`.bistatic`) as the deployment runs them (beyond the
paper, beside the learned two-round system of :mod:`.pipeline`).

A BS (:func:`pair_echoes`) turns each of its pairs' CFRs into delay taps
(:func:`.preprocess.delay_taps`, the transform the evaluation uses), nulls
the pair's background with its fitted basis and reports two numbers: the
residual's peak ``z`` (noise units) and the bistatic range of that peak's
delay. The centre (:class:`SubspaceCentre`) declares a UAV when the
largest ``z`` of the pairs it received reaches the threshold chosen on
validation for the set of BSs that answered, and locates it from the
ranges of the ``k`` strongest pairs. One round: nothing goes back to the
BSs.

:class:`SubspaceCalibration` is what `sense train fwa --subspace` fits and
both node kinds load: per BS the bases of its pairs (complex64), the tap
noise variances, the thresholds, ``k`` and the site geometry. It is one
``.npz`` read without pickle.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sense_nodes.core.fwa.bistatic import delay_to_range, locate_strongest, refine_delay, search_box
from sense_nodes.core.fwa.pipeline import Decision
from sense_nodes.core.fwa.preprocess import delay_taps
from sense_nodes.core.fwa.subspace import BackgroundSubspace, pair_statistics

FORMAT = 1
MAKE_COMMAND = "sense train fwa --subspace"


def default_path(dataset: str | None = None) -> Path:
    """Where `sense train fwa --subspace` writes and the nodes and
    evaluations look by default: the cache's models folder, one file per
    dataset folder name (a calibration is fitted on one dataset's UAV-free
    training scenes); the default dataset's (or ``None``'s) is subspace.npz."""
    from sense_nodes.data.csi.dataset import default_dir
    from sense_nodes.data.paths import cache_dir
    name = Path(str(dataset)).name if dataset else None
    default = default_dir("fwa", False, 0).name
    return cache_dir("models", "fwa") / ("subspace.npz" if name in (None, default) else f"subspace-{name}.npz")


@dataclass
class SubspaceCalibration:
    """Per BS ``b``: ``bases[b][n]`` [D, r] of its pair with CPE ``n``
    (``None`` for a BS not loaded). Thresholds are on the scene statistic
    (the largest pair ``z``): ``threshold`` with every BS answering,
    ``threshold_missing[b]`` with BS ``b`` silent."""

    bases: list
    noise_var: np.ndarray          # [P] tap noise variance per pair
    n_t: int
    n_taps: int
    num_subcarriers: int
    scs_hz: float
    bs_pos: np.ndarray             # [M, 3] m
    cpe_pos: np.ndarray            # [N, 3] m
    height: float                  # the UAV's flight height, m
    threshold: float
    threshold_missing: np.ndarray  # [M]
    k_pairs: int
    info: dict = field(default_factory=dict)

    @property
    def n_bs(self) -> int:
        return len(self.bs_pos)

    @property
    def n_cpe(self) -> int:
        return len(self.cpe_pos)

    def threshold_for(self, answered) -> float:
        """The scene threshold for the BSs in ``answered``. Several BSs
        silent (not chosen on validation): the lowest of their one-missing
        thresholds, as fewer pairs give a lower maximum."""
        missing = [b for b in range(self.n_bs) if b not in set(answered)]
        if not missing:
            return float(self.threshold)
        return float(np.min(self.threshold_missing[missing]))

    def subspace(self, pairs) -> BackgroundSubspace:
        """The background bases of ``pairs`` (all of loaded BSs)."""
        n = self.n_cpe
        missing = [p for p in pairs if self.bases[p // n] is None]
        if missing:
            raise ValueError(f"pairs {missing} belong to BSs whose bases were not loaded")
        return BackgroundSubspace([self.bases[p // n][p % n] for p in pairs], self.noise_var[list(pairs)])

    # --- file ------------------------------------------------------------------
    def save(self, path) -> Path:
        path = Path(path)
        out = {"format": np.array(FORMAT), "noise_var": self.noise_var.astype(np.float64),
               "n_t": np.array(self.n_t), "n_taps": np.array(self.n_taps),
               "num_subcarriers": np.array(self.num_subcarriers), "scs_hz": np.array(self.scs_hz),
               "bs_pos": np.asarray(self.bs_pos, np.float64), "cpe_pos": np.asarray(self.cpe_pos, np.float64),
               "height": np.array(self.height), "threshold": np.array(self.threshold),
               "threshold_missing": np.asarray(self.threshold_missing, np.float64),
               "k_pairs": np.array(self.k_pairs), "info": np.array(json.dumps(self.info))}
        for b, bases in enumerate(self.bases):
            # one [D, sum r] array per BS: a BS node reads only its own
            out[f"bs{b}_ranks"] = np.array([u.shape[1] for u in bases])
            out[f"bs{b}_bases"] = np.concatenate(bases, axis=1).astype(np.complex64)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, **out)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path, bs=None) -> "SubspaceCalibration":
        """Read a file of :meth:`save` (without pickle); ``bs``: load the
        bases of these BSs only (None = all). FileNotFoundError names the
        command that makes one; ValueError a file that does not fit."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no FWA subspace calibration at {path}: make one with `{MAKE_COMMAND}`")
        try:
            with np.load(path, allow_pickle=False) as f:
                if int(f["format"]) != FORMAT:
                    raise ValueError(f"{path}: calibration format {int(f['format'])}, expected {FORMAT}; "
                                     f"remake it with `{MAKE_COMMAND}`")
                m = len(f["bs_pos"])
                want = range(m) if bs is None else [int(b) for b in np.atleast_1d(bs)]
                bad = [b for b in want if not 0 <= b < m]
                if bad:
                    raise ValueError(f"{path}: BS {bad} not in the calibrated site's {m} BSs")
                bases = [None] * m
                for b in want:
                    ranks, allb = f[f"bs{b}_ranks"], f[f"bs{b}_bases"]
                    edges = np.r_[0, np.cumsum(ranks)]
                    bases[b] = [allb[:, edges[i]:edges[i + 1]] for i in range(len(ranks))]
                return cls(bases, f["noise_var"], int(f["n_t"]), int(f["n_taps"]), int(f["num_subcarriers"]),
                           float(f["scs_hz"]), f["bs_pos"], f["cpe_pos"], float(f["height"]),
                           float(f["threshold"]), f["threshold_missing"], int(f["k_pairs"]),
                           json.loads(str(f["info"])))
        except KeyError as exc:
            raise ValueError(f"{path}: not an FWA subspace calibration (no {exc}); make one with "
                             f"`{MAKE_COMMAND}`") from None


def residual_echoes(sub: BackgroundSubspace, taps: np.ndarray, n_t: int, n_taps: int, k: int):
    """[L, D] taps of L pairs -> (z [L], echo delay in taps [L]): the
    residual's peak and the refined delay of that peak (Section "Statistic"
    of :mod:`.subspace`, :func:`.bistatic.refine_delay`)."""
    resid = sub.residual(taps)
    st = pair_statistics(resid, sub.noise_var, n_t, n_taps)
    r = resid.reshape(len(resid), -1, n_t, n_taps)
    u = np.array([refine_delay(r[p], int(st.tap[p]), k) for p in range(len(r))])
    return st.z, u


def calibrated_taps(cal: SubspaceCalibration, H: np.ndarray) -> np.ndarray:
    """[L, n_r, n_t, K] CFRs -> [L, D] the delay taps the bases null;
    ValueError when the CFRs do not fit the calibration or are not finite."""
    H = np.asarray(H)
    if H.shape[-1] != cal.num_subcarriers or H.shape[-2] != cal.n_t:
        raise ValueError(f"CSI of {H.shape[-2]} CPE antennas x {H.shape[-1]} subcarriers; the calibration "
                         f"has {cal.n_t} x {cal.num_subcarriers}")
    if not np.isfinite(H).all():
        raise ValueError("CSI holds non-finite values")
    return delay_taps(H, cal.n_taps).reshape(len(H), -1)


def pair_echoes(cal: SubspaceCalibration, csi: dict) -> dict:
    """A BS's round: pair index -> H [n_r, n_t, K] -> pair index -> (z,
    bistatic range m). ValueError when the CFRs do not fit the calibration."""
    if not csi:
        return {}
    keys = sorted(csi)
    taps = calibrated_taps(cal, np.stack([np.asarray(csi[k]) for k in keys]))
    z, u = residual_echoes(cal.subspace(keys), taps, cal.n_t, cal.n_taps, cal.num_subcarriers)
    rng = delay_to_range(u, cal.num_subcarriers, cal.scs_hz)
    return {k: (float(z[i]), float(rng[i])) for i, k in enumerate(keys)}


def presence_probability(score: float, threshold: float) -> float:
    """A monotone map of the scene statistic to [0, 1] with 0.5 at the
    threshold: ``z / (z + threshold)`` (a display scale for the
    UavDetection message, not a calibrated probability)."""
    s, t = max(float(score), 0.0), max(float(threshold), 1e-12)
    return s / (s + t)


@dataclass
class SubspaceDecision(Decision):
    """:class:`.pipeline.Decision` of the one-round mode: ``attention`` is
    ``z`` normalised over the pairs received, ``selected`` the pairs the
    position was fitted on, ``position`` [3] m (None without a UAV)."""

    position: np.ndarray | None = None
    score: float = 0.0
    threshold: float = 0.0


class SubspaceCentre:
    """The centre of the one-round mode; :class:`.protocol.CentreProtocol`
    drives it like :class:`.pipeline.FusionCentre` (``second_round``
    False: it locates from the round-1 reports)."""

    second_round = False

    def __init__(self, cal: SubspaceCalibration, k: int | None = None, threshold: float = 0.5):
        """``threshold`` on :func:`presence_probability` (0.5: the
        calibrated threshold on ``z``)."""
        self.cal = cal
        self.k = int(cal.k_pairs if k is None else k)
        self.threshold = float(threshold)
        self.lo, self.hi = search_box(cal.bs_pos, cal.cpe_pos)

    def z_threshold(self, answered) -> float:
        """The threshold on the scene statistic equivalent to
        ``self.threshold`` on the probability, for the BSs ``answered``."""
        t = self.threshold
        return np.inf if t >= 1 else self.cal.threshold_for(answered) * t / (1 - t)

    def detect(self, reports: dict) -> SubspaceDecision:
        """pair index -> (z, range m) of the pairs received."""
        if not reports:
            raise ValueError("no pair reports to decide on")
        keys = np.array(sorted(reports))
        z = np.array([reports[k][0] for k in keys], np.float64)
        rng = np.array([reports[k][1] for k in keys], np.float64)
        answered = {int(k) // self.cal.n_cpe for k in keys}
        thr = self.cal.threshold_for(answered)
        score = float(z.max())
        present = score >= self.z_threshold(answered)
        att = z / z.sum() if z.sum() > 0 else np.full(len(z), 1.0 / len(z))
        sel, pos = [], None
        if present:
            top, pos = locate_strongest(z, rng, keys, self.cal.bs_pos, self.cal.cpe_pos, self.cal.height,
                                        self.lo, self.hi, self.k)
            sel = [int(k) for k in top]
        return SubspaceDecision(presence_probability(score, thr), bool(present),
                                dict(zip(keys.tolist(), att.tolist())), sel, pos, score, thr)
