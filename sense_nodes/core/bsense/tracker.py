"""Multi-target tracking with the IMM-UKF (BSense paper, Section 3.4.1).

Each frame: every track's IMM predicts; detections are assigned to tracks by
the Kuhn-Munkres algorithm (scipy ``linear_sum_assignment``) on the
Euclidean distance between predicted and detected position within a gate;
assigned tracks update with [x, y, z, Doppler], unassigned detections start
tentative tracks. A track is confirmed after K consecutive associations
(the paper's K did not survive in our copy: K = 3, our choice) and deleted
when its consecutive misses exceed ``max_misses`` (5) if confirmed or
``max_misses_tentative`` (0: at the first miss) if not (our choices:
confirmed tracks coast through short gaps of the UAV's points). Each track keeps the observations the trajectory classifier
(TrajFormer, Section 3.4.2) reads.

A new track's velocity comes from its Doppler (along the line of sight); on
its second association heading, climb and speed are re-initialised from the
displacement (our choice: one Doppler cannot tell the tangential motion).
"""
from __future__ import annotations

import collections
import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from sense_nodes.bs_sensor import FRAME_S

from .clustering import Objects
from .imm_batch import BatchIMM
from .imm_ukf import ORIGIN, make_imm, measurement_cov, measurement_covs, state_from, velocity_of

# observation features of one frame (Section 3.4.2: spatial motion and signal features);
# c_s, c_v: the object's confidences (Eq. 13, 16); mu_ct: the IMM's probability
# of the turning (CTRV) model after the update (0.5 before the track's filter
# starts). The last three are our choice: see trajformer.window_features.
OBS_FIELDS = ("x", "y", "z", "vx", "vy", "vz", "doppler", "snr", "scr", "noise", "signal_power",
              "rx_power", "n_points", "c_s", "c_v", "mu_ct")
MU_PRIOR = 0.5     # model probability of a track without a filter yet (BatchIMM starts at 0.5 / 0.5)


@dataclass(frozen=True)
class TrackerConfig:
    """Section 3.4.1 parameters (our choices where the paper gives none)."""
    dt: float = FRAME_S              # frame interval (paper)
    gate_m: float = 20.0             # association gate on predicted position (our choice)
    confirm_hits: int = 3            # K consecutive associations (our choice, value lost)
    max_misses: int = 5              # confirmed track deleted when its misses exceed this (our choice)
    max_misses_tentative: int = 0    # tentative track likewise: 0 = at its first miss (our choice)
    history: int = 32                # observations kept per track
    init_speed_sd: float = 5.0       # m/s, new-track speed spread (our choice)
    origin: tuple = tuple(ORIGIN)
    batched: bool = True             # all tracks' IMM-UKFs in arrays (imm_batch); False: one filterpy IMM per track


class _Row:
    """A track's view into the :class:`BatchIMM` (x, P, mu of the combined estimate)."""
    __slots__ = ("bank", "row")

    def __init__(self, bank: BatchIMM, row: int):
        self.bank, self.row = bank, row

    @property
    def x(self):
        return self.bank.xc[self.row]

    @property
    def P(self):
        return self.bank.Pc[self.row]

    @property
    def mu(self):
        return self.bank.mu[self.row]


@dataclass
class Track:
    """One trajectory: its IMM, counters and observation history."""
    id: int
    imm: object
    age: int = 1
    hits: int = 1
    streak: int = 1
    misses: int = 0
    confirmed: bool = False
    score: float = float("nan")      # TrajFormer probability of a true target
    verified: bool = False           # TrajFormer said true once (then it stays output)
    last_pos: np.ndarray = None
    last_doppler: float = 0.0
    pending_state: tuple = None      # (x, P) reported while the track has one detection
    history: collections.deque = field(default_factory=collections.deque)
    associated: bool = True          # associated in the latest frame
    detection: int = -1              # index of the latest frame's detection, -1 if none


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


