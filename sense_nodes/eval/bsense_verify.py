"""TrajFormer for one fold of the BSense evaluation: trained on the fold's
training cases only (Section 4.1), and its output policy (verification
threshold, rule, coasting; :class:`~sense_nodes.core.bsense.verification.OutputPolicy`)
chosen on out-of-fold scores of those same training cases (our choice, see
:func:`train_classifier`)."""
from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np

from sense_nodes.core.bsense.verification import OutputPolicy
from sense_nodes.eval import bsense_metrics as M
from sense_nodes.eval.bsense_cases import uav_truth


def train_classifier(train_cases, model_for, thresholds, epochs, seed: int = 0, quick: bool = False,
                     cache=None, clusters=None):
    """TrajFormer trained on sliding windows of one fold's training cases only
    (Section 4.1), each case run with its own day's fingerprints and the
    fold's object thresholds, and its output policy.

    The paper outputs a track once TrajFormer calls it true (softmax argmax)
    and never says at what probability. Every track is scored on each new
    window until verified, so one lucky window of a false track makes it a
    UAV for good; the policy is therefore chosen per fold (our choice), on
    training data only, from out-of-fold scores: the fold's trajectory types
    are split into ``OOF_SPLITS`` groups, a network trained on the other
    groups scores each group's cases, and the policy (of ``VERIFY_GRID`` x
    ``RULE_GRID`` x ``COAST_GRID``) with the best F1 over all training cases,
    smoothed over neighbouring thresholds (:func:`choose_policy`), is kept.
    The classifier used on the test cases is then trained on every training
    case (the mean of the out-of-fold networks instead, which saves that
    training, scored less extremely than the single networks the policy was
    chosen on and lost recall).
    ``cache`` (a StageCache) keeps each case's windows and the trained
    networks; ``clusters(case)`` gives a case's CaseClusters to replay.
    Returns (classifier, policy, {policy label: smoothed F1 %})."""
    types = sorted({c.traj_type for c in train_cases})
    k = min(OOF_SPLITS, len(types))
    records = []
    if k >= 2:
        group = {t: (i + seed) % k for i, t in enumerate(types)}
        for g in range(k):
            inner = [c for c in train_cases if group[c.traj_type] != g]
            held = [c for c in train_cases if group[c.traj_type] == g]
            net = _fit_trajformer(inner, model_for, thresholds, epochs, seed, quick, cache)
            records += [record_tracks(c, model_for(c), thresholds, net, clusters(c) if clusters else None)
                        for c in held]
    classifier = _fit_trajformer(train_cases, model_for, thresholds, epochs, seed, quick, cache)
    if not records:
        return classifier, OutputPolicy(DEFAULT_VERIFY_THRESHOLD), {}
    policy, table = choose_policy(records)
    return classifier, policy, table


# training for time (our choices, measured by the evaluation's F1 and wall time):
# a third of the false windows (consecutive windows of a track share W - 1
# observations) and early stopping on a tenth of the windows held out
NEGATIVE_SHARE = 0.3
VAL_SHARE = 0.1
OOF_SPLITS = 2          # out-of-fold groups of the training types (our choice: each network sees half)
DEFAULT_VERIFY_THRESHOLD = 0.5
VERIFY_GRID = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
RULE_GRID = ("once", "hold")
COAST_GRID = (0, 1, 2, 3, None)
MEMORY_GRID = (3,)      # windows the "hold" rule averages (3 or 6 chose no better policies)


def _fit_trajformer(train_cases, model_for, thresholds, epochs, seed, quick, cache=None):
    from sense_nodes.core.bsense.pipeline import PipelineConfig
    from sense_nodes.core.bsense.training import TrainConfig
    from sense_nodes.eval.bsense_stage import object_config

    cfg = PipelineConfig(stage=4, objects=object_config(thresholds))
    parts = [case_windows(c, model_for, cfg, cache) for c in train_cases]
    X, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    if len(X) == 0 or y.min() == y.max():
        raise ValueError("the training cases gave no windows of both classes to train TrajFormer on")
    n_epochs = epochs if epochs is not None else (3 if quick else TrainConfig().epochs)
    config = TrainConfig(epochs=n_epochs, seed=seed, cases=tuple(c.name for c in train_cases),
                         negative_share=NEGATIVE_SHARE, val_share=VAL_SHARE)
    return _trained(X, y, config, cache)


