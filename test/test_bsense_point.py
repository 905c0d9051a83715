"""BSense point level (paper Section 3.2): cubes, Henze-Zirkler, the
Mahalanobis filter of Eq. 10-11, model updates and model files."""
import os

import numpy as np
import pytest

from sense_nodes.core.bsense.cubes import CubeGrid, lookup
from sense_nodes.core.bsense.noise_model import (FingerprintUpdater, NoiseModel, NoiseModelConfig,
                                                 NoiseModelFileError)
from sense_nodes.core.bsense.normality import henze_zirkler
from sense_nodes.data.cloud_codec import BS_POINT_DTYPE

MEAN = np.array([20.0, 15.0, -90.0, -70.0, -69.0])       # snr scr noise signal_power rx_power
COV = np.array([[4.0, 2.0, 0.0, 3.0, 2.5], [2.0, 9.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.5, 0.5],
                [3.0, 1.0, 0.5, 6.0, 5.0], [2.5, 1.0, 0.5, 5.0, 6.0]])
CENTRE = np.array([220.0, 60.0, 100.0])                   # inside cube (5, 1, 2) of 40 m
PAPER = NoiseModelConfig(mixture_components=0)            # the paper's plain Gaussians, no fallback


def make_points(xyz, metrics, doppler=0.5):
    p = np.zeros(len(xyz), BS_POINT_DTYPE)
    for k, name in enumerate(("x", "y", "z")):
        p[name] = xyz[:, k]
    p["doppler"] = doppler
    for k, name in enumerate(("snr", "scr", "noise", "signal_power", "rx_power")):
        p[name] = metrics[:, k]
    return p


def noise_frames(rng, n_frames=120, per_frame=8, centre=CENTRE):
    """UAV-free frames: Gaussian fingerprint points spread inside one cube."""
    out = []
    for _ in range(n_frames):
        xyz = centre + rng.uniform(-15, 15, (per_frame, 3))
        out.append(make_points(xyz, rng.multivariate_normal(MEAN, COV, per_frame)))
    return out


@pytest.fixture(scope="module")
def model():
    return NoiseModel().fit(noise_frames(np.random.default_rng(1)))


def test_cube_keys_round_trip_and_lookup():
    g = CubeGrid(40.0)
    xyz = np.array([[0.0, 0.0, 0.0], [39.9, -0.1, 80.0], [-1000.0, 500.0, -20.0]])
    keys = g.keys(xyz)
    assert np.array_equal(g.unpack(keys), [[0, 0, 0], [0, -1, 2], [-25, 12, -1]])
    table = np.sort(keys[:2])
    assert list(lookup(table, keys)) == [int(np.searchsorted(table, keys[0])), int(np.searchsorted(table, keys[1])), -1]


def test_henze_zirkler_tells_gaussian_from_not():
    rng = np.random.default_rng(0)
    _, p_gauss = henze_zirkler(rng.multivariate_normal(MEAN, COV, 300))
    _, p_mix = henze_zirkler(np.concatenate([rng.normal(0, 1, (150, 5)), rng.normal(4, 1, (150, 5))]))
    assert p_gauss > 0.05
    assert p_mix < 0.01


def test_point_inside_fitted_gaussian_is_removed(model):
    assert model.summary()["cubes"] == 1 and model.gaussian.all()
    at_mean = make_points(CENTRE[None], MEAN[None])
    assert not model.filter(at_mean)[0]                      # looks exactly like the cube's noise: removed
    far = make_points(CENTRE[None], (MEAN + np.array([15.0, 20.0, 0.0, 12.0, 12.0]))[None])
    assert model.filter(far)[0]                              # unlike the fingerprint: kept
    elsewhere = make_points(np.array([[900.0, 0.0, 50.0]]), MEAN[None])
    assert model.filter(elsewhere)[0]                        # cube never modelled: left to later stages


def test_threshold_is_the_percentile_of_fitting_distances(model):
    rng = np.random.default_rng(7)
    fresh = np.concatenate(noise_frames(rng, 60))
    removed = 1.0 - model.filter(fresh).mean()
    assert 0.7 < removed < 0.9                               # p = 80: about 80% of noise removed


def test_uav_crossing_noisy_cube_is_kept(model):
    # a UAV flies straight through the noisy cube: strong echo, high SCR
    t = np.linspace(0, 1, 12)[:, None]
    xyz = CENTRE - [19, 0, 0] + t * [38.0, 0.0, 0.0]
    rng = np.random.default_rng(3)
    uav = make_points(xyz, MEAN + [14.0, 22.0, 0.0, 14.0, 13.5] + rng.normal(0, 0.4, (12, 5)), doppler=6.0)
    assert model.filter(uav).all()


def test_non_gaussian_cube_is_left_to_later_stages():
    rng = np.random.default_rng(2)
    frames = []
    for _ in range(120):
        xyz = CENTRE + rng.uniform(-15, 15, (8, 3))
        m = np.where(rng.random((8, 1)) < 0.5, MEAN - 8.0, MEAN + 8.0) + rng.normal(0, 1, (8, 5))
        frames.append(make_points(xyz, m))
    m = NoiseModel(PAPER).fit(frames)
    assert not m.gaussian.any()
    assert m.filter(np.concatenate(frames[:10])).all()


