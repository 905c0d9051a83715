"""The boosted-tree track verifier (core/bsense/boosted.py): it scores as
scikit-learn's model does, stores through the safe checkpoint writer, and a
damaged file is refused naming it."""
import numpy as np
import pytest
import torch

from sense_nodes.core import checkpoint as ckpt
from sense_nodes.core.bsense.boosted import BoostedConfig, BoostedVerifier, load_verifier, save_verifier

W, F = 6, 5


def _windows(n, rng):
    """Windows whose label depends on two features, one of them squared, with NaNs."""
    X = rng.normal(size=(n, W, F)).astype(np.float32)
    y = (X[:, -1, 0] + X[:, 2, 3] ** 2 + 0.3 * rng.normal(size=n) > 1.0).astype(int)
    X[::37, 1, 2] = np.nan
    return X, y


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X, y = _windows(4000, rng)
    cfg = BoostedConfig(window=W, n_features=F, max_iter=60)
    return BoostedVerifier.fit(X, y, cfg), cfg, X, y


def test_scores_match_scikit_learn_and_separate_the_classes(fitted):
    from sklearn.ensemble import HistGradientBoostingClassifier

    v, cfg, X, y = fitted
    ref = HistGradientBoostingClassifier(max_iter=cfg.max_iter, learning_rate=cfg.learning_rate,
                                         max_leaf_nodes=cfg.max_leaf_nodes, min_samples_leaf=cfg.min_samples_leaf,
                                         early_stopping=True, validation_fraction=cfg.validation_fraction,
                                         n_iter_no_change=cfg.n_iter_no_change, random_state=cfg.seed,
                                         class_weight="balanced")
    ref.fit(X.reshape(len(X), -1), y)
    Xt, yt = _windows(500, np.random.default_rng(1))
    p = v.predict_proba(Xt)
    np.testing.assert_allclose(p, ref.predict_proba(Xt.reshape(len(Xt), -1))[:, 1], rtol=0, atol=1e-12)
    assert ((p >= 0.5) == yt).mean() > 0.9
    assert v.predict_proba(np.zeros((0, W, F))).shape == (0,)


def test_round_trip_through_the_checkpoint_writer(fitted, tmp_path):
    v = fitted[0]
    path = save_verifier(v, tmp_path / "v.pt")
    w = load_verifier(path)
    Xt, _ = _windows(200, np.random.default_rng(2))
    np.testing.assert_array_equal(w.predict_proba(Xt), v.predict_proba(Xt))
    assert w.config == v.config


def test_a_file_whose_trees_point_outside_is_refused(fitted, tmp_path):
    path = save_verifier(fitted[0], tmp_path / "v.pt")
    ck = ckpt.load_checkpoint(path, kind="bsense-boosted-verifier", version=1)
    state = dict(ck.state_dict)
    left = state["left"].clone()
    left[~state["leaf"]] = 10 ** 9
    state["left"] = left
    bad = ckpt.save_checkpoint(tmp_path / "bad.pt", kind=ck.kind, version=ck.version, config=ck.config,
                               state_dict=state)
    with pytest.raises(ckpt.CheckpointError, match="bad.pt"):
        load_verifier(bad)


def test_a_trajformer_file_is_not_taken_for_a_verifier(tmp_path):
    path = ckpt.save_checkpoint(tmp_path / "t.pt", kind="bsense-trajformer", version=1, config={},
                                state_dict={"w": torch.zeros(1)})
    with pytest.raises(ckpt.CheckpointError, match="t.pt"):
        load_verifier(path)


def test_windows_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match="windows must be"):
        BoostedVerifier.fit(np.zeros((10, W, F + 1)), np.arange(10) % 2, BoostedConfig(window=W, n_features=F))


def test_the_node_loader_takes_either_verifier_by_its_file(fitted, tmp_path):
    from sense_nodes.core.bsense.trajformer import TrajFormer, save_checkpoint
    from sense_nodes.core.bsense.verification import load_classifier

    boosted = load_classifier(save_verifier(fitted[0], tmp_path / "b.pt"))
    assert isinstance(boosted, BoostedVerifier)
    assert isinstance(load_classifier(save_checkpoint(TrajFormer(), tmp_path / "t.pt")), TrajFormer)
    other = ckpt.save_checkpoint(tmp_path / "o.pt", kind="diffloc", version=1, config={},
                                 state_dict={"w": torch.zeros(1)})
    with pytest.raises(ckpt.CheckpointError, match="o.pt.*not a track verifier"):
        load_classifier(other)
