"""TrajFormer for one fold of the BSense evaluation: trained on the fold's
training cases only (Section 4.1), and its output policy (verification
threshold, rule, coasting; :class:`~sense_nodes.core.bsense.verification.OutputPolicy`)
chosen on out-of-fold scores of those same training cases (our choice, see
:func:`train_classifier`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sense_nodes.core.bsense.verification import OutputPolicy
from sense_nodes.eval.bsense_policy import DEFAULT_VERIFY_THRESHOLD, choose_policy
from sense_nodes.eval.bsense_record import ScoringRecord, case_windows, chain_config

# training for time (our choices, measured by the evaluation's F1 and wall time):
# a third of the false windows (consecutive windows of a track share W - 1
# observations) and early stopping on a tenth of the windows held out
NEGATIVE_SHARE = 0.3
VAL_SHARE = 0.1
OOF_SPLITS = 2          # out-of-fold groups of the training types (our choice: each network sees half)
# what verifies a track: the paper's TrajFormer, or boosted trees on the same
# windows (core/bsense/boosted.py), compared on the same folds
VERIFIERS = ("trajformer", "boosted")


def train_classifier(train_cases, model_for, thresholds, epochs, seed: int = 0, quick: bool = False,
                     cache=None, clusters=None, verifier: str = "trajformer"):
    """TrajFormer trained on sliding windows of one fold's training cases only
    (Section 4.1), each case run with its own day's fingerprints and the
    fold's object thresholds, and its output policy (:func:`fit_classifier`,
    which may run in another process: it takes arrays only).
    ``cache`` (a StageCache) keeps each case's windows and the trained
    networks; ``clusters(case)`` gives a case's CaseClusters to replay.
    Returns (classifier, policy, {policy label: smoothed F1 %})."""
    inputs = fold_inputs(train_cases, model_for, thresholds, cache, clusters)
    return fit_classifier(inputs, epochs, seed, quick, cache, verifier)[:3]


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


def fit_classifier(inputs, epochs, seed: int = 0, quick: bool = False, cache=None, verifier: str = "trajformer"):
    """TrajFormer (or the ``verifier`` of ``VERIFIERS``) trained on the
    windows of ``inputs`` (:class:`CaseInputs` of one fold's training
    cases), and its output policy.

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
            net = _fit_network(inner, epochs, seed, quick, cache, counts, verifier)
            records += [c.record.tracks(net) for c in inputs if group[c.traj_type] == g]
    classifier = _fit_network(inputs, epochs, seed, quick, cache, counts, verifier)
    if not records:
        return classifier, OutputPolicy(DEFAULT_VERIFY_THRESHOLD), {}, *counts
    policy, table = choose_policy(records)
    return classifier, policy, table, *counts


def fit_in_worker(inputs, epochs, seed: int, quick: bool, cache_enabled: bool, cache_root,
                  verifier: str = "trajformer"):
    """:func:`fit_classifier` in a worker process (one torch thread, as the
    evaluation's own process, so the networks are the same to the bit).
    Returns (the network as :func:`network_data`, policy, table, networks
    read from the cache, networks trained, seconds): plain data, so no
    tensor crosses between the processes."""
    import time

    import torch

    from sense_nodes.eval.bsense_cache import StageCache

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    cache = StageCache(enabled=cache_enabled, root=cache_root)
    net, policy, table, read, trained = fit_classifier(inputs, epochs, seed, quick, cache, verifier)
    return (network_data(net), policy, table, read, trained, time.perf_counter() - t0)


def network_data(net) -> tuple:
    """(kind, config, arrays) of a trained verifier: plain data that
    :func:`network_from` turns back into the same verifier."""
    import dataclasses

    from sense_nodes.core.bsense.boosted import BoostedVerifier

    if isinstance(net, BoostedVerifier):
        return "boosted", dataclasses.asdict(net.config), dataclasses.asdict(net.trees)
    return "trajformer", dataclasses.asdict(net.config), {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}


