"""Scene and noise model of the off-grid ISAC imager: the paper's UAV count,
spacing and noise power per CSI element (Sec. V-A, V-C)."""
import itertools

import numpy as np
import pytest

from sense_nodes.core.imaging.geometry import (EARLIER_SCENE_MODEL, ImagingConfig, config_3d,
                                               config_earlier, dbm_to_watt, n_measurements)
from sense_nodes.core.imaging.targets import csi_snr, measure, sample_scene, sample_voxels


def _grid_distances(cfg, voxels):
    idx = np.stack(np.unravel_index(voxels, cfg.grid_shape), axis=1)
    return [np.linalg.norm(a - b) for a, b in itertools.combinations(idx, 2)]


def test_default_scenes_have_exactly_six_uavs_three_voxels_apart():
    cfg = ImagingConfig()
    assert (cfg.uav_count, cfg.mean_uavs, cfg.min_separation_voxels) == ("fixed", 6.0, 3.0)
    rng = np.random.default_rng(0)
    for _ in range(200):
        s = sample_scene(cfg, rng)
        assert len(s.voxels) == len(s.sigma) == 6
        assert min(_grid_distances(cfg, s.voxels)) >= 3.0
        # off-grid positions stay inside their voxel
        centres = np.stack(np.unravel_index(s.voxels, cfg.grid_shape), axis=1)
        assert np.all(np.abs(s.positions[:, :2] - (centres * 3.0 - 58.5)) <= 1.5 + 1e-9)


def test_3d_scenes_have_twelve_uavs_three_voxels_apart():
    cfg = config_3d()
    rng = np.random.default_rng(1)
    for _ in range(20):
        s = sample_scene(cfg, rng)
        assert len(s.voxels) == 12 and min(_grid_distances(cfg, s.voxels)) >= 3.0


def test_separation_is_not_stricter_than_asked():
    # neighbours at exactly 3 voxels must occur, or the constraint would be > 3
    cfg = ImagingConfig(roi_size_m=(30.0, 30.0, 0.0))
    rng = np.random.default_rng(2)
    dists = np.concatenate([_grid_distances(cfg, sample_voxels(cfg, rng, 6)) for _ in range(200)])
    assert dists.min() == pytest.approx(3.0)


def test_earlier_model_is_kept_as_an_option():
    cfg = config_earlier()
    rng = np.random.default_rng(3)
    counts = [len(sample_scene(cfg, rng).voxels) for _ in range(400)]
    assert 0 in counts and max(counts) > 6 and abs(np.mean(counts) - 6) < 0.5
    assert cfg.noise_var == pytest.approx(25 * ImagingConfig().noise_var)


def test_a_config_dict_without_the_model_keys_is_the_earlier_model():
    d = ImagingConfig().to_dict()
    for k in EARLIER_SCENE_MODEL:
        d.pop(k)
    assert ImagingConfig.from_dict(d) == config_earlier()
    assert ImagingConfig.from_dict(ImagingConfig().to_dict()) == ImagingConfig()


@pytest.mark.parametrize("pn_dbm", [-120.0, -110.0, -100.0])
def test_noise_power_per_csi_element_is_pn_over_pt(pn_dbm):
    cfg = ImagingConfig(pn_dbm=pn_dbm)
    expect = dbm_to_watt(pn_dbm) / dbm_to_watt(cfg.pt_dbm)     # P_n per element, A at P_t
    assert cfg.noise_var == pytest.approx(expect)
    rng = np.random.default_rng(4)
    empty = [sample_scene(cfg, rng, n_uavs=0) for _ in range(40)]
    y = measure(cfg, empty, rng).astype(np.complex128)
    assert y.shape == (40, n_measurements(cfg))
    assert np.mean(np.abs(y) ** 2) == pytest.approx(expect, rel=0.01)
    # circular: half the power in each quadrature
    assert np.mean(y.real ** 2) == pytest.approx(expect / 2, rel=0.02)


def test_paper_setting_is_14_db_less_noisy_than_the_earlier_one():
    paper, earlier = csi_snr(ImagingConfig(), n=50), csi_snr(config_earlier(), n=50)
    assert paper["noise_w"] == pytest.approx(ImagingConfig().noise_var, rel=0.01)
    assert 10 < paper["snr_db"] - earlier["snr_db"] < 18


def test_impossible_spacing_is_an_error():
    cfg = ImagingConfig(roi_size_m=(9.0, 9.0, 0.0))        # 3 x 3 voxels hold one UAV 3 apart
    with pytest.raises(ValueError, match="cannot place"):
        sample_voxels(cfg, np.random.default_rng(0), 2, tries=5)
    with pytest.raises(ValueError, match="uav_count"):
        ImagingConfig(uav_count="sometimes")
    with pytest.raises(ValueError, match="whole number"):
        ImagingConfig(mean_uavs=5.5)


def test_eval_says_which_contract_targets_are_met(capsys):
    from sense_nodes.eval.imaging_eval import target_lines
    out = target_lines({"net9_mse": 0.0032, "net10_dr_pct": 98.0, "net10_far_pct": 3.22})
    assert out["net9_mse_target_met"] is False and out["net10_dr_pct_target_met"] is True
    assert out["net10_far_pct_target_met"] is True and out["sp_dr_pct_target_met"] is None
    text = capsys.readouterr().out
    assert "net9_mse: ours 0.0032 vs paper 0.0009" in text and "NOT met" in text
    assert "sp_dr_pct: ours - vs paper 46.52 (>= needed): not measured" in text
