"""Sec. V-A metrics on hand-made images."""
import numpy as np
import pytest

from sense_nodes.eval.imaging_metrics import (detection_counts, evaluate_images, mse, ospa, ssim)


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
    x = lambda *v: np.array([[u, 0.0, 0.0] for u in v])
    # greedy would pair 2 with 1.9 (0.1) and 0 with 4 (4): 4.1; optimal is 1.9 + 2 = 3.9
    assert ospa(x(0.0, 2.0), x(1.9, 4.0)) == pytest.approx(3.9 / 2)
    # one missed UAV costs c3 = 1 m: (1 + 1) / 2
    assert ospa(x(0.0), x(1.0, 50.0)) == pytest.approx(1.0)
    assert ospa(x(), x()) == 0.0
    assert ospa(x(), x(1.0)) == 50.0            # the tables' all-zero convention
    assert ospa(x(3.0), x()) == 50.0


def test_detection_rate_and_false_alarm_rate():
    true = np.zeros(10)
    true[[1, 3, 5, 7]] = 1.0
    pred = np.zeros(10)
    pred[[1, 3, 5]] = [0.9, 0.5, 1.2]            # 0.5 is on the threshold: detected
    pred[[0, 9]] = 0.7                           # two false alarms
    pred[7] = 0.49                               # below threshold: missed
    assert detection_counts(pred, true) == (3, 4, 2, 5)
    centres = np.stack([np.arange(10.0), np.zeros(10), np.zeros(10)], axis=1)
    m = evaluate_images(pred[None], true[None], [centres[[1, 3, 5, 7]]], centres, (10,))
    assert m["dr_pct"] == pytest.approx(75.0)
    assert m["far_pct"] == pytest.approx(40.0)   # wrong / all detections
    assert m["ospa"] == pytest.approx((0 + 0 + 0 + 2 + 1) / 5)   # 7->9 is 2 m, one extra


def test_mismatched_sizes_are_an_error():
    with pytest.raises(ValueError):
        mse(np.zeros(4), np.zeros(5))
