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
    and outputs by noise source) and ``confidences`` (C_s, C_v, run and
    UAV flag of every object, :func:`object_confidences`)."""
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
            cfg = object_config(thresholds)
            tau_s, tau_v = cfg.tau_s, cfg.tau_v
            self.objects_and.add(r.objects.pos[(r.scores.c_s >= tau_s) & (r.scores.c_v >= tau_v)], gt)
        if self.sources is not None and getattr(frame, "labels", None) is not None:
            self._add_sources(frame, r, gt, out)
        if self.confidences is not None and len(r.objects):
            self.confidences.append(object_confidences(r.objects, r.scores, gt))

    def _add_sources(self, frame, r, gt, out) -> None:
        from sense_nodes.data.bs_sim.scenario import SOURCE_NAMES
        self.sources.add(frame.labels["source"], r.objects.point_cluster, r.objects.pos, r.object_keep, out,
                         np.array([s.detection if s.associated else -1 for s in r.output], dtype=int),
                         gt, SOURCE_NAMES)


@dataclass
class CaseClusters:
    """One case's point and cluster levels, frame by frame: the noise
    filter's keep masks (Section 3.2), the clusters of the kept points
    (Section 3.3.1) and the milliseconds each took when computed. They
    depend on the frames and the noise model only, so every stage >= 2 (and
    stage 1, without a model) of every fold replays them."""
    keep: list
    objects: list
    noise_filter_ms: np.ndarray
    clustering_ms: np.ndarray

    def encode(self) -> dict:
        """Plain arrays (concatenated over frames, with offsets) for an ``.npz``."""
        o = self.objects
        return {"keep": _cat([k for k in self.keep], bool), "point_off": _offsets([k.size for k in self.keep]),
                "obj_off": _offsets([len(x) for x in o]), "pos": _cat([x.pos for x in o], float, (0, 3)),
                "doppler": _cat([x.doppler for x in o], float), "features": _cat([x.features for x in o], float,
                                                                                   (0, o[0].features.shape[1] if o else 0)),
                "n_points": _cat([x.n_points for x in o], int), "point_cluster": _cat([x.point_cluster for x in o], int),
                "noise_filter_ms": self.noise_filter_ms, "clustering_ms": self.clustering_ms}

    @classmethod
    def decode(cls, z: dict) -> "CaseClusters":
        from sense_nodes.core.bsense.clustering import Objects

        po, oo = z["point_off"], z["obj_off"]
        keep = [z["keep"][a:b] for a, b in zip(po, po[1:])]
        objects = [Objects(z["pos"][a:b], z["doppler"][a:b], z["features"][a:b], z["n_points"][a:b],
                           z["point_cluster"][c:d]) for a, b, c, d in zip(oo, oo[1:], po, po[1:])]
        return cls(keep, objects, z["noise_filter_ms"], z["clustering_ms"])


def _offsets(sizes) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)


def _cat(arrays, dtype, empty_shape=(0,)) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(empty_shape, dtype)


def case_clusters(case: CaseData, model, cache=None, model_key: str = "none") -> CaseClusters:
    """:class:`CaseClusters` of ``case`` with noise ``model`` (None: every
    point kept, stage 1), from ``cache`` (a StageCache) when it has them."""
    if cache is None:
        return _compute_clusters(case, model)
    key = clusters_key(case, model_key if model is not None else "none", cache)
    return cache.memoised("clusters", key, lambda: _compute_clusters(case, model), CaseClusters.encode,
                          CaseClusters.decode)


def clusters_key(case: CaseData, model_key: str, cache) -> str:
    """The ``cache`` key (a StageCache's) of ``case``'s clusters with the
    noise model keyed ``model_key``; one place, so that clusters computed
    in a worker are kept under the key this process looks up."""
    from sense_nodes.eval.bsense_cache import digest
    return digest(cache.point_code, case.source, model_key)


def _compute_clusters(case: CaseData, model) -> CaseClusters:
    import time

    from sense_nodes.core.bsense.pipeline import BSensePipeline, PipelineConfig

    pipe = BSensePipeline(PipelineConfig(stage=2 if model is not None else 1), noise_model=model)
    keep, objects, t_nf, t_cl = [], [], [], []
    for frame in case.frames:
        t0 = time.perf_counter()
        k = pipe.points.keep(frame.points)
        t1 = time.perf_counter()
        objects.append(pipe.objects.cluster(frame.points, k))
        t2 = time.perf_counter()
        keep.append(np.asarray(k, bool))
        t_nf.append((t1 - t0) * 1e3)
        t_cl.append((t2 - t1) * 1e3)
    return CaseClusters(keep, objects, np.asarray(t_nf, float), np.asarray(t_cl, float))


class Replay:
    """Stands in for a pipeline's point level and its object level's
    clustering: frame k's keep mask and clusters come from
    :class:`CaseClusters`; the object filter (``score``) is the pipeline's own."""

    def __init__(self, clusters: CaseClusters, object_level):
        self.clusters, self.level, self.k = clusters, object_level, -1

    @property
    def filter(self):
        return self.level.filter

    def keep(self, points):
        self.k += 1
        return self.clusters.keep[self.k]

    def cluster(self, points, keep=None):
        return self.clusters.objects[self.k]

    def score(self, objects, dt=None, stamp_s=None):
        return self.level.score(objects, dt, stamp_s)

    def reset(self):
        self.level.reset()

    def timing(self, timing_ms: dict) -> None:
        """The replayed frame's measured noise-filter and clustering times in ``timing_ms``."""
        timing_ms["noise_filter"] = float(self.clusters.noise_filter_ms[self.k])
        timing_ms["clustering"] = float(self.clusters.clustering_ms[self.k])
        timing_ms["total"] = sum(v for k, v in timing_ms.items() if k != "total")


def replaying(pipe, clusters: CaseClusters | None) -> Replay | None:
    """Make ``pipe`` (a BSensePipeline) replay ``clusters``; None leaves it computing."""
    if clusters is None:
        return None
    replay = Replay(clusters, pipe.objects)
    pipe.points = pipe.objects = replay
    return replay


def run_stage(case: CaseData, stage: int, model, thresholds, classifier, policy=None,
              probes: Probes | None = None, combine: str = "or", clusters: CaseClusters | None = None,
              stage4: tuple | None = None) -> StageResult:
    """Run ``case`` through ablation ``stage`` with object thresholds
    ``thresholds`` (tau_s, tau_v, or a KeepRule, :func:`object_config`),
    the ``combine`` keep rule (Section 3.3.4: "or"; a KeepRule's own wins)
    and, at stage 5, TrajFormer's output ``policy`` (an
    :class:`~sense_nodes.core.bsense.verification.OutputPolicy`; None: the
    pipeline's default); accumulate its metrics and ``probes``.
    ``clusters`` (:func:`case_clusters` with this stage's model) replays the
    point and cluster levels instead of computing them again.
    ``stage4`` = (StageResult, Probes or None), at stage 5: stage 4's
    result from the same run. Stage 4 has stage 5's object filter and
    tracker, and tracking does not depend on verification, so stage 4's
    output is this run's confirmed tracks (its times: this run's, less
    TrajFormer's)."""
    from sense_nodes.core.bsense.pipeline import BSensePipeline, PipelineConfig

    extra = {} if policy is None else {"classifier_threshold": policy.threshold, "verify_rule": policy.rule,
                                       "verify_memory": policy.memory, "coast_frames": policy.coast_frames}
    cfg = PipelineConfig(stage=stage, objects=object_config(thresholds, combine), **extra)
    pipe = BSensePipeline(cfg, noise_model=model if stage >= 2 else None,
                          classifier=classifier if stage >= 5 else None)
    replay = replaying(pipe, clusters)
    res = StageResult()
    for frame in case.frames:
        ids, gt = uav_truth(frame)
        r = pipe.step(frame.points, case.dt)
        if replay is not None:
            replay.timing(r.timing_ms)
        _add_frame(res, probes, frame, r, ids, gt, r.output, r.timing_ms, thresholds)
        if stage4 is not None:
            tm = {k: v for k, v in r.timing_ms.items() if k != "trajformer"}
            tm["total"] -= r.timing_ms.get("trajformer", 0.0)
            _add_frame(stage4[0], stage4[1], frame, r, ids, gt, [s for s in r.tracks if s.confirmed], tm,
                       thresholds)
    return res


def _add_frame(res: StageResult, probes, frame, r, ids, gt, output, timing_ms: dict, thresholds) -> None:
    """One frame's ``output`` (TrackStates) and result ``r`` into ``res`` and ``probes``."""
    out = np.array([s.position for s in output]).reshape(-1, 3)
    out_ids = np.array([s.id for s in output], dtype=int)
    res.det.add(out, gt)
    res.bands.add(out, gt)
    res.gospa_sum += M.gospa(out, gt)["total"]
    res.hota_frames.append((ids, gt, out_ids, out))
    res.outputs.append(out)
    for k, v in timing_ms.items():
        res.timing_ms.setdefault(k, []).append(v)
    if probes is not None:
        probes.add(frame, r, gt, out, thresholds)


def object_config(thresholds, combine: str = "or"):
    """The ObjectFilterConfig of ``thresholds``: a (tau_s, tau_v) pair with
    the keep rule ``combine``, or a :class:`KeepRule` with its own."""
    from sense_nodes.core.bsense.object_filter import KeepRule, ObjectFilterConfig

    if isinstance(thresholds, KeepRule):
        return ObjectFilterConfig(tau_s=thresholds.tau_s, tau_v=thresholds.tau_v, combine=thresholds.combine)
    tau_s, tau_v = thresholds
    return ObjectFilterConfig(tau_s=tau_s, tau_v=tau_v, combine=combine)


def object_confidences(objects, scores, gt: np.ndarray) -> np.ndarray:
    """(n, 4) C_s, C_v, run (:attr:`ObjectScores.run`) and 1 for the objects
    matched to a UAV of ``gt`` (Section 4.1's matching), 0 for the rest."""
    uav = np.zeros(len(objects))
    if len(objects) and gt.shape[0]:
        di, _, _ = M.match(objects.pos, gt)
        uav[di] = 1.0
    return np.stack([scores.c_s, scores.c_v, scores.run, uav], 1)


def uav_confidences(case: CaseData, model, clusters: CaseClusters | None = None) -> np.ndarray:
    """(n, 4) confidences of every object (:func:`object_confidences`), the
    threshold source of Section 3.3.4 (the UAV rows) and of the keep-rule
    choice (:func:`~sense_nodes.core.bsense.object_filter.choose_keep_rule`),
    objects unfiltered (thresholds 0). With ``clusters`` only the object
    filter runs: the confidences do not depend on the tracker downstream."""
    conf: list = []
    if clusters is None:
        run_stage(case, 4, model, (0.0, 0.0), None, probes=Probes(confidences=conf))
    else:
        _object_confidences(case, clusters, conf)
    return np.concatenate(conf) if conf else np.zeros((0, 4))


def _object_confidences(case: CaseData, clusters: CaseClusters, conf: list) -> None:
    """What a stage-4 run at thresholds 0 adds to ``Probes(confidences=conf)``."""
    from sense_nodes.core.bsense.object_filter import ObjectFilterConfig
    from sense_nodes.core.bsense.stages import ObjectLevel

    level = ObjectLevel(filter_config=ObjectFilterConfig(tau_s=0.0, tau_v=0.0))
    for frame, objects in zip(case.frames, clusters.objects):
        _, gt = uav_truth(frame)
        scores = level.score(objects, case.dt)
        if len(objects):
            conf.append(object_confidences(objects, scores, gt))


class CaseLevels:
    """``levels(case, with_model=True, site_kind="A")``: the case's
    :class:`CaseClusters` with its day's noise model (``model_for``, a
    DayModels) or, ``with_model=False``, with none (stage 1); and
    ``levels.confidences(case)``: :func:`uav_confidences` from them. Both
    kept in ``cache`` (a StageCache)."""

    def __init__(self, model_for, cache):
        self.model_for, self.cache = model_for, cache

    def __call__(self, case: CaseData, with_model: bool = True, site_kind: str = "A") -> CaseClusters:
        if not with_model:
            return case_clusters(case, None, self.cache)
        model = self.model_for(case, site_kind)
        return case_clusters(case, model, self.cache, self.model_for.key_of(model))

    def confidences(self, case: CaseData) -> np.ndarray:
        model = self.model_for(case)
        return self.cache.memoised("confidences", self._keys(case)[1],
                                   lambda: uav_confidences(case, model, self(case)),
                                   lambda v: {"conf": v}, lambda z: z["conf"])

    def hold(self, case: CaseData, clusters: CaseClusters, confidences: np.ndarray) -> None:
        """Keep ``case``'s clusters with its day's model and its confidences,
        computed elsewhere (a worker process), in the cache's memory."""
        clusters_key, confidences_key = self._keys(case)
        self.cache.memo[("clusters", clusters_key)] = clusters
        self.cache.memo[("confidences", confidences_key)] = confidences

    def _keys(self, case: CaseData) -> tuple:
        """The cache keys of ``case``'s clusters (with its day's model) and confidences."""
        from sense_nodes.eval.bsense_cache import digest

        model_key = self.model_for.key_of(self.model_for(case))
        return clusters_key(case, model_key, self.cache), digest(self.cache.chain_code, case.source, model_key)
