"""Sec. V-A metrics on hand-made images."""
import numpy as np
import pytest

from sense_nodes.eval.imaging_metrics import (detection_counts, evaluate_images, mse, ospa, ssim,
                                              voxel_counts)


def test_mse_is_eq23():
    true = np.zeros((4, 4))
    true[1, 1] = 1.0
    pred = np.zeros((4, 4))
    pred[1, 1] = 0.5
    pred[2, 2] = 0.5
    assert mse(pred, true) == pytest.approx((0.25 + 0.25) / 16)


def test_ssim_matlab_defaults():
    rng = np.random.default_rng(0)
    img = rng.random((20, 20))
    assert ssim(img, img) == pytest.approx(1.0)
    # uniform images: only the luminance term, (2ab + c1) / (a^2 + b^2 + c1)
    a, b, c1 = 0.2, 0.6, 0.01 ** 2
    assert ssim(np.full((10, 10), b), np.full((10, 10), a)) == pytest.approx(
        (2 * a * b + c1) / (a * a + b * b + c1))
    # an all-zero estimate of a sparse image loses only near the targets
    true = np.zeros((40, 40))
    true[10, 10] = true[30, 25] = 1.0
    s0 = ssim(np.zeros_like(true), true)
    assert 0.5 < s0 < 1.0
    assert ssim(true * 0.9, true) > s0
    assert ssim(np.zeros((4, 4, 4)), np.zeros((4, 4, 4))) == pytest.approx(1.0)   # 3D


def test_ospa_uses_the_optimal_assignment_and_c3_one():
    def x(*v):
        return np.array([[u, 0.0, 0.0] for u in v])

    # greedy would pair 2 with 1.9 (0.1) and 0 with 4 (4): 4.1; optimal is 1.9 + 2 = 3.9
    assert ospa(x(0.0, 2.0), x(1.9, 4.0)) == pytest.approx(3.9 / 2)
    # one missed UAV costs c3 = 1 m: (1 + 1) / 2
    assert ospa(x(0.0), x(1.0, 50.0)) == pytest.approx(1.0)
    assert ospa(x(), x()) == 0.0
    assert ospa(x(), x(1.0)) == 50.0            # the tables' all-zero convention
    assert ospa(x(3.0), x()) == 50.0


def test_a_target_is_a_connected_group_of_voxels_not_a_voxel():
    true = np.zeros((10, 10))
    true[2, 2] = 1.0
    pred = np.zeros((10, 10))
    pred[2, 2], pred[2, 3], pred[3, 3] = 0.6, 0.3, 0.2      # one off-grid UAV's cluster
    # one detected UAV, no false alarm (a per-voxel count would give two)
    assert detection_counts(pred, true) == (1, 1, 0, 1)
    assert voxel_counts(pred, true) == (1, 1, 0, 1)
    pred[2, 2] = 0.0                                       # cluster now beside the UAV voxel
    assert detection_counts(pred, true) == (1, 1, 0, 1)    # within one voxel: detected
    assert voxel_counts(pred, true, threshold=0.1) == (0, 1, 2, 2)


def test_detection_rate_and_false_alarm_rate():
    true = np.zeros((10, 10))
    uavs = [(1, 1), (1, 6), (6, 1), (8, 8)]
    for u in uavs:
        true[u] = 1.0
    pred = np.zeros((10, 10))
    pred[1, 1] = 0.9                  # on the UAV voxel
    pred[2, 7] = 0.1                  # diagonal neighbour, on the threshold: detected
    pred[6, 3] = 0.8                  # two voxels away: a false alarm, UAV (6, 1) missed
    pred[4, 9] = 0.5                  # nowhere near a UAV: a false alarm
    pred[8, 8] = 0.09                 # below 0.1: UAV (8, 8) missed
    assert detection_counts(pred, true) == (2, 4, 2, 4)
    centres = np.stack(list(np.meshgrid(np.arange(10.0), np.arange(10.0), indexing="ij"))
                       + [np.zeros((10, 10))], axis=-1).reshape(-1, 3)
    pos = np.array([[u[0], u[1], 0.0] for u in uavs])
    m = evaluate_images(pred.reshape(1, -1), true.reshape(1, -1), [pos], centres, (10, 10))
    assert m["dr_pct"] == pytest.approx(50.0)
    assert m["far_pct"] == pytest.approx(50.0)   # false targets / all detected targets
    assert m["voxel_dr_pct"] == pytest.approx(25.0)
    assert m["voxel_far_pct"] == pytest.approx(200 / 3)


def test_one_cluster_detects_at_most_one_uav():
    true = np.zeros((6, 6))
    true[2, 2] = true[2, 3] = 1.0      # two UAVs in adjacent voxels
    pred = np.zeros((6, 6))
    pred[2, 2] = pred[2, 3] = 0.9      # ... merged into one detected target
    assert detection_counts(pred, true) == (1, 2, 0, 1)
    # two separate targets each detect one; matching beats a greedy first pick:
    # target A touches both UAVs, target B only the second
    true = np.zeros((8, 8))
    true[3, 3] = true[3, 5] = 1.0
    pred = np.zeros((8, 8))
    pred[3, 4] = 0.9                   # A: beside both UAVs
    pred[3, 6] = 0.9                   # B: beside (3, 5) only
    assert detection_counts(pred, true) == (2, 2, 0, 2)


def test_ospa_places_a_target_at_its_weighted_centroid():
    centres = np.stack([np.arange(5.0) * 3, np.zeros(5), np.zeros(5)], axis=1)
    true = np.zeros(5)
    true[1] = 1.0
    pred = np.array([0.0, 0.6, 0.2, 0.0, 0.0])
    m = evaluate_images(pred[None], true[None], [np.array([[3.5, 0.0, 0.0]])], centres, (5,))
    assert m["ospa"] == pytest.approx(abs((0.6 * 3 + 0.2 * 6) / 0.8 - 3.5))


def test_mismatched_sizes_are_an_error():
    with pytest.raises(ValueError):
        mse(np.zeros(4), np.zeros(5))
