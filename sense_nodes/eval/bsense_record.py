"""One tracking run of a case at a fold's object thresholds, recorded once
for everything stage 5 of the BSense evaluation reads from it: TrajFormer's
sliding windows for training (Section 3.4.2) and, per frame, the confirmed
tracks and the windows TrajFormer scores (:class:`ScoringRecord`). Tracking
does not depend on verification, so any network and output policy replays
from the record without running the chain again."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sense_nodes.eval.bsense_cases import uav_truth
from sense_nodes.eval.bsense_policy import CaseTracks

WINDOW = 6              # W (paper), the windows scored and trained on


def chain_config(thresholds):
    """The stage-4 PipelineConfig a fold's TrajFormer windows are made with."""
    from sense_nodes.core.bsense.pipeline import PipelineConfig
    from sense_nodes.eval.bsense_stage import object_config

    return PipelineConfig(stage=4, objects=object_config(thresholds))


def case_windows(case, model_for, cfg, cache=None, clusters=None):
    """(X, y, :class:`ScoringRecord`): TrajFormer's sliding windows of one
    case run to stage 4 with ``cfg`` (its object thresholds) and the case's
    day model, and from the same run the tracks stage 5 would score
    (tracking does not depend on verification); windows are per case, so a
    fold's set is its cases' sets concatenated in order, and a fold with the
    same thresholds reuses them. ``clusters(case)``: the case's
    CaseClusters to replay (the same clusters, not computed again)."""
    from sense_nodes.core.bsense.training import windows_from_cases

    model = model_for(case)

    def compute():
        from sense_nodes.eval.bsense_stage import replaying

        recorder = _Recorder(cfg.tracker.origin)
        prepare = None if clusters is None else (lambda ci, pipe: replaying(pipe, clusters(case)))
        X, y, _ = windows_from_cases([(case.frames, model)], None, cfg, WINDOW, prepare=prepare,
                                     on_frame=recorder)
        return X, y, recorder.record()
    if cache is None:
        return compute()
    return cache.memoised("windows", windows_key(case, model_for, cfg, cache), compute, lambda v: {"X": v[0], "y": v[1], **v[2].encode()},
                          lambda z: (z["X"], z["y"], ScoringRecord.decode(z)))


def windows_key(case, model_for, cfg, cache) -> str:
    """The ``cache`` key (a StageCache's) of :func:`case_windows` of ``case`` with ``cfg``."""
    from sense_nodes.eval.bsense_cache import digest

    return digest(cache.chain_code, case.source, model_for.key_of(model_for(case)), repr(cfg))


@dataclass
class ScoringRecord:
    """One case's tracking run at a fold's thresholds, as stage 5 would see
    it before TrajFormer: per frame the true UAV positions (``gt``), the
    confirmed tracks (id, position, frames since the last detection, and
    whether this frame's window is scored: detected now, with W hits) and
    the features of the windows TrajFormer scores this frame (the confirmed,
    associated tracks with W observations,
    :func:`~sense_nodes.core.bsense.verification.verify_tracks`), all
    concatenated over frames with offsets. :meth:`tracks` scores them with a
    network: the :class:`CaseTracks` that :func:`~.bsense_policy.record_tracks` makes,
    without running the chain again."""
    gt: np.ndarray
    gt_off: np.ndarray
    ids: np.ndarray
    pos: np.ndarray
    misses: np.ndarray
    scored: np.ndarray
    conf_off: np.ndarray
    todo_ids: np.ndarray
    feats: np.ndarray
    todo_off: np.ndarray

    def encode(self) -> dict:
        return {f"rec_{k}": v for k, v in self.__dict__.items()}

    @classmethod
    def decode(cls, z) -> "ScoringRecord":
        return cls(**{k: z[f"rec_{k}"] for k in cls.__dataclass_fields__})

    def tracks(self, classifier) -> "CaseTracks":
        """The :class:`CaseTracks` of this run with ``classifier`` scoring
        each frame's windows as one batch (as the pipeline does)."""
        from sense_nodes.core.bsense.trajformer import features_of

        if features_of(classifier) != self.feats.shape[-1]:
            raise ValueError(f"the classifier reads {features_of(classifier)} features, the record holds "
                             f"{self.feats.shape[-1]}")
        score: dict = {}
        frames = []
        for f in range(len(self.gt_off) - 1):
            a, b = self.todo_off[f], self.todo_off[f + 1]
            if b > a:
                p = classifier.predict_proba(self.feats[a:b])
                for tid, s in zip(self.todo_ids[a:b].tolist(), p):
                    score[tid] = float(s)
            c0, c1 = self.conf_off[f], self.conf_off[f + 1]
            ids = self.ids[c0:c1]
            frames.append((self.gt[self.gt_off[f]:self.gt_off[f + 1]], ids, self.pos[c0:c1], self.misses[c0:c1],
                           np.array([score.get(t, np.nan) if k else np.nan
                                     for t, k in zip(ids.tolist(), self.scored[c0:c1])], float)))
        return CaseTracks(frames)


class _Recorder:
    """``on_frame`` of :func:`windows_from_cases` that keeps a :class:`ScoringRecord`."""

    def __init__(self, origin, window: int = WINDOW):
        self.origin, self.window = origin, window
        self.parts: dict = {k: [] for k in ("gt", "ids", "pos", "misses", "scored", "todo_ids", "feats")}
        self.sizes: dict = {"gt": [], "conf": [], "todo": []}

    def __call__(self, ci, frame, r, pipe) -> None:
        from sense_nodes.core.bsense.trajformer import N_FEATURES, history_windows

        W, P, S = self.window, self.parts, self.sizes
        _, gt = uav_truth(frame)
        conf = [s for s in r.tracks if s.confirmed]
        todo = [t for t in pipe.tracker.tracks if t.confirmed and t.associated and len(t.history) >= W]
        P["gt"].append(np.asarray(gt, float).reshape(-1, 3))
        P["ids"].append(np.array([s.id for s in conf], np.int64))
        P["pos"].append(np.array([s.position for s in conf], float).reshape(-1, 3))
        P["misses"].append(np.array([s.misses for s in conf], np.int64))
        P["scored"].append(np.array([s.misses == 0 and s.hits >= W for s in conf], bool))
        P["todo_ids"].append(np.array([t.id for t in todo], np.int64))
        P["feats"].append(history_windows(todo, W, self.origin, N_FEATURES) if todo
                          else np.zeros((0, W, N_FEATURES), np.float32))
        S["gt"].append(len(P["gt"][-1]))
        S["conf"].append(len(conf))
        S["todo"].append(len(todo))

    def record(self) -> ScoringRecord:
        from sense_nodes.core.bsense.trajformer import N_FEATURES

        def cat(name, shape, dtype):
            return np.concatenate(self.parts[name]) if self.parts[name] else np.zeros(shape, dtype)

        def off(name):
            return np.concatenate([[0], np.cumsum(self.sizes[name], dtype=np.int64)]).astype(np.int64)
        return ScoringRecord(cat("gt", (0, 3), float), off("gt"), cat("ids", 0, np.int64),
                             cat("pos", (0, 3), float), cat("misses", 0, np.int64), cat("scored", 0, bool),
                             off("conf"), cat("todo_ids", 0, np.int64),
                             cat("feats", (0, self.window, N_FEATURES), np.float32), off("todo"))
