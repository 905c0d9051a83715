"""BSense object level (paper Section 3.3): Eq. 12 clustering, Kuhn-Munkres
matching, spatial / velocity consistency and confidences (Eq. 13-16)."""
import numpy as np
import pytest

from sense_nodes.core.bsense.clustering import Objects, cluster, dbscan_labels
from sense_nodes.core.bsense.object_filter import (BS_ORIGIN, ObjectFilter, ObjectFilterConfig, choose_keep_rule,
                                                   confidence_thresholds, match_objects, radial_velocity)
from sense_nodes.data.cloud_codec import BS_POINT_DTYPE

DT = 0.64


def objects_at(pos, doppler):
    pos = np.asarray(pos, float).reshape(-1, 3)
    n = len(pos)
    return Objects(pos, np.asarray(doppler, float).reshape(n), np.zeros((n, 5)), np.ones(n, np.int64),
                   np.arange(n))


def test_doppler_separates_adjacent_objects_and_single_points_are_kept():
    pos = np.array([[500.0, 0, 80], [501.0, 0.5, 80], [503.0, 0, 80.5],    # object A, 5 m/s
                    [504.5, 0.5, 80], [505.5, 0.0, 80.5],                  # object B 2 m away, -6 m/s
                    [700.0, 50, 60]])                                      # a lone point
    dop = np.array([5.0, 5.1, 4.9, -6.0, -6.1, 2.0])
    lab = dbscan_labels(pos, dop)
    assert lab[0] == lab[1] == lab[2]
    assert lab[3] == lab[4] != lab[0]
    assert lab[5] not in lab[:5]
    same = dbscan_labels(pos, np.full(6, 5.0))            # without Doppler they merge
    assert len(set(same[:5])) == 1
    pts = np.zeros(6, BS_POINT_DTYPE)
    pts["x"], pts["y"], pts["z"], pts["doppler"] = pos[:, 0], pos[:, 1], pos[:, 2], dop
    objs = cluster(pts, keep=np.array([1, 1, 1, 1, 1, 0], bool))
    assert len(objs) == 2 and objs.point_cluster[5] == -1
    assert sorted(objs.n_points) == [2, 3]


def test_kuhn_munkres_beats_greedy_and_respects_the_gate():
    prev = np.array([[0.0, 0, 0], [10.0, 0, 0]])
    cur = np.array([[4.0, 0, 0], [-7.0, 0, 0], [100.0, 0, 0]])
    m = match_objects(prev, cur, 15.0)
    # optimal: cur0->prev1 (6), cur1->prev0 (7) = 13 < cur0->prev0 (4) + cur1->prev1 (17)
    assert list(m) == [1, 0, -1]


def test_radial_velocity_eq14():
    p0 = np.array([[300.0, 400.0, 23.0]])              # 500 m from the antenna
    p1 = p0 * [1.0064, 1.0064, 1.0] + [0, 0, 0]         # 3.2 m further out
    assert radial_velocity(p1, p0, DT, BS_ORIGIN)[0] == pytest.approx(3.2 / DT, rel=1e-3)


def test_ghost_with_inconsistent_doppler_loses_velocity_confidence():
    f = ObjectFilter(ObjectFilterConfig(tau_s=0.3, tau_v=0.3, combine="and"))
    o = np.array(BS_ORIGIN)
    u = np.array([0.6, 0.8, 0.0])
    for k in range(12):
        uav = o + u * (400.0 + 5.0 * DT * k) + [0, 0, 60]          # receding at 5 m/s, Doppler 5
        ghost = o + u * (300.0 + 5.0 * DT * k) + [50, -30, 150]    # moves alike, Doppler says -8
        s = f.step(objects_at([uav, ghost], [5.0, -8.0]), DT)
    assert s.spatial.tolist() == [1.0, 1.0]                  # both spatially consistent
    assert s.velocity.tolist() == [1.0, 0.0]                 # Eq. 15 fails for the ghost
    assert s.c_v[0] > 0.6 and s.c_v[1] == 0.0
    assert s.keep.tolist() == [True, False]


def test_object_hopping_farther_than_the_gate_has_no_spatial_confidence():
    f = ObjectFilter(ObjectFilterConfig(tau_s=0.15, tau_v=0.15, max_gap=0))
    rng = np.random.default_rng(0)
    for k in range(10):
        steady = [600.0 + 3.0 * DT * k, 0.0, 80.0]
        jumpy = [300.0 + 40.0 * (k % 2), 200.0 + 40.0 * (k % 3), 120.0]
        s = f.step(objects_at([steady, jumpy], [0.0, rng.normal(0, 3)]), DT)
    assert s.c_s[0] == pytest.approx(1 - 0.9 ** 9)           # Eq. 13, lambda = 0.9: matched in frames 2-10
    assert s.c_s[1] == 0.0
    assert s.keep.tolist() == [True, False]


def test_short_gap_keeps_the_history():
    f = ObjectFilter(ObjectFilterConfig(max_gap=4))
    for k in range(8):
        s = f.step(objects_at([[600.0 + 3.0 * DT * k, 0.0, 80.0]], [3.0]), DT)
    before = s.c_s[0]
    f.step(Objects.empty(), DT)                                # one frame without the object
    s = f.step(objects_at([[600.0 + 3.0 * DT * 9, 0.0, 80.0]], [3.0]), DT)
    assert s.gap[0] == 2 and s.match[0] == -1
    assert s.c_s[0] == pytest.approx(0.9 * 0.9 * before + 0.1)
    strict = ObjectFilter(ObjectFilterConfig(max_gap=0))
    strict.step(objects_at([[600.0, 0.0, 80.0]], [3.0]), DT)
    strict.step(Objects.empty(), DT)
    assert strict.step(objects_at([[601.0, 0.0, 80.0]], [3.0]), DT).c_s[0] == 0.0


