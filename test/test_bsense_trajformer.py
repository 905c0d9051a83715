"""BSense TrajFormer (paper Section 3.4.2) and the whole chain (Figure 4,
ablation stages of Figure 13)."""
import numpy as np
import pytest
import torch

from sense_nodes.core.bsense.noise_model import NoiseModel
from sense_nodes.core.bsense.pipeline import TIMED, BSensePipeline, PipelineConfig
from sense_nodes.core.bsense.training import TrainConfig, train
from sense_nodes.core.bsense.tracker import OBS_FIELDS
from sense_nodes.core.bsense.trajformer import (N_FEATURES, TrajFormer, TrajFormerConfig, load_checkpoint,
                                                window_features)
from sense_nodes.data.cloud_codec import BS_POINT_DTYPE

W = 6


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models train faster on one thread than fighting for shared cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def synthetic_windows(n, rng):
    """True tracks fly smoothly with Doppler matching their motion; false
    ones jitter with random Doppler (the tracker's observation fields;
    confidences and model probability alike for both)."""
    obs = np.zeros((n, W, len(OBS_FIELDS)), np.float32)
    y = (np.arange(n) % 2).astype(np.int64)
    for i in range(n):
        p0 = np.array([rng.uniform(200, 900), rng.uniform(-300, 300), rng.uniform(40, 150)])
        v = rng.normal(0, 5, 3) * [1, 1, 0.1]
        t = np.arange(W)[:, None] * 0.64
        if y[i]:
            p = p0 + v * t + rng.normal(0, 1, (W, 3))
            dop = np.full(W, v @ (p0 - [0, 0, 23]) / np.linalg.norm(p0 - [0, 0, 23]))
        else:
            p = p0 + rng.normal(0, 6, (W, 3))
            dop = rng.normal(0, 6, W)
        obs[i, :, :3], obs[i, :, 3:6], obs[i, :, 6] = p, v, dop
        obs[i, :, 7:12] = [20, 15, -90, -70, -69]
        obs[i, :, 12] = 1
        obs[i, :, 13:16] = [0.5, 0.4, 0.5]
    return window_features(obs), y


def test_trajformer_shapes_and_query_is_the_current_observation():
    m = TrajFormer(TrajFormerConfig(window=W)).eval()
    x = torch.randn(4, W, N_FEATURES)
    assert m(x).shape == (4, 2)
    p = m.predict_proba(x.numpy())
    assert p.shape == (4,) and np.all((p >= 0) & (p <= 1))


def test_tiny_training_reduces_the_loss_and_checkpoint_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    X, y = synthetic_windows(192, rng)
    model, hist = train(TrainConfig(epochs=8, batch_size=64, lr=3e-3, cases=("synthetic",), device="cpu"),
                        tmp_path / "tf.pt", samples=(X, y), progress=False)
    assert hist["loss"][-1] < 0.6 * hist["loss"][0]
    Xt, yt = synthetic_windows(128, np.random.default_rng(1))
    acc = ((model.predict_proba(Xt) >= 0.5) == yt).mean()
    assert acc > 0.85
    back = load_checkpoint(tmp_path / "tf.pt")
    assert back.config == model.config
    assert np.allclose(back.predict_proba(Xt), model.predict_proba(Xt), atol=1e-6)
    assert back.checkpoint_extra["train_cases"] == ["synthetic"]
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"nope")
    with pytest.raises(ValueError, match="bad.pt"):
        load_checkpoint(bad)
    # a checkpoint of the 15-feature version is refused with what to do
    ck = torch.load(tmp_path / "tf.pt", weights_only=True)
    ck["version"] = 1
    torch.save(ck, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="old.pt.*version 1; this code reads version 2"):
        load_checkpoint(tmp_path / "old.pt")


