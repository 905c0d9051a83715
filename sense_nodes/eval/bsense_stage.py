"""One library case through one ablation stage of the BSense chain (Figure
13), with the metrics of Section 4.1 accumulated frame by frame."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sense_nodes.eval import bsense_metrics as M
from sense_nodes.eval.bsense_cases import CaseData, uav_truth


@dataclass
class StageResult:
    det: M.DetectionCounts = field(default_factory=M.DetectionCounts)
    bands: M.RangeBands = field(default_factory=M.RangeBands)
    gospa_sum: float = 0.0
    hota_frames: list = field(default_factory=list)
    outputs: list = field(default_factory=list)       # per frame (N, 3) output positions (plots)
    timing_ms: dict = field(default_factory=dict)      # stage name -> list of ms


@dataclass
class Probes:
    """What a run measures besides the outputs, each only when given:
    ``points`` (point level, the noise filter's keep mask), ``raw_objects``
    and ``objects`` (every cluster / the kept ones), ``objects_and`` (the
    objects the "and" keep rule would keep: the confidences do not depend on
    the keep rule, so no second run), ``detections`` (the kept objects'
    positions with the truth, for a peer tracker), ``sources`` (false objects
    and outputs by noise source) and ``confidences`` (C_s, C_v of the
    objects matched to a UAV)."""
    points: M.PointCounts | None = None
    raw_objects: M.DetectionCounts | None = None
    objects: M.DetectionCounts | None = None
    objects_and: M.DetectionCounts | None = None
    detections: list | None = None
    sources: M.SourceTally | None = None
    confidences: list | None = None

    def add(self, frame, r, gt: np.ndarray, out: np.ndarray, thresholds) -> None:
        """One frame's result ``r`` (:class:`FrameResult`) against the truth ``gt``."""
        kept = r.objects.pos[r.object_keep]
        if self.points is not None:
            xyz = np.stack([frame.points[c] for c in ("x", "y", "z")], 1).astype(float)
            self.points.add(xyz, r.point_keep, gt)
        if self.raw_objects is not None:
            self.raw_objects.add(r.objects.pos, gt)
        if self.objects is not None:
            self.objects.add(kept, gt)
        if self.detections is not None:
            self.detections.append((kept, gt))
        if self.objects_and is not None:
            tau_s, tau_v = thresholds
            self.objects_and.add(r.objects.pos[(r.scores.c_s >= tau_s) & (r.scores.c_v >= tau_v)], gt)
        if self.sources is not None and getattr(frame, "labels", None) is not None:
            self._add_sources(frame, r, gt, out)
        if self.confidences is not None and len(r.objects) and gt.shape[0]:
            di, _, _ = M.match(r.objects.pos, gt)
            self.confidences.append(np.stack([r.scores.c_s[di], r.scores.c_v[di]], 1))

    def _add_sources(self, frame, r, gt, out) -> None:
        from sense_nodes.data.bs_sim.scenario import SOURCE_NAMES
        self.sources.add(frame.labels["source"], r.objects.point_cluster, r.objects.pos, r.object_keep, out,
                         np.array([s.detection if s.associated else -1 for s in r.output], dtype=int),
                         gt, SOURCE_NAMES)


def run_stage(case: CaseData, stage: int, model, thresholds, classifier, verify_threshold: float | None = None,
              probes: Probes | None = None, combine: str = "or") -> StageResult:
    """Run ``case`` through ablation ``stage`` with object thresholds
    ``thresholds`` (tau_s, tau_v), the ``combine`` keep rule (Section 3.3.4:
    "or") and, at stage 5, TrajFormer verifying at ``verify_threshold``
    (None: the pipeline's default); accumulate its metrics and ``probes``."""
    from sense_nodes.core.bsense.object_filter import ObjectFilterConfig
    from sense_nodes.core.bsense.pipeline import BSensePipeline, PipelineConfig

    tau_s, tau_v = thresholds
    extra = {} if verify_threshold is None else {"classifier_threshold": verify_threshold}
    cfg = PipelineConfig(stage=stage, objects=ObjectFilterConfig(tau_s=tau_s, tau_v=tau_v, combine=combine), **extra)
    pipe = BSensePipeline(cfg, noise_model=model if stage >= 2 else None,
                          classifier=classifier if stage >= 5 else None)
    res = StageResult()
    for frame in case.frames:
        ids, gt = uav_truth(frame)
        r = pipe.step(frame.points, case.dt)
        out = np.array([s.position for s in r.output]).reshape(-1, 3)
        out_ids = np.array([s.id for s in r.output], dtype=int)
        res.det.add(out, gt)
        res.bands.add(out, gt)
        res.gospa_sum += M.gospa(out, gt)["total"]
        res.hota_frames.append((ids, gt, out_ids, out))
        res.outputs.append(out)
        for k, v in r.timing_ms.items():
            res.timing_ms.setdefault(k, []).append(v)
        if probes is not None:
            probes.add(frame, r, gt, out, thresholds)
    return res


def uav_confidences(case: CaseData, model) -> np.ndarray:
    """(n, 2) spatial and velocity confidences of the objects matched to a UAV
    (Section 3.3.4's threshold source), objects unfiltered (thresholds 0)."""
    conf: list = []
    run_stage(case, 4, model, (0.0, 0.0), None, probes=Probes(confidences=conf))
    return np.concatenate(conf) if conf else np.zeros((0, 2))
