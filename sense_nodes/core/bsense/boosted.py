"""A gradient-boosted tree verifier beside TrajFormer (BSense paper, Section
3.4.2, our addition): the same windows of W tracker observations, the same
features, the same ``predict_proba((B, W, F)) -> (B,)``, so the output policy,
the pipeline and the evaluation take either.

Why beside the paper's network: the window features are a few dozen
hand-made numbers per row (position, motion, signal, the track's
cross-section, height spread and turning), on which boosted trees are the
field's usual strong learner; trees need no standardisation, read every
threshold on a feature's own scale and train in seconds on one core. The
evaluation measures both on the same folds (``sense eval bsense --verifier``).

Training is scikit-learn's ``HistGradientBoostingClassifier``. Its fitted
model is pickled Python, which the suite never loads, so the trees are
exported to plain arrays (:class:`Trees`) and stored as tensors through the
shared checkpoint writer; prediction walks the arrays with numpy, all trees
at once, which gives the same probabilities as scikit-learn (tested).

Notation (code name / meaning)::

    X          (B, W, F) feature windows, flattened to (B, W F) for the trees
    feature    (N,) the feature each node splits on (all trees' nodes in one array)
    threshold  (N,) go left when x <= threshold
    nan_left   (N,) where a missing (NaN) feature goes
    left/right (N,) children, as indices into the same arrays
    leaf       (N,) True at leaves; ``value`` is a leaf's raw score
    roots      (T,) each tree's root node
    baseline   the raw score before the first tree (log-odds of the prior)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from sense_nodes.core import checkpoint as ckpt

from .trajformer import N_FEATURES

CHECKPOINT_KIND = "bsense-boosted-verifier"
CHECKPOINT_VERSION = 1
# the verifier shipped with the package (`sense train trajformer --verifier boosted --ship`)
BOOSTED_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "verifier_boosted.pt"
# the arrays of :class:`Trees` and their types, as stored
_ARRAYS = {"feature": np.int64, "threshold": np.float64, "nan_left": bool, "left": np.int64, "right": np.int64,
           "leaf": bool, "value": np.float64, "roots": np.int64}


@dataclass(frozen=True)
class BoostedConfig:
    """Tree settings (our choices: scikit-learn's defaults, more rounds,
    early stopping on a held-out tenth). ``balanced``: the two classes
    weigh the same in the loss, as in TrajFormer's training, so P(true) is
    on the same scale and the output policy's threshold grid fits both."""
    window: int = 6
    n_features: int = N_FEATURES
    max_iter: int = 300
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 20
    l2_regularization: float = 0.0
    validation_fraction: float = 0.1
    n_iter_no_change: int = 10
    balanced: bool = True
    seed: int = 0


@dataclass
class Trees:
    """Every tree of a fitted ensemble as flat arrays (see the module's notation)."""
    feature: np.ndarray
    threshold: np.ndarray
    nan_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    baseline: float
    depth: int

    @classmethod
    def from_sklearn(cls, model) -> "Trees":
        """The trees of a fitted binary ``HistGradientBoostingClassifier``
        (numerical features only). Its per-tree node records are concatenated
        and the child indices shifted to the joint arrays."""
        parts, roots, off = [], [], 0
        for (pred,) in model._predictors:      # one predictor per round for a binary task
            nodes = pred.nodes
            roots.append(off)
            parts.append((nodes, off))
            off += len(nodes)
        cat = np.concatenate([n for n, _ in parts])
        shift = np.concatenate([np.full(len(n), o, np.int64) for n, o in parts])
        leaf = cat["is_leaf"].astype(bool)
        return cls(feature=cat["feature_idx"].astype(np.int64), threshold=cat["num_threshold"].astype(np.float64),
                   nan_left=cat["missing_go_to_left"].astype(bool),
                   left=np.where(leaf, 0, cat["left"].astype(np.int64) + shift),
                   right=np.where(leaf, 0, cat["right"].astype(np.int64) + shift),
                   leaf=leaf, value=cat["value"].astype(np.float64), roots=np.asarray(roots, np.int64),
                   baseline=float(np.ravel(model._baseline_prediction)[0]),
                   depth=int(cat["depth"].max()) if len(cat) else 0)

    def raw(self, X: np.ndarray) -> np.ndarray:
        """(B,) raw scores (log-odds) of (B, D) rows: every tree walked at
        once, one level per step, as deep as the deepest tree."""
        B = X.shape[0]
        node = np.broadcast_to(self.roots, (B, self.roots.size)).copy()
        rows = np.arange(B)[:, None]
        for _ in range(self.depth):
            done = self.leaf[node]
            if done.all():
                break
            x = X[rows, self.feature[node]]
            go_left = np.where(np.isnan(x), self.nan_left[node], x <= self.threshold[node])
            node = np.where(done, node, np.where(go_left, self.left[node], self.right[node]))
        return self.baseline + self.value[node].sum(1)


