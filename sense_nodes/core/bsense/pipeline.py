"""The BSense chain per frame (BSense paper, Figure 4 and the ablation of
Section 4.2 / Figure 13).

points -> noise filter (3.2) -> clustering (3.3.1) -> object filter
(3.3.2-3.3.4) -> IMM-UKF tracker (3.4.1) -> TrajFormer (3.4.2).

Stages (Figure 13):

1. basic pipeline: DBSCAN + tracker, no noise filtering, no object filtering;
2. + noise fingerprint filtering;
3. + spatial-based confidence (objects kept when C_s >= tau_s);
4. + velocity-based confidence (kept when C_s >= tau_s or C_v >= tau_v);
5. + TrajFormer (full system): a confirmed track is output once TrajFormer
   has called its last W observations a true target (then it stays output,
   "until it is verified as a true target and then output").

Each frame's result carries per-stage wall times in milliseconds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .clustering import ClusterConfig, Objects, cluster
from .noise_model import NoiseModel
from .object_filter import ObjectFilter, ObjectFilterConfig, ObjectScores
from .tracker import Tracker, TrackerConfig, TrackState
from .verification import verify_tracks

STAGES = {1: "basic", 2: "noise_fingerprint", 3: "spatial_confidence", 4: "velocity_confidence",
          5: "trajformer"}
TIMED = ("noise_filter", "clustering", "object_filter", "tracker", "trajformer")


@dataclass(frozen=True)
class PipelineConfig:
    """Everything of the chain; ``stage`` picks the ablation step (1-5)."""
    stage: int = 5
    cluster: ClusterConfig = ClusterConfig()
    objects: ObjectFilterConfig = ObjectFilterConfig()
    tracker: TrackerConfig = TrackerConfig()
    window: int = 6                       # W (paper)
    classifier_threshold: float = 0.5     # P(true) to verify a track (our choice: argmax of the softmax)


@dataclass
class FrameResult:
    """One frame through the chain.

    * ``point_keep``: (N,) points kept by the noise filter;
    * ``objects`` / ``scores``: all clusters and their confidences;
    * ``object_keep``: (M,) objects passed to the tracker;
    * ``tracks``: every live track (:class:`TrackState`);
    * ``output``: the tracks the system reports (stage 5: confirmed and
      verified; stages 1-4: confirmed);
    * ``timing_ms``: per-stage and ``total`` wall time."""
    point_keep: np.ndarray
    objects: Objects
    scores: ObjectScores | None
    object_keep: np.ndarray
    tracks: list
    output: list
    timing_ms: dict = field(default_factory=dict)


class BSensePipeline:
    """The chain of Figure 4 with the ablation switches of Figure 13.

    ``BSensePipeline(config, noise_model=None, classifier=None)``; stages >= 2
    need a fitted :class:`NoiseModel`, stage 5 a TrajFormer (anything with
    ``predict_proba((B, W, N_FEATURES)) -> (B,)``). ``step(points, dt=None)`` runs one
    frame (structured BS_POINT_DTYPE array) and returns :class:`FrameResult`."""

    def __init__(self, config: PipelineConfig | None = None, noise_model: NoiseModel | None = None,
                 classifier=None):
        cfg = self.config = config or PipelineConfig()
        if cfg.stage not in STAGES:
            raise ValueError(f"stage must be one of {sorted(STAGES)}, got {cfg.stage}")
        if cfg.stage >= 2 and (noise_model is None or not noise_model.fitted):
            raise ValueError(f"stage {cfg.stage} ({STAGES[cfg.stage]}) needs a fitted noise model")
        if cfg.stage >= 5 and classifier is None:
            raise ValueError("stage 5 (trajformer) needs a TrajFormer classifier")
        self.noise_model = noise_model
        self.classifier = classifier
        oc = cfg.objects
        if cfg.stage <= 2:
            oc = _replace(oc, use_spatial=False, use_velocity=False)
        elif cfg.stage == 3:
            oc = _replace(oc, use_spatial=True, use_velocity=False)
        else:
            oc = _replace(oc, use_spatial=True, use_velocity=True)
        self.object_filter = ObjectFilter(oc)
        self.tracker = Tracker(cfg.tracker)

    def reset(self) -> None:
        """Forget all state (a new sequence)."""
        self.object_filter.reset()
        self.tracker.reset()

    def step(self, points: np.ndarray, dt: float | None = None) -> FrameResult:
        cfg = self.config
        dt = cfg.tracker.dt if dt is None else float(dt)
        tm = {}
        t0 = time.perf_counter()
        if cfg.stage >= 2:
            keep = self.noise_model.filter(points)
        else:
            keep = np.ones(points.shape[0], bool)
        t1 = time.perf_counter()
        objects = cluster(points, keep, cfg.cluster)
        t2 = time.perf_counter()
        scores = self.object_filter.step(objects, dt)
        okeep = scores.keep
        t3 = time.perf_counter()
        tracks = self.tracker.step(objects, okeep, np.stack([scores.c_s, scores.c_v], 1))
        t4 = time.perf_counter()
        if cfg.stage >= 5:
            self._classify()
            for s, t in zip(tracks, self.tracker.tracks):     # same order: refresh the verdicts only
                s.score, s.verified = t.score, t.verified
            output = [s for s in tracks if s.confirmed and s.verified]
        else:
            output = [s for s in tracks if s.confirmed]
        t5 = time.perf_counter()
        for k, (a, b) in zip(TIMED, ((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5))):
            tm[k] = (b - a) * 1e3
        tm["total"] = (t5 - t0) * 1e3
        return FrameResult(keep, objects, scores, okeep, tracks, output, tm)

    def _classify(self) -> None:
        """TrajFormer on the tracks (see :func:`verify_tracks`)."""
        verify_tracks(self.tracker.tracks, self.classifier, self.config.window,
                      self.config.classifier_threshold, self.tracker.origin)


def _replace(cfg, **kw):
    from dataclasses import replace
    return replace(cfg, **kw)
