"""What the BSense tracker keeps per trajectory (BSense paper, Section 3.4):
the track's counters, its latest detection and the observations TrajFormer
reads (Section 3.4.2), and what a track reports each frame."""
from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np

from .clustering import Objects

# observation features of one frame (Section 3.4.2: spatial motion and signal features);
# c_s, c_v: the object's confidences (Eq. 13, 16); mu_ct: the IMM's probability
# of the turning (CTRV) model after the update (0.5 before the track's filter
# starts). The last three are our choice: see trajformer.window_features.
OBS_FIELDS = ("x", "y", "z", "vx", "vy", "vz", "doppler", "snr", "scr", "noise", "signal_power",
              "rx_power", "n_points", "c_s", "c_v", "mu_ct")
MU_PRIOR = 0.5     # model probability of a track without a filter yet (the IMM starts at 0.5 / 0.5)


@dataclass
class Track:
    """One trajectory: counters, latest detection, observation history. Its
    IMM-UKF lives in the tracker's filter bank under the track's ``id``
    (from its second detection on)."""
    id: int
    age: int = 1
    hits: int = 1
    streak: int = 1                  # consecutive associations
    misses: int = 0                  # consecutive misses
    confirmed: bool = False
    score: float = float("nan")      # TrajFormer probability of a true target
    verified: bool = False           # TrajFormer calls it true (see verification.OutputPolicy)
    recent: collections.deque = None  # its latest scores, for the "hold" rule
    last_pos: np.ndarray = None
    last_doppler: float = 0.0
    pending_state: tuple = None      # (x, P) reported while the track has one detection
    history: collections.deque = field(default_factory=collections.deque)
    associated: bool = True          # associated in the latest frame
    detection: int = -1              # index of the latest frame's detection, -1 if none

    def hit(self, k: int, pos: np.ndarray, doppler: float, obs: np.ndarray) -> None:
        """Associated with detection ``k`` of this frame."""
        self.hits += 1
        self.streak += 1
        self.misses = 0
        self.associated, self.detection = True, int(k)
        self.last_pos = pos
        self.last_doppler = float(doppler)
        self.history.append(obs)

    def miss(self) -> None:
        """No detection this frame."""
        self.associated, self.detection = False, -1
        self.misses += 1
        self.streak = 0


@dataclass(slots=True)
class TrackState:
    """What a track reports each frame (ids stable over the track's life)."""
    id: int
    position: np.ndarray             # (3,) m
    velocity: np.ndarray             # (3,) m/s
    position_cov: np.ndarray         # (3, 3)
    state: np.ndarray                # (7,) [p, psi, theta, v, omega]
    covariance: np.ndarray           # (7, 7)
    model_probs: np.ndarray          # (2,) [CV, CTRV]
    confirmed: bool
    age: int
    hits: int
    misses: int
    score: float
    verified: bool
    associated: bool
    detection: int


def observations(objects: Objects, ks: np.ndarray, conf: np.ndarray, vel: np.ndarray,
                 mu_ct) -> np.ndarray:
    """(K, len(OBS_FIELDS)) observation rows of detections ``ks`` with their
    velocities ``vel`` (K, 3), confidences ``conf`` (per object, M x 2) and
    turning-model probabilities ``mu_ct`` (K, 1) or a scalar. The rows are
    fresh arrays, never shared with the objects."""
    n = ks.size
    mu = np.full((n, 1), mu_ct) if np.isscalar(mu_ct) else mu_ct
    return np.concatenate([objects.pos[ks], vel, objects.doppler[ks, None], objects.features[ks],
                           objects.n_points[ks, None], conf[ks], mu], 1)
