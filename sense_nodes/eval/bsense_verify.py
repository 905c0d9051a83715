"""TrajFormer for one fold of the BSense evaluation: trained on the fold's
training cases only (Section 4.1), and its output policy (verification
threshold, rule, coasting; :class:`~sense_nodes.core.bsense.verification.OutputPolicy`)
chosen on out-of-fold scores of those same training cases (our choice, see
:func:`train_classifier`)."""
from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np

from sense_nodes.core.bsense.verification import OutputPolicy
from sense_nodes.eval import bsense_metrics as M
from sense_nodes.eval.bsense_cases import uav_truth


def train_classifier(train_cases, model_for, thresholds, epochs, seed: int = 0, quick: bool = False,
                     cache=None, clusters=None):
    """TrajFormer trained on sliding windows of one fold's training cases only
    (Section 4.1), each case run with its own day's fingerprints and the
    fold's object thresholds, and its output policy (:func:`fit_classifier`,
    which may run in another process: it takes arrays only).
    ``cache`` (a StageCache) keeps each case's windows and the trained
    networks; ``clusters(case)`` gives a case's CaseClusters to replay.
    Returns (classifier, policy, {policy label: smoothed F1 %})."""
    inputs = fold_inputs(train_cases, model_for, thresholds, cache, clusters)
    return fit_classifier(inputs, epochs, seed, quick, cache)[:3]


@dataclass
class CaseInputs:
    """What :func:`fit_classifier` needs of one training case: its name and
    trajectory type, its TrajFormer windows (X, y) at the fold's object
    thresholds and the :class:`ScoringRecord` of the same tracking run."""
    name: str
    traj_type: str
    X: np.ndarray
    y: np.ndarray
    record: "ScoringRecord"


def fold_inputs(train_cases, model_for, thresholds, cache=None, clusters=None) -> list:
    """:class:`CaseInputs` of each training case at ``thresholds``, in order."""
    out = []
    for c in train_cases:
        X, y, rec = case_windows(c, model_for, chain_config(thresholds), cache, clusters)
        out.append(CaseInputs(c.name, c.traj_type, X, y, rec))
    return out


def fit_classifier(inputs, epochs, seed: int = 0, quick: bool = False, cache=None):
    """TrajFormer trained on the windows of ``inputs`` (:class:`CaseInputs`
    of one fold's training cases), and its output policy.

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
    chosen on and lost recall). ``cache``: a StageCache for the networks.
    Returns (classifier, policy, {policy label: smoothed F1 %}, networks
    read from the cache, networks trained)."""
    counts = [0, 0]
    types = sorted({c.traj_type for c in inputs})
    k = min(OOF_SPLITS, len(types))
    records = []
    if k >= 2:
        group = {t: (i + seed) % k for i, t in enumerate(types)}
        for g in range(k):
            inner = [c for c in inputs if group[c.traj_type] != g]
            net = _fit_trajformer(inner, epochs, seed, quick, cache, counts)
            records += [c.record.tracks(net) for c in inputs if group[c.traj_type] == g]
    classifier = _fit_trajformer(inputs, epochs, seed, quick, cache, counts)
    if not records:
        return classifier, OutputPolicy(DEFAULT_VERIFY_THRESHOLD), {}, *counts
    policy, table = choose_policy(records)
    return classifier, policy, table, *counts


def fit_in_worker(inputs, epochs, seed: int, quick: bool, cache_enabled: bool, cache_root):
    """:func:`fit_classifier` in a worker process (one torch thread, as the
    evaluation's own process, so the networks are the same to the bit).
    Returns (network config, its weights as arrays, policy, table, networks
    read from the cache, networks trained, seconds): plain data, so no
    tensor crosses between the processes."""
    import dataclasses
    import time

    import torch

    from sense_nodes.eval.bsense_cache import StageCache

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    cache = StageCache(enabled=cache_enabled, root=cache_root)
    net, policy, table, read, trained = fit_classifier(inputs, epochs, seed, quick, cache)
    weights = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    return (dataclasses.asdict(net.config), weights, policy, table, read, trained, time.perf_counter() - t0)


def network_from(config: dict, weights: dict):
    """The TrajFormer :func:`fit_in_worker` described (eval mode)."""
    import torch

    from sense_nodes.core.bsense.trajformer import TrajFormer, TrajFormerConfig

    net = TrajFormer(TrajFormerConfig(**config))
    net.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    return net.eval()


def chain_config(thresholds):
    """The stage-4 PipelineConfig a fold's TrajFormer windows are made with."""
    from sense_nodes.core.bsense.pipeline import PipelineConfig
    from sense_nodes.eval.bsense_stage import object_config

    return PipelineConfig(stage=4, objects=object_config(thresholds))


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
WINDOW = 6              # W (paper), the windows scored and trained on


def _fit_trajformer(inputs, epochs, seed, quick, cache=None, counts=None):
    from sense_nodes.core.bsense.training import TrainConfig

    X, y = np.concatenate([c.X for c in inputs]), np.concatenate([c.y for c in inputs])
    if len(X) == 0 or y.min() == y.max():
        raise ValueError("the training cases gave no windows of both classes to train TrajFormer on")
    n_epochs = epochs if epochs is not None else (3 if quick else TrainConfig().epochs)
    config = TrainConfig(epochs=n_epochs, seed=seed, cases=tuple(c.name for c in inputs),
                         negative_share=NEGATIVE_SHARE, val_share=VAL_SHARE)
    return _trained(X, y, config, cache, counts)


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
    from sense_nodes.eval.bsense_cache import digest
    key = digest(cache.chain_code, case.source, model_for.key_of(model), repr(cfg))
    return cache.memoised("windows", key, compute, lambda v: {"X": v[0], "y": v[1], **v[2].encode()},
                          lambda z: (z["X"], z["y"], ScoringRecord.decode(z)))


@dataclass
class ScoringRecord:
    """One case's tracking run at a fold's thresholds, as stage 5 would see
    it before TrajFormer: per frame the true UAV positions (``gt``), the
    confirmed tracks (id, position, frames since the last detection, and
    whether this frame's window is scored: detected now, with W hits) and
    the features of the windows TrajFormer scores this frame (the confirmed,
    associated tracks with W observations, :func:`verify_tracks`), all
    concatenated over frames with offsets. :meth:`tracks` scores them with a
    network: the :class:`CaseTracks` that :func:`record_tracks` makes,
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


def _trained(X, y, config, cache=None, counts=None):
    """TrajFormer trained on (X, y) with ``config``, or the same network
    from ``cache`` (keyed by the windows, the settings and the code): read
    back through the suite's safe checkpoint loader. ``counts``: [read,
    trained] networks, added to."""
    from sense_nodes.core.bsense.training import train
    from sense_nodes.core.bsense.trajformer import load_checkpoint, save_checkpoint
    from sense_nodes.core.checkpoint import CheckpointError

    counts = counts if counts is not None else [0, 0]
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
            counts[0] += 1
            return model
        except CheckpointError as exc:
            print(f"{exc}: training the network again")
    cache.misses += 1
    counts[1] += 1
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
