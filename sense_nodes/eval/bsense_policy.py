"""The full system's output policy in the BSense evaluation: which
confirmed tracks are output (verification threshold, rule, coasting limit;
:class:`~sense_nodes.core.bsense.verification.OutputPolicy`), replayed on a
case's recorded tracks (:class:`CaseTracks`) and chosen on out-of-fold scores
of a fold's training cases (:func:`choose_policy`)."""
from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np

from sense_nodes.core.bsense.verification import OutputPolicy
from sense_nodes.eval import bsense_metrics as M
from sense_nodes.eval.bsense_cases import uav_truth

DEFAULT_VERIFY_THRESHOLD = 0.5
VERIFY_GRID = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
RULE_GRID = ("once", "hold")
COAST_GRID = (0, 1, 2, 3, None)
MEMORY_GRID = (3,)      # windows the "hold" rule averages (3 or 6 chose no better policies)


@dataclass
class CaseTracks:
    """One case's confirmed tracks, frame by frame, scored by TrajFormer at
    every window (nothing verified, so every window is scored): per frame the
    true UAV positions and, per confirmed track, its id, position, frames
    since its last detection and P(true) of this frame's window (NaN when
    it has none: coasting, or fewer than W observations). Tracking does not
    depend on verification, so any output policy replays from these."""
    frames: list
    _verdicts: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def verdict_values(self, rule: str, memory: int) -> list:
        """Per frame, per confirmed track, the value a threshold verifies
        (value >= threshold; -inf before its first scored window): under
        "once" the highest score so far (verified once one window reached
        the threshold), under "hold" the mean of its latest ``memory``
        scores at its last scored window. They do not depend on the
        threshold, so the policy choice computes them once per rule, not
        once per threshold."""
        key = (rule, memory if rule == "hold" else 0)
        if key not in self._verdicts:
            recent: dict = collections.defaultdict(lambda: collections.deque(maxlen=memory))
            value: dict = {}
            out = []
            for _, ids, _, _, score in self.frames:
                v = np.full(len(ids), -np.inf)
                for i, (tid, s) in enumerate(zip(ids, score)):
                    if np.isfinite(s):
                        if rule == "once":
                            value[tid] = max(value.get(tid, -np.inf), s)
                        else:
                            recent[tid].append(s)
                            value[tid] = np.mean(recent[tid])
                    v[i] = value.get(tid, -np.inf)
                out.append(v)
            self._verdicts[key] = out
        return self._verdicts[key]

    def outputs(self, policy: OutputPolicy):
        """Per frame (truth, output positions) under ``policy``."""
        values = self.verdict_values(policy.rule, policy.memory)
        for (gt, _, pos, misses, _), v in zip(self.frames, values):
            show = v >= policy.threshold
            if policy.coast_frames is not None:
                show &= misses <= policy.coast_frames
            yield gt, pos[show]


def record_tracks(case, model, thresholds, classifier, clusters=None, window: int = 6) -> CaseTracks:
    """:class:`CaseTracks` of ``case`` through the full system (stage 5) with
    ``classifier``; ``clusters``: the case's CaseClusters to replay."""
    from sense_nodes.core.bsense.pipeline import BSensePipeline, PipelineConfig
    from sense_nodes.eval.bsense_stage import object_config, replaying

    cfg = PipelineConfig(stage=5, objects=object_config(thresholds),
                         classifier_threshold=2.0, window=window)    # never verify: every window is scored
    pipe = BSensePipeline(cfg, model, classifier)
    replaying(pipe, clusters)
    frames = []
    for frame in case.frames:
        _, gt = uav_truth(frame)
        conf = [s for s in pipe.step(frame.points, case.dt).tracks if s.confirmed]
        scored = [s.misses == 0 and s.hits >= window for s in conf]
        frames.append((gt, np.array([s.id for s in conf], int), np.array([s.position for s in conf]).reshape(-1, 3),
                       np.array([s.misses for s in conf], int),
                       np.array([s.score if k else np.nan for s, k in zip(conf, scored)], float)))
    return CaseTracks(frames)


def policy_counts(records, policy: OutputPolicy) -> M.DetectionCounts:
    """Detection counts of ``policy`` over the recorded cases."""
    c = M.DetectionCounts()
    for rec in records:
        for gt, out in rec.outputs(policy):
            c.add(out, gt)
    return c


