"""The roles of the BSense tracker (BSense paper, Section 3.4.1), split as
Stone Soup splits a multi-target tracker: an associator pairs tracks with
detections, an initiator starts tracks and their filters, a confirmation
rule says when a track is real and a deleter when it is gone. Each is a
small object built from :class:`~.tracker.TrackerConfig`; replacing one
changes one rule and nothing else.

Our choices where the paper gives no value: the 20 m gate, K = 3 consecutive
associations to confirm (the paper's K did not survive in our copy), a
confirmed track deleted after more than 5 consecutive misses (it coasts
through short gaps of the UAV's points), a tentative one at its first miss.
"""
from __future__ import annotations

import collections
import itertools
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from .clustering import Objects
from .imm_ukf import BatchIMM, measurement_cov, state_from, velocity_of
from .tracks import MU_PRIOR, Track, observations

_INADMISSIBLE = 1e6


@dataclass(frozen=True)
class GatedAssociator:
    """Kuhn-Munkres assignment (scipy ``linear_sum_assignment``) on the
    Euclidean distance between predicted and detected positions; a pair
    farther apart than ``gate_m`` never associates."""
    gate_m: float

    def associate(self, predicted: np.ndarray, detected: np.ndarray) -> dict[int, int]:
        """{track index: detection index} of the associated pairs."""
        if predicted.shape[0] == 0 or detected.shape[0] == 0:
            return {}
        d = np.sqrt(((predicted[:, None, :] - detected[None, :, :]) ** 2).sum(-1))
        cost = np.where(d < self.gate_m, d, _INADMISSIBLE)
        r, c = linear_sum_assignment(cost)
        return {int(a): int(b) for a, b in zip(r, c) if cost[a, b] < _INADMISSIBLE}


@dataclass(frozen=True)
class StreakConfirmation:
    """A track is confirmed after K consecutive associations (and stays so)."""
    hits: int

    def confirms(self, track: Track) -> bool:
        return track.confirmed or track.streak >= self.hits


@dataclass(frozen=True)
class MissDeleter:
    """A track is deleted when its consecutive misses exceed ``max_misses``
    (confirmed) or ``max_misses_tentative`` (not yet confirmed)."""
    max_misses: int
    max_misses_tentative: int

    def deletes(self, track: Track) -> bool:
        return track.misses > (self.max_misses if track.confirmed else self.max_misses_tentative)


class TwoPointInitiator:
    """Tracks from unassociated detections, filters from two points.

    A new track holds one detection and no filter; its velocity is reported
    along the line of sight from the Doppler. On its second association the
    IMM-UKF starts: heading, climb and speed from the displacement (our
    choice: one Doppler cannot tell the tangential motion)."""

    def __init__(self, dt: float, history: int, origin: np.ndarray):
        self.dt, self.history, self.origin = float(dt), int(history), origin
        self._ids = itertools.count(1)

    def tentative(self, objects: Objects, ks: np.ndarray, conf: np.ndarray) -> list[Track]:
        """One-detection tracks from detections ``ks``; all their first
        observations built as one array (rows are not shared)."""
        O = observations(objects, ks, conf, np.zeros((ks.size, 3)), MU_PRIOR)
        tracks = []
        for k, obs in zip(ks, O):
            t = Track(id=next(self._ids), last_pos=objects.pos[k].copy(), last_doppler=float(objects.doppler[k]),
                      history=collections.deque(maxlen=self.history), detection=int(k))
            t.history.append(obs)
            tracks.append(t)
        return tracks

    def start_filters(self, pairs: list, objects: Objects, conf: np.ndarray, bank: BatchIMM) -> None:
        """Second detections: each track of ``pairs`` [(track, k)] gets its
        filter from the displacement, all added to ``bank`` at once."""
        if not pairs:
            return
        ks = np.array([k for _, k in pairs], dtype=np.int64)
        starts = [self.two_point_state(objects.pos[k], t.last_pos) for t, k in pairs]
        vel = np.array([velocity_of(x0) for x0, _ in starts])
        O = observations(objects, ks, conf, vel, MU_PRIOR)
        for (t, k), obs in zip(pairs, O):
            t.hit(k, objects.pos[k].copy(), objects.doppler[k], obs)
        bank.add([t.id for t, _ in pairs], np.array([s[0] for s in starts]), np.array([s[1] for s in starts]))

    def two_point_state(self, pos: np.ndarray, last_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(x0, P0) from two detections one frame apart: position as
        detected, velocity from the displacement; heading and speed spreads
        from the position error over the displacement (our choices)."""
        dt = self.dt
        R = measurement_cov(pos, self.origin)
        vel = (pos - last_pos) / dt
        x0 = state_from(pos, vel)
        P0 = np.zeros((7, 7))
        P0[:3, :3] = R[:3, :3]
        sv = np.sqrt(2.0 * R[0, 0] + 2.0 * R[1, 1]) / dt / max(np.linalg.norm(vel), 1.0)
        P0[3, 3], P0[4, 4] = min(sv, np.pi) ** 2 + 0.05, 0.2 ** 2
        P0[5, 5], P0[6, 6] = (np.sqrt(2 * R[0, 0]) / dt) ** 2 + 1.0, 0.05 ** 2
        return x0, P0