def case_windows(case, model_for, cfg, cache=None) -> tuple[np.ndarray, np.ndarray]:
    """(X, y): TrajFormer's sliding windows of one case run to stage 4 with
    ``cfg`` (its object thresholds) and the case's day model; windows are
    per case, so a fold's set is its cases' sets concatenated in order, and
    a fold with the same thresholds reuses them."""
    from sense_nodes.core.bsense.training import windows_from_cases

    model = model_for(case)

    def compute():
        X, y, _ = windows_from_cases([(case.frames, model)], None, cfg)
        return X, y
    if cache is None:
        return compute()
    from sense_nodes.eval.bsense_cache import digest
    key = digest(cache.chain_code, case.source, model_for.key_of(model), repr(cfg))
    return cache.memoised("windows", key, compute, lambda v: {"X": v[0], "y": v[1]}, lambda z: (z["X"], z["y"]))


def _trained(X, y, config, cache=None):
    """TrajFormer trained on (X, y) with ``config``, or the same network
    from ``cache`` (keyed by the windows, the settings and the code): read
    back through the suite's safe checkpoint loader."""
    from sense_nodes.core.bsense.training import train
    from sense_nodes.core.bsense.trajformer import load_checkpoint, save_checkpoint
    from sense_nodes.core.checkpoint import CheckpointError

    if cache is None or not cache.enabled:
        return train(config, None, samples=(X, y), progress=False)[0]
    from sense_nodes.eval.bsense_cache import digest
    import torch
    device = ("cuda" if torch.cuda.is_available() else "cpu") if config.device == "auto" else config.device
    # the weights depend on the device and torch's kernels too: a network trained elsewhere is not reused
    path = cache.path("classifier", digest(cache.chain_code, X, y, repr(config), device, torch.__version__), ".pt")
    if path.exists():
        try:
            model = load_checkpoint(path)
            cache.hits += 1
            return model
        except CheckpointError as exc:
            print(f"{exc}: training the network again")
    cache.misses += 1
    model = train(config, None, samples=(X, y), progress=False)[0]
    save_checkpoint(model, path)
    return model


@dataclass
class CaseTracks:
    """One case's confirmed tracks, frame by frame, scored by TrajFormer at
    every window (nothing verified, so every window is scored): per frame the
    true UAV positions and, per confirmed track, its id, position, frames
    since its last detection and P(true) of this frame's window (NaN when
    it has none: coasting, or fewer than W observations). Tracking does not
    depend on verification, so any output policy replays from these."""
    frames: list

    def outputs(self, policy: OutputPolicy):
        """Per frame (truth, output positions) under ``policy``."""
        recent: dict = collections.defaultdict(lambda: collections.deque(maxlen=policy.memory))
        verified: set = set()
        for gt, ids, pos, misses, score in self.frames:
            show = np.zeros(len(ids), bool)
            for i, (tid, s) in enumerate(zip(ids, score)):
                if np.isfinite(s):
                    if policy.rule == "once":
                        if s >= policy.threshold:
                            verified.add(tid)
                    else:
                        recent[tid].append(s)
                        if np.mean(recent[tid]) >= policy.threshold:
                            verified.add(tid)
                        else:
                            verified.discard(tid)
                show[i] = tid in verified and (policy.coast_frames is None or misses[i] <= policy.coast_frames)
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
    for rule, memory, coast in variants:
        f1 = []
        for t in grid:
            c = policy_counts(records, OutputPolicy(t, rule, memory, coast))
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
