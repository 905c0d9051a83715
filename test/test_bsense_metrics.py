"""BSense metrics on hand-made cases whose answers are known."""
import numpy as np
import pytest

from sense_nodes.eval import bsense_metrics as m


def test_point_level_rates_follow_eq_17():
    uav = np.array([[100.0, 0, 50]])
    xyz = np.array([[100, 0, 50], [105, 0, 50], [300, 0, 50], [400, 0, 50], [500, 0, 50]], float)
    keep = np.array([True, False, False, False, True])   # lost 1 of 2 UAV points, removed 2 of 3 noise
    c = m.PointCounts()
    c.add(xyz, keep, uav)
    assert (c.uav_before, c.uav_after, c.noise_before, c.noise_after) == (2, 1, 3, 1)
    assert c.uav_lost_pct == pytest.approx(50.0)
    assert c.noise_removed_pct == pytest.approx(200 / 3)


def test_point_10_m_rule_is_inclusive_and_a_uav_free_frame_has_no_uav_points():
    assert m.uav_point_mask([[10.0, 0, 0], [10.01, 0, 0]], [[0.0, 0, 0]]).tolist() == [True, False]
    assert not m.uav_point_mask([[0.0, 0, 0]], np.zeros((0, 3))).any()


def test_object_matching_is_one_to_one_with_a_10_m_gate():
    c = m.DetectionCounts()
    # two detections near one UAV: one TP, one FP; a far detection: FP; a second UAV unmatched: FN
    d = c.add([[0, 0, 0], [3, 0, 0], [500, 0, 0]], [[1, 0, 0], [200, 0, 0]])
    assert (c.tp, c.fp, c.fn) == (1, 2, 1)
    assert d.tolist() == [1.0]
    assert c.recall_pct == 50.0 and c.precision_pct == pytest.approx(100 / 3)
    assert c.false_per_frame == 2.0 and c.mean_error_m == 1.0


def test_f1_is_the_harmonic_mean_and_empty_frames_count():
    c = m.DetectionCounts()
    for _ in range(3):
        c.add([[0, 0, 0]], [[4, 0, 0]])
    c.add(np.zeros((0, 3)), [[0, 0, 0]])          # a miss
    c.add([[900, 0, 0]], np.zeros((0, 3)))        # a false detection in a UAV-free frame
    assert (c.tp, c.fp, c.fn, c.frames) == (3, 1, 1, 5)
    assert c.f1_pct == pytest.approx(75.0)
    assert c.fp_frame_rate_pct == pytest.approx(20.0)


def test_gospa_terms():
    r = m.gospa([[0, 0, 0], [1000, 0, 0]], [[3, 4, 0], [0, 500, 0]], c=20, p=1)
    # one match at 5 m; one missed and one false at c/2 each
    assert r["localisation"] == pytest.approx(5.0)
    assert r["missed"] == 10.0 and r["false"] == 10.0 and r["total"] == pytest.approx(25.0)
    assert m.gospa(np.zeros((0, 3)), np.zeros((0, 3)))["total"] == 0.0


def test_hota_rewards_one_consistent_id_over_an_id_switch():
    gt = [(np.array([1]), np.array([[100.0 + 5 * k, 0, 50]]), None, None) for k in range(20)]
    steady = [(g, x, np.array([7]), x + 1.0) for g, x, _, _ in gt]
    switch = [(g, x, np.array([7 if k < 10 else 8]), x + 1.0) for k, (g, x, _, _) in enumerate(gt)]
    h1, h2 = m.hota(steady), m.hota(switch)
    assert h1["HOTA"] > 0.85
    assert h2["AssA"] < h1["AssA"] and h2["HOTA"] < h1["HOTA"]
    assert h2["DetA"] == pytest.approx(h1["DetA"])


def test_similarity_scale_grows_with_range():
    near = m.range_similarity([[105.0, 0, 0]], [[100.0, 0, 0]])[0, 0]
    far = m.range_similarity([[905.0, 0, 0]], [[900.0, 0, 0]])[0, 0]
    assert 0 < near < far < 1


def test_range_bands_split_counts_by_true_range():
    rb = m.RangeBands()
    rb.add([[150, 0, 50]], [[152, 0, 50]])
    rb.add(np.zeros((0, 3)), [[850, 0, 50]])
    rb.add([[450, 0, 50]], np.zeros((0, 3)))
    assert rb.bands[100].tp == 1 and rb.bands[800].fn == 1 and rb.bands[400].fp == 1


def test_source_tally_names_the_false_objects_and_outputs():
    from sense_nodes.eval.bsense_metrics import SourceTally
    names = {10: "clutter", 11: "multipath", 1: "uav"}
    src = np.array([10, 10, 11, 1, 11])
    cluster = np.array([0, 0, 0, 1, -1])           # object 0: two clutter, one multipath points
    objs = np.array([[100.0, 0, 50], [500.0, 0, 100]])
    truth = np.array([[500.0, 0, 102]])            # object 1 is the UAV
    t = SourceTally()
    t.add(src, cluster, objs, np.array([True, True]), np.array([[100.0, 0, 51], [300.0, 0, 0]]),
          np.array([0, -1]), truth, names)
    t.add(src, cluster, objs, np.array([False, True]), np.zeros((0, 3)), np.zeros(0, int), truth, names)
    f = t.figures()
    assert f["false_objects_per_frame_clutter"] == 0.5          # one false object kept in two frames
    assert "false_objects_per_frame_uav" not in f                # the UAV object is not false
    assert f["false_outputs_pct_clutter"] == 50.0 and f["false_outputs_pct_coasting"] == 50.0
