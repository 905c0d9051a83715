"""TrajFormer for one fold of the BSense evaluation: trained on the fold's
training cases only (Section 4.1), and its verification threshold chosen on
held-out training trajectory types (our choice, see :func:`train_classifier`)."""
from __future__ import annotations

import numpy as np

from sense_nodes.eval import bsense_metrics as M
from sense_nodes.eval.bsense_cases import uav_truth


def train_classifier(train_cases, model_for, thresholds, epochs, seed: int = 0, quick: bool = False,
                     cache=None, clusters=None):
    """TrajFormer trained on sliding windows of one fold's training cases only
    (Section 4.1), each case run with its own day's fingerprints and the
    fold's object thresholds, and its verification threshold.

    The paper outputs a track once TrajFormer calls it true (softmax argmax)
    and never says at what probability. Every track is scored on each new
    window until verified, so one lucky window of a false track makes it a
    UAV for good; the threshold is therefore chosen per fold (our choice),
    on training data only: TrajFormer is trained on three quarters of the
    fold's trajectory types and the threshold that maximises F1 on the
    remaining quarter is kept (:func:`choose_verify_threshold`).
    ``cache`` (a StageCache) keeps each case's windows and the trained
    network; ``clusters(case)`` gives a case's CaseClusters to replay.
    Returns (classifier, threshold, {threshold: F1 % on the held-out types})."""
    types = sorted({c.traj_type for c in train_cases})
    held = set(types[seed % 4::4]) if len(types) >= 4 else set()
    inner = [c for c in train_cases if c.traj_type not in held] or list(train_cases)
    val = [c for c in train_cases if c.traj_type in held]
    classifier = _fit_trajformer(inner, model_for, thresholds, epochs, seed, quick, cache)
    if not val:
        return classifier, DEFAULT_VERIFY_THRESHOLD, {}
    thr, table = choose_verify_threshold(val, model_for, thresholds, classifier, clusters=clusters)
    return classifier, thr, table


DEFAULT_VERIFY_THRESHOLD = 0.5
VERIFY_GRID = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


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
    config = TrainConfig(epochs=n_epochs, seed=seed, cases=tuple(c.name for c in train_cases))
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


def choose_verify_threshold(cases, model_for, thresholds, classifier, grid=VERIFY_GRID, clusters=None):
    """The verification threshold of ``grid`` with the best stage-5 F1 on
    ``cases`` (ties: the higher threshold). One pass per case: a track is
    verified at the first window whose P(true) reaches the threshold, so
    its output at a threshold is decided by the running maximum of its
    scores, and tracking itself does not depend on verification.
    ``clusters(case)``: the case's CaseClusters to replay (None: computed)."""
    from sense_nodes.core.bsense.pipeline import BSensePipeline, PipelineConfig
    from sense_nodes.eval.bsense_stage import object_config, replaying

    counts = {t: M.DetectionCounts() for t in grid}
    cfg = PipelineConfig(stage=5, objects=object_config(thresholds),
                         classifier_threshold=2.0)    # never verify: every window is scored
    for case in cases:
        pipe = BSensePipeline(cfg, model_for(case), classifier)
        replaying(pipe, clusters(case) if clusters is not None else None)
        best: dict = {}
        for frame in case.frames:
            _, gt = uav_truth(frame)
            r = pipe.step(frame.points, case.dt)
            conf = [s for s in r.tracks if s.confirmed]
            for s in conf:
                if s.score is not None and np.isfinite(s.score):
                    best[s.id] = max(best.get(s.id, 0.0), float(s.score))
            for t in grid:
                out = np.array([s.position for s in conf if best.get(s.id, 0.0) >= t]).reshape(-1, 3)
                counts[t].add(out, gt)
    table = {t: (0.0 if np.isnan(c.f1_pct) else c.f1_pct) for t, c in counts.items()}
    thr = max(grid, key=lambda t: (table[t], t))
    return thr, table
