"""The three levels of the BSense chain (BSense paper, Figure 4) as the
objects both :class:`~.pipeline.BSensePipeline` (evaluation, benchmarks) and
the ROS nodes of the ``bsense`` deployment call, so the two run one chain:

* :class:`PointLevel` - the noise-fingerprint filter (Section 3.2), or every
  point passed through while there is no model;
* :class:`ObjectLevel` - clustering (3.3.1) and the object filter
  (3.3.2-3.3.4) with its object ids, the frame interval read from stamps
  (a stamp going backwards or a long gap starts a new sequence) and an
  optional cap on the points clustered per frame;
* :class:`TrajectoryLevel` - the IMM-UKF tracker (3.4.1) and TrajFormer
  verification (3.4.2), with an optional cap on the detections tracked.

The caps bound a node's time under overload (a frame of 10^6 points costs
accuracy, not seconds); the evaluation runs without them.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from sense_nodes.bs_sensor import FRAME_S

from .clustering import ClusterConfig, Objects, cluster
from .noise_model import NoiseModel
from .object_filter import ObjectFilter, ObjectFilterConfig, ObjectScores
from .tracker import Tracker, TrackerConfig, TrackState
from .verification import OutputPolicy, verify_tracks

MAX_STAMP_GAP_S = 60.0     # a longer gap between two frames' stamps starts a new sequence (our choice)


class PointLevel:
    """Section 3.2: ``keep(points)`` -> (N,) mask of the points that do not
    look like their cube's noise; all points while ``model`` is None."""

    def __init__(self, model: NoiseModel | None = None):
        self.model = model

    def keep(self, points: np.ndarray) -> np.ndarray:
        model = self.model
        return model.filter(points) if model is not None else np.ones(points.shape[0], bool)


class FrameClock:
    """Seconds between consecutive frames from their stamps. The first frame,
    and a frame whose stamp goes backwards or jumps past ``max_gap_s``
    (replay restarted, stamps missing), get the nominal ``frame_s`` and mark
    a new sequence."""

    def __init__(self, frame_s: float = FRAME_S, max_gap_s: float = MAX_STAMP_GAP_S):
        self.frame_s, self.max_gap_s = float(frame_s), float(max_gap_s)
        self.prev = None

    def tick(self, stamp_s: float) -> tuple[float, bool]:
        """(dt, new_sequence) of the frame stamped ``stamp_s``."""
        dt = stamp_s - self.prev if self.prev is not None else self.frame_s
        self.prev = stamp_s
        if not 0 < dt < self.max_gap_s:
            return self.frame_s, True
        return dt, False


class ObjectLevel:
    """Section 3.3: ``cluster(points, keep)`` -> :class:`Objects`, then
    ``score(objects, dt=None, stamp_s=None)`` -> :class:`ObjectScores` (with
    object ids). ``max_points`` > 0 thins a larger frame to that many points
    (uniform, seeded) before clustering; ``frames_thinned`` counts them."""

    def __init__(self, cluster_config: ClusterConfig | None = None,
                 filter_config: ObjectFilterConfig | None = None, max_points: int = 0,
                 frame_s: float = FRAME_S, seed: int = 0):
        self.cluster_config = cluster_config or ClusterConfig()
        self.filter = ObjectFilter(filter_config)
        self.max_points = int(max_points)
        self.clock = FrameClock(frame_s)
        self.frames_thinned = 0
        self._rng = np.random.default_rng(seed)

    def reset(self) -> None:
        """A new sequence: the object filter forgets the previous frames."""
        self.filter.reset()

    def thin(self, points: np.ndarray) -> np.ndarray:
        """At most ``max_points`` points (all when ``max_points`` is 0)."""
        if not self.max_points or len(points) <= self.max_points:
            return points
        self.frames_thinned += 1
        return points[np.sort(self._rng.choice(len(points), self.max_points, replace=False))]

    def cluster(self, points: np.ndarray, keep: np.ndarray | None = None) -> Objects:
        return cluster(points, keep, self.cluster_config)

    def score(self, objects: Objects, dt: float | None = None, stamp_s: float | None = None) -> ObjectScores:
        """Confidences and keep decisions; the interval is ``dt``, or read
        from ``stamp_s`` (a new sequence resets the filter), or the nominal
        frame interval."""
        if dt is None:
            dt = self.clock.frame_s
            if stamp_s is not None:
                dt, restart = self.clock.tick(stamp_s)
                if restart:
                    self.reset()
        return self.filter.step(objects, dt)


class TrajectoryLevel:
    """Section 3.4: ``track(objects, keep, confidence)`` -> every live
    :class:`TrackState`; ``verify(states)`` runs TrajFormer (when there is a
    classifier) and refreshes the states' verdicts; ``output(states)`` the
    tracks the system reports (confirmed, and with a classifier those its
    :class:`OutputPolicy` shows: verified, coasting no longer than the
    policy allows). ``threshold`` alone sets the policy's threshold
    (``policy`` gives all of it). ``max_detections`` > 0 keeps that many most confident
    detections of a larger frame (the association grows faster than
    linearly with detections); ``frames_thinned`` counts them."""

    def __init__(self, config: TrackerConfig | None = None, classifier=None, window: int = 6,
                 threshold: float = 0.5, max_detections: int = 0, policy: OutputPolicy | None = None):
        self.tracker = Tracker(config)
        self.classifier = classifier
        self.window = int(window)
        self.policy = policy if policy is not None else OutputPolicy(float(threshold))
        self.max_detections = int(max_detections)
        self.frames_thinned = 0

    @property
    def threshold(self) -> float:
        return self.policy.threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        self.policy = replace(self.policy, threshold=float(value))

    def reset(self) -> None:
        self.tracker.reset()

    def track(self, objects: Objects, keep: np.ndarray | None = None,
              confidence: np.ndarray | None = None) -> list[TrackState]:
        idx = np.arange(len(objects)) if keep is None else np.flatnonzero(keep)
        if self.max_detections and idx.size > self.max_detections:
            self.frames_thinned += 1
            keep = self._most_confident(idx, confidence, len(objects))
        return self.tracker.step(objects, keep, confidence)

    def _most_confident(self, idx: np.ndarray, confidence: np.ndarray | None, n: int) -> np.ndarray:
        """Keep mask of the ``max_detections`` detections among ``idx`` with
        the highest confidence (max of C_s and C_v)."""
        score = np.zeros(idx.size) if confidence is None else np.asarray(confidence)[idx].max(1)
        top = idx[np.sort(np.argsort(-score, kind="stable")[:self.max_detections])]
        keep = np.zeros(n, bool)
        keep[top] = True
        return keep

    def verify(self, states: list[TrackState]) -> None:
        """TrajFormer on the tracks (see :func:`verify_tracks`); the states
        (same order as the tracks) get the new scores and verdicts."""
        if self.classifier is None:
            return
        verify_tracks(self.tracker.tracks, self.classifier, self.window, self.policy, self.tracker.origin)
        for s, t in zip(states, self.tracker.tracks):
            s.score, s.verified = t.score, t.verified

    def is_output(self, state: TrackState) -> bool:
        """Whether the system reports this track this frame."""
        if self.classifier is None:
            return state.confirmed
        return state.confirmed and state.verified and self.policy.shows(state)

    def output(self, states: list[TrackState]) -> list[TrackState]:
        return [s for s in states if self.is_output(s)]

    def step(self, objects: Objects, keep: np.ndarray | None = None,
             confidence: np.ndarray | None = None) -> list[TrackState]:
        states = self.track(objects, keep, confidence)
        self.verify(states)
        return states