def network_from(kind: str, config: dict, arrays: dict):
    """The verifier :func:`network_data` described (a network in eval mode)."""
    if kind == "boosted":
        from sense_nodes.core.bsense.boosted import BoostedConfig, BoostedVerifier, Trees

        return BoostedVerifier(BoostedConfig(**config), Trees(**arrays))
    import torch

    from sense_nodes.core.bsense.trajformer import TrajFormer, TrajFormerConfig

    net = TrajFormer(TrajFormerConfig(**config))
    net.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()})
    return net.eval()


def _fit_network(inputs, epochs, seed, quick, cache=None, counts=None, verifier: str = "trajformer"):
    if verifier not in VERIFIERS:
        raise ValueError(f"verifier must be one of {VERIFIERS}, got {verifier!r}")
    if verifier == "boosted":
        return _fit_boosted(inputs, seed, cache, counts)
    return _fit_trajformer(inputs, epochs, seed, quick, cache, counts)


def _fit_boosted(inputs, seed, cache=None, counts=None):
    """Boosted trees on every window of ``inputs`` (no share of the false
    windows is dropped: trees are cheap to train on all of them), kept in
    ``cache`` like the networks (keyed by scikit-learn's version too)."""
    import sklearn

    from sense_nodes.core.bsense.boosted import BoostedConfig, BoostedVerifier, load_verifier, save_verifier

    X, y = _windows_of(inputs)
    config = BoostedConfig(window=X.shape[1], n_features=X.shape[2], seed=seed)
    return _cached(cache, counts, (X, y, repr(config), sklearn.__version__), lambda: BoostedVerifier.fit(X, y, config),
                   load_verifier, save_verifier)


def _windows_of(inputs):
    """(X, y) of every case of ``inputs``; refused when one class is missing."""
    X, y = np.concatenate([c.X for c in inputs]), np.concatenate([c.y for c in inputs])
    if len(X) == 0 or y.min() == y.max():
        raise ValueError("the training cases gave no windows of both classes to train the verifier on")
    return X, y


def _fit_trajformer(inputs, epochs, seed, quick, cache=None, counts=None):
    from sense_nodes.core.bsense.training import TrainConfig

    X, y = _windows_of(inputs)
    n_epochs = epochs if epochs is not None else (3 if quick else TrainConfig().epochs)
    config = TrainConfig(epochs=n_epochs, seed=seed, cases=tuple(c.name for c in inputs),
                         negative_share=NEGATIVE_SHARE, val_share=VAL_SHARE)
    return _trained(X, y, config, cache, counts)


def _trained(X, y, config, cache=None, counts=None):
    """TrajFormer trained on (X, y) with ``config``, or the same network
    from ``cache`` (:func:`_cached`)."""
    import torch

    from sense_nodes.core.bsense.training import train
    from sense_nodes.core.bsense.trajformer import load_checkpoint, save_checkpoint

    device = ("cuda" if torch.cuda.is_available() else "cpu") if config.device == "auto" else config.device
    # the weights depend on the device and torch's kernels too: a network trained elsewhere is not reused
    return _cached(cache, counts, (X, y, repr(config), device, torch.__version__),
                   lambda: train(config, None, samples=(X, y), progress=False)[0], load_checkpoint,
                   lambda model, path: save_checkpoint(model, path))


def _cached(cache, counts, key_parts, fit, load, save):
    """``fit()``'s verifier, or the same one from ``cache`` (keyed by the
    code and ``key_parts``: the windows and settings): read back through
    the suite's safe checkpoint loader. ``counts``: [read, trained], added to."""
    from sense_nodes.core.checkpoint import CheckpointError

    counts = counts if counts is not None else [0, 0]
    if cache is None or not cache.enabled:
        return fit()
    from sense_nodes.eval.bsense_cache import digest
    path = cache.path("classifier", digest(cache.classifier_code, *key_parts), ".pt")
    if path.exists():
        try:
            model = load(path)
            cache.hits += 1
            counts[0] += 1
            return model
        except CheckpointError as exc:
            print(f"{exc}: training the verifier again")
    cache.misses += 1
    counts[1] += 1
    model = fit()
    save(model, path)
    return model