def frame_stream(n_frames, rng):
    """A UAV receding at 6 m/s among static clutter and one-off false alarms."""
    o = np.array([0.0, 0.0, 23.0])
    u = np.array([0.8, 0.6, 0.0])
    clutter = rng.uniform([100, -400, 0], [900, 400, 60], (30, 3))
    frames = []
    for k in range(n_frames):
        p_uav = o + u * (300 + 6.0 * 0.64 * k) + [0, 0, 80]
        xyz = np.concatenate([p_uav[None] + rng.normal(0, 1, (1, 3)), clutter + rng.normal(0, 1, clutter.shape),
                              rng.uniform([100, -400, 50], [900, 400, 300], (10, 3))])
        pts = np.zeros(len(xyz), BS_POINT_DTYPE)
        pts["x"], pts["y"], pts["z"] = xyz.T
        pts["doppler"] = np.r_[6.0, rng.normal(0, 0.5, 30), rng.normal(0, 8, 10)]
        m = rng.normal([20, 15, -90, -70, -69], 2, (len(xyz), 5))
        m[0] += [15, 20, 0, 15, 15]
        for j, name in enumerate(("snr", "scr", "noise", "signal_power", "rx_power")):
            pts[name] = m[:, j]
        frames.append((pts, p_uav))
    return frames


def test_pipeline_stages_run_end_to_end():
    rng = np.random.default_rng(3)
    frames = frame_stream(30, rng)
    model = NoiseModel().fit([f[0][1:] for f in frame_stream(150, np.random.default_rng(9))])
    with pytest.raises(ValueError, match="noise model"):
        BSensePipeline(PipelineConfig(stage=2))
    with pytest.raises(ValueError, match="TrajFormer"):
        BSensePipeline(PipelineConfig(stage=5), model)
    class Verdict:
        def __init__(self, value):
            self.value = value

        def predict_proba(self, w):
            return np.full(len(w), self.value)

    found, shown = {}, {}
    for stage, clf in ((1, None), (2, None), (3, None), (4, None), (5, Verdict(1.0)), (5, Verdict(0.0))):
        pipe = BSensePipeline(PipelineConfig(stage=stage), model if stage > 1 else None, clf)
        hits, n_out = 0, []
        for pts, p_uav in frames:
            r = pipe.step(pts)
            assert set(TIMED) | {"total"} <= set(r.timing_ms)
            hits += any(np.linalg.norm(t.position - p_uav) < 10 for t in r.output)
            n_out.append(len(r.output))
        key = (stage, getattr(clf, "value", None))
        found[key], shown[key] = hits, np.mean(n_out[10:])
    # the UAV is tracked by every stage once confirmed (K = 3), and in stage 5
    # once TrajFormer has W = 6 observations and says true
    assert all(h >= 26 for k, h in found.items() if k[0] < 5) and found[(5, 1.0)] >= 23
    assert found[(5, 0.0)] == 0 and shown[(5, 0.0)] == 0      # TrajFormer says false: nothing output
    assert shown[(2, None)] < shown[(1, None)]                 # the noise filter removes some clutter tracks
    assert shown[(5, 1.0)] <= shown[(4, None)] <= shown[(2, None)]


def test_motion_features_are_zero_for_a_straight_steady_flight_and_not_for_a_wandering_one():
    from sense_nodes.core.bsense.imm_ukf import ORIGIN
    from sense_nodes.core.bsense.trajformer import BASE_FEATURES, features_of, motion_features
    t = np.arange(W)[:, None] * 0.64
    v = np.array([4.0, 3.0, 0.0])
    p = np.array([500.0, 100.0, 80.0]) + v * t
    obs = np.zeros((W, len(OBS_FIELDS)), np.float32)
    obs[:, :3], obs[:, 3:6] = p, v
    obs[:, 6] = ((p - ORIGIN) / np.linalg.norm(p - ORIGIN, axis=1, keepdims=True)) @ v
    assert np.allclose(motion_features(obs), 0.0, atol=1e-4)
    bird = obs.copy()
    ang = np.array([0.0, 0.3, 0.1, 0.5, 0.2, 0.6])
    bird[:, 3], bird[:, 4] = 5 * np.cos(ang), 5 * np.sin(ang)
    bird[:, 2] += [0, 1.5, 0.5, 2.0, 1.0, 2.5]
    bird[:, 6] = [3.0, -2.0, 4.0, -3.0, 2.0, -4.0]      # a ghost's Doppler, not its motion's
    m = motion_features(bird)
    assert np.allclose(m[1:, 0], np.diff(ang), atol=1e-5) and np.abs(m[1:, 2]).min() > 0.4
    assert np.abs(m[:, 3]).max() > 1.0            # its Doppler no longer matches its motion
    assert window_features(obs).shape[-1] == N_FEATURES
    assert window_features(obs, n_features=BASE_FEATURES).shape[-1] == BASE_FEATURES
    assert features_of(TrajFormer(TrajFormerConfig(window=W, n_features=BASE_FEATURES))) == BASE_FEATURES