def mixture_frames(rng, n_frames=120, per_frame=8):
    """UAV-free frames of one cube whose noise is two populations (a
    non-Gaussian cube, Section 3.2.1)."""
    frames = []
    for _ in range(n_frames):
        xyz = CENTRE + rng.uniform(-15, 15, (per_frame, 3))
        m = np.where(rng.random((per_frame, 1)) < 0.5, MEAN - 8.0, MEAN + 8.0) + rng.normal(0, 1, (per_frame, 5))
        frames.append(make_points(xyz, m))
    return frames


def test_mixture_fallback_removes_noise_of_a_non_gaussian_cube_and_keeps_a_uav():
    frames = mixture_frames(np.random.default_rng(2))
    m = NoiseModel(NoiseModelConfig(mixture_components=3)).fit(frames)
    assert not m.gaussian.any() and m.summary()["fallback_cubes"] == 1
    fresh = np.concatenate(mixture_frames(np.random.default_rng(3), 20))
    removed = 1.0 - m.filter(fresh).mean()
    assert 0.7 < removed < 0.9                     # Eq. 11's p = 80 on the mixture's density
    # a point between the two populations: far from both parts, kept
    uav = make_points(CENTRE[None, :], MEAN[None, :])
    assert m.filter(uav).all()
    assert NoiseModel(PAPER).fit(frames).filter(fresh).all()      # the paper's model leaves the cube alone


def test_sparse_cube_pools_its_neighbours_only_when_asked():
    rng = np.random.default_rng(4)
    frames = noise_frames(rng)                              # a well-sampled cube ...
    side = CENTRE + np.array([40.0, 0.0, 0.0])             # ... and its neighbour with 25 points
    for k in range(25):
        frames[k] = np.concatenate([frames[k], make_points(side[None, :], rng.multivariate_normal(MEAN, COV, 1))])
    probe = make_points(np.repeat(side[None, :], 200, 0), rng.multivariate_normal(MEAN, COV, 200))
    assert NoiseModel(PAPER).fit(frames).filter(probe).all()     # sparse: unmodelled in the paper
    pooled = NoiseModel(NoiseModelConfig(pool_radius=1, pool_min_points=20)).fit(frames)
    assert 0.6 < 1.0 - pooled.filter(probe).mean() < 0.95
    assert NoiseModel(NoiseModelConfig(pool_radius=1, pool_min_points=30)).fit(frames).filter(probe).all()


def test_fallback_survives_the_model_file(tmp_path):
    frames = mixture_frames(np.random.default_rng(2))
    m = NoiseModel(NoiseModelConfig(mixture_components=2)).fit(frames)
    back = NoiseModel.load(m.save(tmp_path / "noise.npz"))
    pts = np.concatenate(mixture_frames(np.random.default_rng(6), 10))
    assert np.array_equal(back.filter(pts), m.filter(pts)) and back.config == m.config


def test_save_load_round_trip(tmp_path, model):
    path = model.save(tmp_path / "noise.npz")
    back = NoiseModel.load(path)
    pts = np.concatenate(noise_frames(np.random.default_rng(5), 20))
    assert np.array_equal(back.filter(pts), model.filter(pts))
    assert back.config == model.config and back.summary() == model.summary()
    assert [f for f in os.listdir(tmp_path)] == ["noise.npz"]   # no temp file left behind


def test_corrupt_or_foreign_file_is_refused_naming_it(tmp_path, model):
    bad = tmp_path / "corrupt.npz"
    bad.write_bytes(b"PK\x03\x04 definitely not a model")
    with pytest.raises(NoiseModelFileError, match="corrupt.npz"):
        NoiseModel.load(bad)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(NoiseModelFileError, match="other.npz"):
        NoiseModel.load(other)
    good = model.save(tmp_path / "v.npz")
    with np.load(good) as z:
        arrays = dict(z)
    arrays["version"] = np.array(99)
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(NoiseModelFileError, match="version 99"):
        NoiseModel.load(tmp_path / "future.npz")
    with pytest.raises(NoiseModelFileError, match="missing.npz"):
        NoiseModel.load(tmp_path / "missing.npz")


def test_refit_excludes_points_near_confirmed_tracks():
    rng = np.random.default_rng(4)
    model = NoiseModel(NoiseModelConfig())
    up = FingerprintUpdater(model, n_frames=100, interval_s=10.0, exclude_radius_m=15.0)
    track = CENTRE + [0.0, 0.0, 5.0]
    refits = []
    for k, f in enumerate(noise_frames(rng, 110)):
        # a UAV inside the cube, strong and unlike the noise, next to a confirmed track
        uav = make_points(track[None], (MEAN + [14.0, 22.0, 0.0, 14.0, 13.5])[None], doppler=6.0)
        refits.append(up.observe(np.concatenate([f, uav]), stamp_s=0.64 * k, confirmed_positions=[track]))
    assert any(refits) and len(up.buffer) == 100
    assert all(np.linalg.norm(np.stack([b["x"], b["y"], b["z"]], 1) - track, axis=1).min() > 15 for b in up.buffer)
    # the UAV never entered the fingerprint: a UAV point there is still kept
    assert model.filter(make_points(track[None], (MEAN + [14.0, 22.0, 0.0, 14.0, 13.5])[None]))[0]