class BoostedVerifier:
    """P(true target) of a track's window from boosted trees (module doc).
    ``BoostedVerifier.fit(X, y, config)`` trains; ``predict_proba(X)``
    scores; :func:`save_verifier` / :func:`load_verifier` store it."""

    def __init__(self, config: BoostedConfig, trees: Trees):
        self.config = config
        self.trees = trees

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, config: BoostedConfig = BoostedConfig()) -> "BoostedVerifier":
        from sklearn.ensemble import HistGradientBoostingClassifier

        X = np.asarray(X, np.float32)
        y = np.asarray(y).astype(int)
        if X.ndim != 3 or X.shape[1:] != (config.window, config.n_features):
            raise ValueError(f"windows must be (B, {config.window}, {config.n_features}), got {X.shape}")
        if len(X) == 0 or y.min() == y.max():
            raise ValueError("no windows of both classes to train the boosted verifier on")
        model = HistGradientBoostingClassifier(
            max_iter=config.max_iter, learning_rate=config.learning_rate, max_leaf_nodes=config.max_leaf_nodes,
            min_samples_leaf=config.min_samples_leaf, l2_regularization=config.l2_regularization,
            early_stopping=True, validation_fraction=config.validation_fraction,
            n_iter_no_change=config.n_iter_no_change, random_state=config.seed,
            class_weight="balanced" if config.balanced else None)
        model.fit(X.reshape(len(X), -1), y)
        return cls(config, Trees.from_sklearn(model))

    def predict_proba(self, windows: np.ndarray) -> np.ndarray:
        """P(true target) for (B, W, n_features) windows."""
        X = np.asarray(windows, np.float64)
        if len(X) == 0:
            return np.zeros(0)
        raw = self.trees.raw(X.reshape(len(X), -1))
        return 1.0 / (1.0 + np.exp(-raw))


def save_verifier(verifier: BoostedVerifier, path, **extra):
    """Store the trees as tensors through the suite's safe checkpoint writer."""
    t = verifier.trees
    state = {k: torch.from_numpy(np.ascontiguousarray(getattr(t, k))) for k in _ARRAYS}
    config = {**asdict(verifier.config), "baseline": t.baseline, "depth": t.depth}
    return ckpt.save_checkpoint(path, kind=CHECKPOINT_KIND, version=CHECKPOINT_VERSION, config=config,
                                state_dict=state, extra=extra)


def load_verifier(path) -> BoostedVerifier:
    """A :class:`BoostedVerifier` from :func:`save_verifier`'s file; a file
    whose arrays do not make a tree ensemble is refused naming it."""
    return from_checkpoint(ckpt.load_checkpoint(path, kind=CHECKPOINT_KIND, version=CHECKPOINT_VERSION))


def from_checkpoint(ck: ckpt.Checkpoint) -> BoostedVerifier:
    """The verifier of a verified :class:`~sense_nodes.core.checkpoint.Checkpoint` of this kind."""
    cfg = dict(ck.config)
    baseline, depth = cfg.pop("baseline", None), cfg.pop("depth", None)
    try:
        config = BoostedConfig(**cfg)
        arrays = {k: ck.state_dict[k].numpy().astype(dtype) for k, dtype in _ARRAYS.items()}
    except (TypeError, KeyError) as exc:
        raise ckpt.CheckpointError(f"{ck.path}: not a boosted verifier ({exc})") from None
    n = arrays["feature"].size
    sizes_ok = all(arrays[k].shape == (n,) for k in _ARRAYS if k != "roots")
    inner = ~arrays["leaf"]
    links_ok = sizes_ok and all(((arrays[k][inner] >= 0) & (arrays[k][inner] < n)).all() for k in ("left", "right"))
    feats_ok = sizes_ok and ((arrays["feature"][inner] >= 0)
                             & (arrays["feature"][inner] < config.window * config.n_features)).all()
    if not (links_ok and feats_ok and ((arrays["roots"] >= 0) & (arrays["roots"] < max(n, 1))).all()
            and isinstance(depth, int) and isinstance(baseline, float)):
        raise ckpt.CheckpointError(f"{ck.path}: its tree arrays do not describe a tree ensemble")
    return BoostedVerifier(config, Trees(**arrays, baseline=baseline, depth=depth))