def test_thresholds_are_the_5th_percentile_of_uav_confidences():
    cs = np.linspace(0, 1, 101)
    cv = np.linspace(0, 0.5, 101)
    assert confidence_thresholds(cs, cv) == pytest.approx((0.05, 0.025))


def test_run_counts_matches_since_the_chain_started():
    f = ObjectFilter()
    runs = [f.step(objects_at([[600.0 + 3.0 * DT * k, 0.0, 80.0]], [3.0]), DT).run[0] for k in range(4)]
    assert runs == [0, 1, 2, 3]
    far = f.step(objects_at([[900.0, 0.0, 80.0]], [3.0]), DT)   # beyond the gate: a new chain
    assert far.run[0] == 0


def ramp_population(n_chains=200, length=20, n_ghosts=4000, seed=0):
    """(n, 4) C_s, C_v, run, UAV flag: UAV chains climbing Eq. 13's ramp
    with consistent Doppler, and ghosts matched once or twice in a row whose
    Doppler agrees half the time."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_chains):
        for k in range(length):
            c = 1.0 - 0.9 ** k
            rows.append((c, c, k, 1.0))
    for _ in range(n_ghosts):
        k = int(rng.integers(0, 3))
        c = 1.0 - 0.9 ** k
        rows.append((c, c if rng.random() < 0.5 else 0.0, k, 0.0))
    return np.array(rows)


def test_keep_rule_keeps_95_percent_of_uavs_with_the_fewest_other_objects():
    conf = ramp_population()
    rule = choose_keep_rule(conf)
    uav = conf[:, 3] > 0
    ok_s, ok_v = conf[:, 0] >= rule.tau_s, conf[:, 1] >= rule.tau_v
    keep = (ok_s & ok_v) if rule.combine == "and" else (ok_s | ok_v)
    assert keep[uav].mean() >= 0.95
    # the paper's rule on the same objects keeps more ghosts
    tau_s, tau_v = confidence_thresholds(conf[uav, 0], conf[uav, 1])
    paper = (conf[:, 0] >= tau_s) | (conf[:, 1] >= tau_v)
    assert keep[~uav].sum() < paper[~uav].sum()
    assert rule.combine == "and"


def test_grouped_matching_equals_one_dense_kuhn_munkres():
    """Solving each group of gated pairs on its own gives the dense assignment:
    as many matches, the same total distance."""
    from scipy.optimize import linear_sum_assignment

    from sense_nodes.core.bsense.object_filter import match_objects

    def _match_dense(prev, cur, gate):
        out = np.full(cur.shape[0], -1, np.int64)
        if prev.shape[0] == 0 or cur.shape[0] == 0:
            return out
        d = np.sqrt(((cur[:, None, :] - prev[None, :, :]) ** 2).sum(-1))
        cost = np.where(d < gate, d, 1e6)
        r, c = linear_sum_assignment(cost)
        good = cost[r, c] < 1e6
        out[r[good]] = c[good]
        return out
    rng = np.random.default_rng(7)
    for _ in range(200):
        prev = rng.uniform(0, 60, (rng.integers(0, 30), 3))
        cur = rng.uniform(0, 60, (rng.integers(0, 30), 3))
        gate = rng.uniform(3, 15, prev.shape[0])
        a, b = match_objects(prev, cur, gate), _match_dense(prev, cur, gate)
        assert (a >= 0).sum() == (b >= 0).sum()
        cost = [np.linalg.norm(cur[m >= 0] - prev[m[m >= 0]], axis=1).sum() for m in (a, b)]
        assert cost[0] == pytest.approx(cost[1])


def test_matching_tens_of_thousands_of_objects_does_not_overflow():
    """Group keys are formed as label * count: int32 labels overflowed past
    about 46,000 objects a frame."""
    from sense_nodes.core.bsense.object_filter import match_objects
    rng = np.random.default_rng(0)
    prev = rng.uniform(-3000, 3000, (50_000, 3))
    cur = prev + rng.normal(0, 1, prev.shape)
    m = match_objects(prev, cur, 15.0)
    assert (m == np.arange(len(cur))).mean() > 0.99


def test_object_ids_follow_the_match_and_a_stamp_going_back_starts_a_new_sequence():
    """The object level keeps an object's id while it matches the previous
    frame and gives new ids otherwise; a stamp going backwards (a replay
    restarted) forgets the previous frames, without reusing ids."""
    from sense_nodes.core.bsense.clustering import Objects
    from sense_nodes.core.bsense.stages import ObjectLevel

    def objs(*xs):
        pos = np.array([[x, 0.0, 50.0] for x in xs])
        return Objects(pos, np.zeros(len(xs)), np.zeros((len(xs), 5)), np.ones(len(xs), np.int64),
                       np.zeros(0, np.int64))
    level = ObjectLevel()
    a = level.score(objs(300.0, 600.0), stamp_s=10.0)
    b = level.score(objs(302.0, 900.0), stamp_s=10.64)
    assert list(a.ids) == [1, 2] and list(b.ids) == [1, 3]
    assert b.c_s[0] > 0 and b.c_s[1] == 0
    c = level.score(objs(302.0), stamp_s=5.0)              # backwards: a new sequence
    assert list(c.ids) == [4] and c.c_s[0] == 0
