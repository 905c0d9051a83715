"""Noise statistics of the simulator against the BSense paper (Sections 1 and 3)."""
import numpy as np
import pytest

from sense_nodes.data.bs_sim import library, stats
from sense_nodes.data.bs_sim.clutter import MAX_LEAK_MPS
from sense_nodes.data.bs_sim.scenario import CLUTTER, MULTIPATH, SIDELOBE, VEHICLE


@pytest.fixture(scope="module")
def walked():
    sc = library.scenario("triangle_1_r1")
    frames = [sc.frame(k) for k in range(0, 240, 2)]
    return sc, frames


def test_noise_count_and_ratio_are_paper_like(walked):
    sc, frames = walked
    counts = stats.count(sc, max_frames=120)
    noise_per_frame = counts.noise_points / counts.frames
    assert 130 <= noise_per_frame <= 210          # paper: 168.05
    assert counts.noise_points / max(counts.uav_points, 1) > 100    # paper: over 100:1


def test_clutter_doppler_leaks_up_to_3_2_mps(walked):
    _, frames = walked
    dop = np.concatenate([f.points["doppler"][f.labels["source"] == CLUTTER] for f in frames])
    assert np.abs(dop).max() <= MAX_LEAK_MPS + 1e-5
    assert np.mean(np.abs(dop) > 1.0) > 0.2       # not all near zero: hard to gate on Doppler


def test_multipath_ghosts_float_mid_air(walked):
    _, frames = walked
    z = np.concatenate([f.points["z"][f.labels["source"] == MULTIPATH] for f in frames])
    assert z.size > 100
    assert np.mean((z > 80) & (z < 330)) > 0.9    # paper: 100-300 m


def test_ghosts_draw_long_false_trajectories():
    counts = stats.count(library.scenario("uav_free_eval"), max_frames=300)   # 3 minutes
    runs = np.array(counts.runs_m)
    assert runs.max() > 300                       # paper: some hundreds of metres
    assert (runs > 200).sum() >= 5


def test_henze_zirkler_tells_gaussian_from_skewed():
    rng = np.random.default_rng(1)
    assert stats.henze_zirkler(rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))) > 0.05
    assert stats.henze_zirkler(rng.exponential(size=(300, 5))) < 0.01


def test_fingerprints_drift_over_days():
    sc = library.scenario("uav_free_calib")
    cl = sc.clutter
    reg = np.arange(cl.n_regions)
    d_day = np.abs(cl.reg_drift[reg, 1] - cl.reg_drift[reg, 0]).mean()
    d_week = np.abs(cl.reg_drift[reg, 7] - cl.reg_drift[reg, 0]).mean()
    assert d_week > 2 * d_day > 0


def test_sidelobe_ghosts_come_from_direct_echoes(walked):
    """The paper's false objects come from moving vehicles' multipath and
    sidelobes: every sidelobe ghost has a parent object, mostly a vehicle,
    and moves with its Doppler."""
    _, frames = walked
    ids = np.concatenate([f.labels["object_id"][f.labels["source"] == SIDELOBE] for f in frames])
    dop = np.concatenate([f.points["doppler"][f.labels["source"] == SIDELOBE] for f in frames])
    veh = {int(i) for f in frames for i in f.truth["id"][f.truth["object_class"] == VEHICLE]}
    assert ids.size > 100 and (ids >= 0).all()
    assert np.mean([int(i) in veh for i in ids]) > 0.9
    assert np.mean(np.abs(dop) > MAX_LEAK_MPS) > 0.3


def test_point_filter_auc_floor():
    assert stats.point_filter_auc_floor() == pytest.approx(0.8005, abs=1e-4)
    assert stats.point_filter_auc_floor(0.0, 0.0) == pytest.approx(0.5)   # removes nothing
    assert stats.point_filter_auc_floor(1.0, 0.0) == pytest.approx(1.0)   # perfect