class PolicyCounter:
    """TP/FP/FN of output policies over recorded cases (CaseTracks), the
    same as :func:`policy_counts` gives, for the many policies of the
    policy choice: a frame's shown tracks are matched once per distinct
    set (most policies show the same tracks in most frames), and the
    frames without a shown track or without a UAV need no matching."""

    def __init__(self, records):
        self.records = records
        self.memo: dict = {}
        self.frames = []
        for rec in records:
            sizes = [len(ids) for _, ids, _, _, _ in rec.frames]
            off = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)
            misses = np.concatenate([m for _, _, _, m, _ in rec.frames]) if sizes else np.zeros(0, int)
            n_gt = np.array([len(gt) for gt, _, _, _, _ in rec.frames], np.int64)
            self.frames.append((off, misses, n_gt))

    def counts(self, policy: OutputPolicy) -> M.DetectionCounts:
        """Counts of ``policy`` (tp, fp, fn and frames; no localisation error)."""
        tp = fp = fn = frames = 0
        for ri, (rec, (off, misses, n_gt)) in enumerate(zip(self.records, self.frames)):
            values = rec.verdict_values(policy.rule, policy.memory)
            show = np.concatenate(values) >= policy.threshold if len(values) else np.zeros(0, bool)
            if policy.coast_frames is not None:
                show &= misses <= policy.coast_frames
            shown = np.diff(np.concatenate([[0], np.cumsum(show, dtype=np.int64)])[off])
            for f in np.flatnonzero((shown > 0) & (n_gt > 0)).tolist():
                mask = show[off[f]:off[f + 1]]
                key = (ri, f, mask.tobytes())
                if key not in self.memo:
                    gt, _, pos, _, _ = rec.frames[f]
                    self.memo[key] = M.match(pos[mask], gt)[2].size
                tp += self.memo[key]
            fp += int(shown.sum())
            fn += int(n_gt.sum())
            frames += len(rec.frames)
        return M.DetectionCounts(tp=tp, fp=fp - tp, fn=fn - tp, frames=frames)


def policy_label(p: OutputPolicy) -> str:
    rule = p.rule if p.rule == "once" else f"{p.rule}{p.memory}"
    return f"{rule}@{p.threshold:g}/coast{'-' if p.coast_frames is None else p.coast_frames}"


def choose_policy(records, grid=VERIFY_GRID, rules=RULE_GRID, coasts=COAST_GRID, memories=MEMORY_GRID):
    """The output policy with the best F1 over ``records`` (CaseTracks of
    training cases scored out of fold). F1 at each threshold is smoothed as
    the mean over it and its neighbours in ``grid`` (a single threshold's F1
    is noisy on a few dozen cases, and the test cases are not those cases);
    ties go to the higher threshold, then to the shorter coasting.
    Returns (policy, {policy label: smoothed F1 %})."""
    table, best, best_key = {}, None, None
    variants = [(rule, m, coast) for rule in rules for m in (memories if rule == "hold" else memories[:1])
                for coast in coasts]
    counter = PolicyCounter(records)
    for rule, memory, coast in variants:
        f1 = []
        for t in grid:
            c = counter.counts(OutputPolicy(t, rule, memory, coast))
            f1.append(0.0 if np.isnan(c.f1_pct) else c.f1_pct)
        smooth = [float(np.mean(f1[max(0, i - 1):i + 2])) for i in range(len(grid))]
        for i, t in enumerate(grid):
            p = OutputPolicy(t, rule, memory, coast)
            table[policy_label(p)] = smooth[i]
            key = (smooth[i], t, -(99 if coast is None else coast), -memory)
            if best_key is None or key > best_key:
                best, best_key = p, key
    return best, table


def choose_verify_threshold(cases, model_for, thresholds, classifier, grid=VERIFY_GRID, clusters=None):
    """The paper's rule alone: the verification threshold of ``grid`` with
    the best (unsmoothed) stage-5 F1 on ``cases`` (ties: the higher
    threshold), coasting tracks output while they live.
    Returns (threshold, {threshold: F1 %})."""
    records = [record_tracks(c, model_for(c), thresholds, classifier, clusters(c) if clusters else None)
               for c in cases]
    table = {}
    for t in grid:
        c = policy_counts(records, OutputPolicy(t))
        table[t] = 0.0 if np.isnan(c.f1_pct) else c.f1_pct
    thr = max(grid, key=lambda t: (table[t], t))
    return thr, table
