"""Multi-target tracking with the IMM-UKF (BSense paper, Section 3.4.1).

Notation (code name: paper symbol / meaning)::

    objects, detections   the frame's objects O_t kept by the object filter (Section 3.3)
    conf (c_s, c_v)       each object's spatial and velocity confidence (Eq. 13, 16)
    gate_m                association gate on the predicted position
    confirm_hits          K, consecutive associations that confirm a track
    bank                  every track's IMM-UKF (:class:`~.imm_ukf.BatchIMM`), keyed by track id
    history               the observations TrajFormer reads (Section 3.4.2), W of them at a time

Each frame: every track's IMM predicts; the associator pairs tracks with
detections; a track's second detection starts its filter, later ones update
it with [x, y, z, Doppler]; unassociated detections start tentative tracks;
the confirmation rule and the deleter judge each track. The roles are in
:mod:`.track_roles`, the per-track record in :mod:`.tracks`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sense_nodes.bs_sensor import FRAME_S

from .clustering import Objects
from .imm_ukf import ORIGIN, BatchIMM, measurement_covs, velocity_of
from .track_roles import GatedAssociator, MissDeleter, StreakConfirmation, TwoPointInitiator
from .tracks import OBS_FIELDS, MU_PRIOR, Track, TrackState, observations  # noqa: F401 - OBS_FIELDS: the tracker's API


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


class Tracker:
    """IMM-UKF tracker. ``step(objects, keep=None, confidence=None)`` -> list
    of :class:`TrackState` of every live track after this frame. Setting
    ``config`` (gate, confirmation, deletion) takes effect at the next frame;
    the tracks and their filters carry on."""

    def __init__(self, config: TrackerConfig | None = None):
        self._config = config or TrackerConfig()
        self.origin = np.asarray(self._config.origin, dtype=np.float64)
        self._roles()
        self.reset()

    @property
    def config(self) -> TrackerConfig:
        return self._config

    @config.setter
    def config(self, config: TrackerConfig) -> None:
        self._config = config
        self._roles()

    def _roles(self) -> None:
        cfg = self._config
        self.associator = GatedAssociator(cfg.gate_m)
        self.confirmation = StreakConfirmation(cfg.confirm_hits)
        self.deleter = MissDeleter(cfg.max_misses, cfg.max_misses_tentative)

    def reset(self) -> None:
        """Forget every track (a new sequence); ids start again at 1."""
        cfg = self._config
        self.tracks: list[Track] = []
        self.bank = BatchIMM(cfg.dt, self.origin)
        self.initiator = TwoPointInitiator(cfg.dt, cfg.history, self.origin)

    def step(self, objects: Objects, keep: np.ndarray | None = None,
             confidence: np.ndarray | None = None) -> list[TrackState]:
        """One frame: predict, associate, update, start, confirm, delete.
        ``confidence`` (M, 2): each object's C_s and C_v (Eq. 13, 16), kept
        in the tracks' observations for TrajFormer (None: zeros)."""
        conf = self._confidence(objects, confidence)
        idx = np.arange(len(objects)) if keep is None else np.flatnonzero(keep)
        self.bank.predict()
        for t in self.tracks:
            t.age += 1
        pairs = self.associator.associate(self._predicted(), objects.pos[idx])
        hit = [(t, int(idx[pairs[i]])) for i, t in enumerate(self.tracks) if i in pairs]
        steady = [(t, k) for t, k in hit if t.id in self.bank]
        self.initiator.start_filters([(t, k) for t, k in hit if t.id not in self.bank], objects, conf, self.bank)
        self._update(steady, objects, conf)
        for i, t in enumerate(self.tracks):
            if i in pairs:
                t.confirmed = self.confirmation.confirms(t)
            else:
                t.miss()
        self.tracks = [t for t in self.tracks if not self.deleter.deletes(t)]
        self.bank.keep([t.id for t in self.tracks if t.id in self.bank])
        used = np.zeros(idx.size, bool)
        used[np.fromiter(pairs.values(), np.int64, len(pairs))] = True
        self.tracks += self.initiator.tentative(objects, idx[~used], conf)
        return self.states()

    def _confidence(self, objects: Objects, confidence) -> np.ndarray:
        n_obj = len(objects)
        if confidence is None:
            return np.zeros((n_obj, 2))
        conf = np.asarray(confidence, dtype=np.float64).reshape(-1, 2)
        if conf.shape[0] != n_obj:
            raise ValueError(f"confidence has {conf.shape[0]} rows for {n_obj} objects")
        return conf

    def _predicted(self) -> np.ndarray:
        """(T, 3) predicted positions: the filter's, or the one detection's."""
        pred = np.array([t.last_pos for t in self.tracks]).reshape(-1, 3)
        filt = [i for i, t in enumerate(self.tracks) if t.id in self.bank]
        if filt:
            pred[filt] = self.bank.xc[self.bank.rows([self.tracks[i].id for i in filt]), :3]
        return pred

    def _update(self, pairs: list, objects: Objects, conf: np.ndarray) -> None:
        """The UKF updates of the tracks past their second detection, all at
        once: one bank update, the observations built as one array."""
        if not pairs:
            return
        ks = np.array([k for _, k in pairs], dtype=np.int64)
        keys = [t.id for t, _ in pairs]
        pos = objects.pos[ks].astype(np.float64)
        dop = objects.doppler[ks].astype(np.float64)
        rows = self.bank.update(keys, np.concatenate([pos, dop[:, None]], 1), measurement_covs(pos, self.origin))
        O = observations(objects, ks, conf, velocity_of(self.bank.xc[rows]), self.bank.mu[rows, 1:2])
        for (t, k), p, d, obs in zip(pairs, pos, dop, O):
            t.hit(k, p, d, obs)

    def states(self) -> list[TrackState]:
        """:class:`TrackState` of every live track, gathered in bulk: one
        array operation per field for all tracks (per-track small-array calls
        were most of the tracker's time with ~100 live tracks a frame).
        The arrays are fresh each call, so the states never alias the filters."""
        tracks = self.tracks
        n = len(tracks)
        if n == 0:
            return []
        x, P, mu = np.empty((n, 7)), np.empty((n, 7, 7)), np.full((n, 2), MU_PRIOR)
        filt = [i for i, t in enumerate(tracks) if t.id in self.bank]
        if filt:
            rows = self.bank.rows([tracks[i].id for i in filt])
            x[filt], P[filt], mu[filt] = self.bank.xc[rows], self.bank.Pc[rows], self.bank.mu[rows]
        pend = [i for i, t in enumerate(tracks) if t.id not in self.bank]
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
                                                          self._config.init_speed_sd ** 2, 0.05 ** 2)
        for t, xi, Pi in zip(new, x, P):
            t.pending_state = (xi, Pi)