class Tracker:
    """IMM-UKF tracker. ``step(objects, keep=None)`` -> list of
    :class:`TrackState` of every live track after this frame."""

    def __init__(self, config: TrackerConfig | None = None):
        self.config = config or TrackerConfig()
        self.origin = np.asarray(self.config.origin, dtype=np.float64)
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)
        self.bank = BatchIMM(self.config.dt, self.origin)
        self._conf = np.zeros((0, 2))      # this frame's object confidences (set by step)

    def reset(self) -> None:
        self.tracks = []
        self._ids = itertools.count(1)
        self.bank = BatchIMM(self.config.dt, self.origin)

    # ------------------------------------------------------------------
    def _new_track(self, pos, dop, obs) -> Track:
        """A one-detection track: no filter yet (its IMM starts on the second
        detection, from the displacement), velocity along the line of sight
        from the Doppler for reporting."""
        t = Track(id=next(self._ids), imm=None, last_pos=pos.copy(), last_doppler=float(dop),
                  history=collections.deque(maxlen=self.config.history))
        t.history.append(obs)
        return t

    def _predicted(self, t: Track) -> np.ndarray:
        return t.imm.x[:3] if t.imm is not None else t.last_pos

    def step(self, objects: Objects, keep: np.ndarray | None = None,
             confidence: np.ndarray | None = None) -> list[TrackState]:
        """One frame: predict, associate, update, start, confirm, delete.
        ``confidence`` (M, 2): each object's C_s and C_v (Eq. 13, 16), kept
        in the tracks' observations for TrajFormer (None: zeros)."""
        cfg = self.config
        n_obj = len(objects)
        if confidence is None:
            self._conf = np.zeros((n_obj, 2))
        else:
            self._conf = np.asarray(confidence, dtype=np.float64).reshape(-1, 2)
            if self._conf.shape[0] != n_obj:
                raise ValueError(f"confidence has {self._conf.shape[0]} rows for {n_obj} objects")
        idx = np.arange(len(objects)) if keep is None else np.flatnonzero(keep)
        det = objects.pos[idx]
        if cfg.batched:
            self.bank.predict()
        for t in self.tracks:
            if t.imm is not None and not cfg.batched:
                t.imm.predict()
            t.age += 1
        # association (Kuhn-Munkres within the gate)
        assign = {}
        if self.tracks and idx.size:
            pred = np.array([self._predicted(t) for t in self.tracks])
            d = np.sqrt(((pred[:, None, :] - det[None, :, :]) ** 2).sum(-1))
            cost = np.where(d < cfg.gate_m, d, 1e6)
            r, c = linear_sum_assignment(cost)
            for a, b in zip(r, c):
                if cost[a, b] < 1e6:
                    assign[a] = b
        used = np.zeros(idx.size, bool)
        survivors = []
        steady = []        # batched tracks past their second detection: updated in bulk below
        self._adds = []
        for i, t in enumerate(self.tracks):
            if i in assign:
                j = assign[i]
                used[j] = True
                if cfg.batched and t.hits > 1:
                    steady.append((t, idx[j]))
                else:
                    self._update(t, objects, idx[j])
            else:
                t.associated, t.detection = False, -1
                t.misses += 1
                t.streak = 0
                limit = cfg.max_misses if t.confirmed else cfg.max_misses_tentative
                if t.misses > limit:
                    continue
            survivors.append(t)
        if self._adds:
            rows = self.bank.add_many(np.array([a[1] for a in self._adds]), np.array([a[2] for a in self._adds]))
            for (t, _, _), r in zip(self._adds, rows):
                t.imm = _Row(self.bank, int(r))
        if steady:
            self._update_steady(steady, objects)
        if cfg.batched:
            live = [t for t in survivors if t.imm is not None]
            self.bank.keep(np.array([t.imm.row for t in live], dtype=np.int64))
            for r, t in enumerate(live):
                t.imm.row = r
        fresh = idx[~used]
        if fresh.size:     # all new tracks' first observations in one array (rows are not shared)
            O = np.concatenate([objects.pos[fresh], np.zeros((fresh.size, 3)), objects.doppler[fresh, None],
                                objects.features[fresh], objects.n_points[fresh, None], self._conf[fresh],
                                np.full((fresh.size, 1), MU_PRIOR)], 1)
            for k, obs in zip(fresh, O):
                t = self._new_track(objects.pos[k], float(objects.doppler[k]), obs)
                t.detection = int(k)
                survivors.append(t)
        self.tracks = survivors
        return self.states()

    def states(self) -> list[TrackState]:
        """:class:`TrackState` of every live track, gathered in bulk: one
        array operation per field for all tracks (per-track small-array calls
        were most of the tracker's time with ~100 live tracks a frame).
        The arrays are fresh each call, so the states never alias the filters."""
        tracks = self.tracks
        n = len(tracks)
        if n == 0:
            return []
        x = np.empty((n, 7))
        P = np.empty((n, 7, 7))
        mu = np.full((n, 2), 0.5)
        filt = [i for i, t in enumerate(tracks) if t.imm is not None]
        if filt and self.config.batched:
            rows = np.array([tracks[i].imm.row for i in filt])
            x[filt], P[filt], mu[filt] = self.bank.xc[rows], self.bank.Pc[rows], self.bank.mu[rows]
        else:
            for i in filt:
                x[i], P[i], mu[i] = tracks[i].imm.x, tracks[i].imm.P, np.asarray(tracks[i].imm.mu, float)
        pend = [i for i, t in enumerate(tracks) if t.imm is None]
        self._pending_states([tracks[i] for i in pend if tracks[i].pending_state is None])
        for i in pend:
            x[i], P[i] = tracks[i].pending_state
        vel = velocity_of(x)
        return [TrackState(id=t.id, position=x[i, :3], velocity=vel[i], position_cov=P[i, :3, :3],
                           state=x[i], covariance=P[i], model_probs=mu[i], confirmed=t.confirmed, age=t.age,
                           hits=t.hits, misses=t.misses, score=t.score, verified=t.verified,
                           associated=t.associated, detection=t.detection)
                for i, t in enumerate(tracks)]

    def _pending_states(self, new: list) -> None:
        """(x, P) of one-detection tracks, all at once: position as detected,
        velocity along the line of sight from the Doppler, broad heading,
        climb and speed spreads."""
        if not new:
            return
        pos = np.array([t.last_pos for t in new], dtype=np.float64)
        dop = np.array([t.last_doppler for t in new])
        d = pos - self.origin
        vel = d / np.maximum(np.linalg.norm(d, axis=1), 1e-6)[:, None] * dop[:, None]
        x = np.zeros((len(new), 7))
        x[:, :3] = pos
        x[:, 3] = np.arctan2(vel[:, 1], vel[:, 0])
        x[:, 4] = np.arctan2(vel[:, 2], np.maximum(np.hypot(vel[:, 0], vel[:, 1]), 1e-9))
        x[:, 5] = np.linalg.norm(vel, axis=1)
        P = np.zeros((len(new), 7, 7))
        P[:, :3, :3] = measurement_covs(pos, self.origin)[:, :3, :3]
        P[:, 3, 3], P[:, 4, 4], P[:, 5, 5], P[:, 6, 6] = ((np.pi / 2) ** 2, 0.3 ** 2,
                                                          self.config.init_speed_sd ** 2, 0.05 ** 2)
        for t, xi, Pi in zip(new, x, P):
            t.pending_state = (xi, Pi)

    def _obs(self, objects: Objects, k: int, pos, vel, mu_ct: float) -> np.ndarray:
        """One observation row (``OBS_FIELDS``) of detection ``k``."""
        return np.concatenate([pos, vel, [objects.doppler[k]], objects.features[k], [objects.n_points[k]],
                               self._conf[k], [mu_ct]])

    def _update_steady(self, steady: list, objects: Objects) -> None:
        """The UKF updates of the batched tracks past their second detection,
        all at once: one bank update, the observations built as one array
        (the per-track form of :meth:`_update` was a third of the tracker's
        time); rows of that array are not shared between tracks."""
        cfg = self.config
        ks = np.array([k for _, k in steady], dtype=np.int64)
        pos = objects.pos[ks].astype(np.float64)
        dop = objects.doppler[ks].astype(np.float64)
        rows = np.array([t.imm.row for t, _ in steady], dtype=np.int64)
        Z = np.concatenate([pos, dop[:, None]], 1)
        self.bank.update(rows, Z, measurement_covs(pos, self.origin))
        O = np.concatenate([pos, velocity_of(self.bank.xc[rows]), dop[:, None], objects.features[ks],
                            objects.n_points[ks, None], self._conf[ks], self.bank.mu[rows, 1:2]], 1)
        for (t, k), p, d, obs in zip(steady, pos, dop, O):
            t.hits += 1
            t.streak += 1
            t.misses = 0
            t.associated, t.detection = True, int(k)
            t.last_pos = p
            t.last_doppler = float(d)
            if t.streak >= cfg.confirm_hits:
                t.confirmed = True
            t.history.append(obs)

    def _update(self, t: Track, objects: Objects, k: int) -> None:
        """One track's update with detection ``k``: its second detection
        starts the filter; later ones update it (per-track filterpy IMM only;
        batched tracks past their second detection go to :meth:`_update_steady`)."""
        cfg = self.config
        pos = objects.pos[k]
        z = np.array([pos[0], pos[1], pos[2], objects.doppler[k]])
        R = measurement_cov(pos, self.origin)
        if t.hits == 1:
            # second detection: restart heading, climb and speed from the displacement
            vel = (pos - t.last_pos) / cfg.dt
            x0 = state_from(pos, vel)
            P0 = np.zeros((7, 7))
            P0[:3, :3] = R[:3, :3]
            sv = np.sqrt(2.0 * R[0, 0] + 2.0 * R[1, 1]) / cfg.dt / max(np.linalg.norm(vel), 1.0)
            P0[3, 3], P0[4, 4] = min(sv, np.pi) ** 2 + 0.05, 0.2 ** 2
            P0[5, 5], P0[6, 6] = (np.sqrt(2 * R[0, 0]) / cfg.dt) ** 2 + 1.0, 0.05 ** 2
            if cfg.batched:
                self._adds.append((t, x0, P0))      # into the bank after the loop, all at once
                vel_now = velocity_of(x0)
            else:
                t.imm = make_imm(x0, P0, cfg.dt, self.origin)
                for f in t.imm.filters:
                    f.R = R
        else:
            for f in t.imm.filters:
                f.R = R
            t.imm.update(z)
        t.hits += 1
        t.streak += 1
        t.misses = 0
        t.associated, t.detection = True, int(k)
        t.last_pos = pos.copy()
        t.last_doppler = float(objects.doppler[k])
        if t.streak >= cfg.confirm_hits:
            t.confirmed = True
        if cfg.batched:                      # second detection (later ones: _update_steady)
            t.history.append(self._obs(objects, k, pos, vel_now, MU_PRIOR))
        else:
            t.history.append(self._obs(objects, k, pos, velocity_of(t.imm.x), float(t.imm.mu[1])))

    def state_of(self, t: Track) -> TrackState:
        if t.imm is not None:
            x, P, mu = t.imm.x, t.imm.P, np.asarray(t.imm.mu, float).copy()
        else:
            if t.pending_state is None:
                self._pending_states([t])
            x, P = t.pending_state
            mu = np.array([0.5, 0.5])
        return TrackState(id=t.id, position=x[:3].copy(), velocity=velocity_of(x), position_cov=P[:3, :3].copy(),
                          state=x.copy(), covariance=P.copy(), model_probs=mu,
                          confirmed=t.confirmed, age=t.age, hits=t.hits, misses=t.misses, score=t.score,
                          verified=t.verified, associated=t.associated, detection=t.detection)
