"""The gridless imager: analytic steering derivatives, exact recovery of
noiseless scenes on and off the grid, nothing found in an empty scene, and a
voxel image the metrics can score."""
import numpy as np
import pytest

from sense_nodes.core.imaging.geometry import ImagingConfig, config_3d, voxel_centres
from sense_nodes.core.imaging.gridless import GridlessImager
from sense_nodes.core.imaging.sensing_matrix import steering_vectors
from sense_nodes.core.imaging.steering import SteeringModel
from sense_nodes.core.imaging.targets import label_image, measure, sample_scene
from sense_nodes.eval.imaging_metrics import evaluate_images


@pytest.fixture(scope="module")
def imager_2d():
    return GridlessImager(ImagingConfig())


@pytest.mark.parametrize("cfg", [ImagingConfig(), config_3d(n_subcarriers=2), ImagingConfig(mode="B")],
                         ids=["2d", "3d-2-subcarriers", "mode-b"])
def test_analytic_derivatives_match_finite_differences(cfg):
    model = SteeringModel(cfg)
    rng = np.random.default_rng(0)
    P = rng.uniform(-40, 40, (3, model.dims))
    if model.dims == 3:
        P[:, 2] += cfg.roi_height_m
    B, dB = model.vectors(P, grad=True)
    # the same columns as the sensing matrix's steering vectors
    np.testing.assert_allclose(B, steering_vectors(cfg, model.to_3d(P)), rtol=0, atol=1e-6 * np.abs(B).max())
    e = 1e-6
    for i in range(model.dims):
        up, down = P.copy(), P.copy()
        up[:, i] += e
        down[:, i] -= e
        fd = (model.vectors(up) - model.vectors(down)) / (2 * e)
        assert np.abs(fd - dB[i]).max() < 1e-5 * np.abs(dB[i]).max()


@pytest.mark.parametrize("off_grid", [False, True], ids=["on-grid", "off-grid"])
def test_noiseless_scenes_are_recovered_to_one_centimetre(imager_2d, off_grid):
    cfg = imager_2d.cfg
    rng = np.random.default_rng(11)
    for _ in range(3):
        scene = sample_scene(cfg, rng, off_grid=off_grid)
        y = measure(cfg, [scene], None, noise=False)[0]
        res = imager_2d.solve(y)
        assert len(res.gains) == len(scene.sigma)
        d = np.linalg.norm(res.positions[:, None, :] - scene.positions[None, :, :], axis=-1)
        assert d.min(axis=0).max() < 0.01
        np.testing.assert_allclose(np.sort(np.abs(res.gains)), np.sort(scene.sigma), rtol=1e-3)


def test_the_model_order_rule_finds_nothing_in_an_empty_scene(imager_2d):
    cfg = imager_2d.cfg
    rng = np.random.default_rng(5)
    empty = [sample_scene(cfg, rng, n_uavs=0) for _ in range(5)]
    for y in measure(cfg, empty, rng):
        res = imager_2d.solve(y)
        assert res.order == 0 and len(res.gains) == 0
        voxels, detections = imager_2d.image(y)
        assert not voxels.any() and detections == []


def test_noisy_scene_image_is_scored_like_the_other_solvers(imager_2d):
    cfg = imager_2d.cfg
    rng = np.random.default_rng(8)
    scenes = [sample_scene(cfg, rng) for _ in range(3)]
    ys = measure(cfg, scenes, rng)
    images, dets = zip(*(imager_2d.image(y) for y in ys))
    assert images[0].shape == cfg.grid_shape and images[0].dtype == np.float32
    s = evaluate_images(np.stack([i.ravel() for i in images]), np.stack([label_image(cfg, sc) for sc in scenes]),
                        [sc.positions for sc in scenes], voxel_centres(cfg), cfg.grid_shape)
    assert s["dr_pct"] >= 90.0 and s["far_pct"] <= 10.0
    # detections are continuous positions, not voxel centres
    pos = np.array([d.position for d in dets[0]])
    assert np.abs(pos[:, None, :] - voxel_centres(cfg)[None]).sum(-1).min() > 1e-6


@pytest.mark.parametrize("mode", ["B", "C"])
def test_other_sensing_modes_run_and_find_targets(mode):
    cfg = ImagingConfig(mode=mode)
    g = GridlessImager(cfg)
    rng = np.random.default_rng(2)
    scene = sample_scene(cfg, rng)
    res = g.solve(measure(cfg, [scene], rng)[0])
    assert 1 <= len(res.gains) <= g.max_targets and np.isfinite(res.positions).all()


def test_close_uav_frames_put_one_pair_a_voxel_apart_and_positions_still_count_them():
    from sense_nodes.eval.imaging_gridless import draw, position_dr
    cfg = ImagingConfig()
    ys, labels, positions = draw(cfg, 4, 3, close_voxels=1)
    assert np.isfinite(ys).all() and ys.shape == (4, 6250)
    from sense_nodes.core.imaging.geometry import position_to_voxel
    for lab, pos in zip(labels, positions):
        v = np.stack(np.unravel_index(position_to_voxel(cfg, pos), cfg.grid_shape), 1)
        assert (lab != 0).sum() == 6 and np.abs(v[0] - v[1]).sum() == 1   # UAVs 0 and 1 adjacent
    # the image metric merges the adjacent pair into one target; positions do not
    s = evaluate_images(labels, labels, positions, voxel_centres(cfg), cfg.grid_shape)
    assert s["dr_pct"] == pytest.approx(100 * 5 / 6)
    assert position_dr(positions, positions, cfg.voxel_m) == 100.0
    assert position_dr([p + [4.0, 0, 0] for p in positions], positions, cfg.voxel_m) == 0.0


def test_eval_rows_report_every_solver_on_the_same_frames():
    from sense_nodes.eval.imaging_gridless import gridless_rows
    figs = gridless_rows(2, 1, seed=4, only={"gridless"})
    for key in ("gridless_dr_pct", "gridless_far_pct", "gridless_ospa", "gridless_pos_rmse_m",
                "gridless_sp_dr_pct", "gridless_truth_image_dr_pct", "gridless_pos_dr_pct"):
        assert figs[key] is not None and np.isfinite(figs[key])
    assert figs["gridless_learned_dr_pct"] is None       # no learned imager passed
    assert figs["gridless_n"] == 2 and not any(k.startswith("gridless_3d") for k in figs)