def test_track_features_tell_a_wandering_climbing_track_from_a_steady_one():
    from sense_nodes.core.bsense.imm_ukf import ORIGIN
    from sense_nodes.core.bsense.trajformer import (FEATURE_COUNTS, TRACK_FEATURES, WINDOW_FEATURES,
                                                    history_windows, track_features)
    H = 30
    t = np.arange(H)[:, None] * 0.64
    v = np.array([4.0, 3.0, 0.0])
    steady = np.zeros((H, len(OBS_FIELDS)), np.float32)
    steady[:, :3], steady[:, 3:6], steady[:, 7] = np.array([500.0, 100.0, 80.0]) + v * t, v, 20.0
    bird = steady.copy()
    ang = np.cumsum(np.where(np.arange(H) % 2, 0.3, -0.25))
    bird[:, 3], bird[:, 4] = 5 * np.cos(ang), 5 * np.sin(ang)
    bird[:, 2] += np.cumsum(np.tile([1.0, 0.5, -0.2], H // 3))
    bird[:, 7] = 26.0                          # an echo 6 dB stronger at the same range
    s, b = track_features(steady), track_features(bird)
    assert s.shape == (TRACK_FEATURES,) and s[3] == H
    assert np.isclose(b[0] - s[0], 6.0, atol=0.5)           # cross-section, dB
    assert s[1] < 1e-3 < 1.0 < b[1]                          # height spread, m
    assert s[2] < 1e-4 and b[2] > 0.2                        # median turn, rad
    # a corner of a straight-leg flight is one turn: the median passes over it
    corner = steady.copy()
    corner[H // 2:, 3], corner[H // 2:, 4] = -3.0, 4.0
    assert track_features(corner)[2] < 1e-4
    # the windows of tracks carry their whole history's statistics on every row
    tracks = [type("T", (), {"history": list(h)})() for h in (steady, bird)]
    x = history_windows(tracks, W, ORIGIN)
    assert x.shape == (2, W, N_FEATURES) and np.allclose(x[1, :, -TRACK_FEATURES:], b)
    assert np.allclose(x[..., :WINDOW_FEATURES], window_features(np.stack([steady[-W:], bird[-W:]]),
                                                                   n_features=WINDOW_FEATURES))
    assert [window_features(steady[-W:], n_features=n).shape[-1] for n in FEATURE_COUNTS] == list(FEATURE_COUNTS)
    with pytest.raises(ValueError):
        window_features(steady[-W:], n_features=20)


def test_nanmedian_last_is_numpys_nanmedian_to_the_bit():
    """The median turn's median (track_features) gives np.nanmedian's values
    exactly: rows of any length, ties, NaNs, all-NaN rows, 1-D and batched."""
    import warnings

    from sense_nodes.core.bsense.trajformer import nanmedian_last

    rng = np.random.default_rng(0)
    for _ in range(2000):
        shape = (int(rng.integers(1, 4)),) * int(rng.integers(0, 3)) + (int(rng.integers(0, 33)),)
        x = rng.random(shape) * 3
        if rng.random() < 0.5:
            x = np.round(x, 1)       # ties
        x[rng.random(shape) < rng.random()] = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ref = np.nanmedian(x, axis=-1)
        np.testing.assert_array_equal(nanmedian_last(x), ref)
