"""BSense trajectory level (paper Section 3.4.1): angle-safe IMM-UKF over CV
and CTRV, Doppler in the measurement, confirmation and deletion."""
import numpy as np
import pytest

from sense_nodes.core.bsense.clustering import Objects
from sense_nodes.core.bsense.imm_ukf import (ORIGIN, fx_ctrv, fx_cv, hx, make_imm, mix, state_from,
                                             velocity_of, wrap)
from sense_nodes.core.bsense.tracker import OBS_FIELDS, Tracker, TrackerConfig

DT = 0.64


def one(pos, dop):
    return Objects(np.asarray(pos, float)[None], np.array([dop]), np.zeros((1, 5)), np.array([1]),
                   np.zeros(1, np.int64))


def range_rate(p, v):
    d = p - ORIGIN
    return float(d @ v / np.linalg.norm(d))


def test_models_and_doppler_measurement():
    x = state_from([500.0, 0.0, 80.0], [0.0, 8.0, 1.0])
    assert np.allclose(velocity_of(x), [0.0, 8.0, 1.0])
    assert np.allclose(fx_cv(x, DT)[:3], [500.0, 8.0 * DT, 80.0 + DT])
    x[6] = 0.1                                            # turning left at 0.1 rad/s
    y = fx_ctrv(x, DT)
    assert y[3] == pytest.approx(x[3] + 0.1 * DT)
    assert np.linalg.norm(y[:2] - x[:2]) == pytest.approx(np.hypot(8, 0) * DT, rel=1e-2)
    assert y[2] == pytest.approx(80.0 + DT)               # constant vertical speed
    assert hx(x)[3] == pytest.approx(range_rate(x[:3], velocity_of(x)))
    batch = np.stack([x, x])                              # the vectorised forms agree
    assert np.allclose(fx_ctrv(batch, DT)[1], y) and np.allclose(hx(batch)[0], hx(x))


def test_heading_across_pi_mixes_correctly():
    a = state_from([0.0, 0.0, 50.0], [-8.0, 0.0, 0.0])
    b = a.copy()
    a[3], b[3] = np.radians(179.0), np.radians(-179.0)
    P = np.eye(7) * 0.01
    x, Pm = mix(np.stack([a, b]), np.stack([P, P]), np.array([0.5, 0.5]))
    assert abs(wrap(x[3] - np.pi)) < 1e-9                 # 180 deg, not the plain average 0 deg
    assert Pm[3, 3] < 0.01 + np.radians(1.0) ** 2 + 1e-9  # spread of +-1 deg, not +-179 deg
    # the whole IMM flying due west through the +-pi seam stays on course
    rng = np.random.default_rng(0)
    p, v = np.array([600.0, 100.0, 80.0]), np.array([-8.0, 0.3, 0.0])
    imm = make_imm(state_from(p, v), np.diag([4, 4, 4, 0.05, 0.05, 1, 0.01]))
    for k in range(60):
        p = p + v * DT
        v = np.array([-8.0, 0.3 * (-1) ** (k // 10), 0.0])   # heading wobbles across +-pi
        for f in imm.filters:
            f.R = np.diag([4.0, 4.0, 4.0, 0.09])
        imm.predict()
        imm.update(np.r_[p + rng.normal(0, 2, 3), range_rate(p, v)])
        assert abs(wrap(imm.x[3] - np.pi)) < 0.3
    assert np.linalg.norm(imm.x[:3] - p) < 5.0
    assert imm.x[5] == pytest.approx(8.0, abs=1.0)


def test_turning_target_keeps_one_track():
    tr = Tracker()
    rng = np.random.default_rng(1)
    w, r0 = 8.0 / 80.0, 80.0                              # 8 m/s on an 80 m circle
    ids, errs = set(), []
    for k in range(160):
        a = w * k * DT
        p = np.array([500 + r0 * np.cos(a), r0 * np.sin(a), 90.0])
        v = 8.0 * np.array([-np.sin(a), np.cos(a), 0.0])
        if k % 17 == 5:                                   # now and then the UAV returns no point
            states = tr.step(Objects.empty())
        else:
            states = tr.step(one(p + rng.normal(0, 2.0, 3), range_rate(p, v) + rng.normal(0, 0.2)))
        conf = [s for s in states if s.confirmed]
        ids |= {s.id for s in conf}
        if conf and k > 10:
            errs.append(np.linalg.norm(conf[0].position - p))
    assert ids == {1}
    assert np.mean(errs) < 4.0
    s = conf[0]
    assert s.position_cov.shape == (3, 3) and s.covariance.shape == (7, 7)
    assert s.model_probs.sum() == pytest.approx(1.0) and s.hits > 140 and s.age == 160


def test_confirmation_after_k_hits_and_deletion_after_misses():
    tr = Tracker(TrackerConfig(confirm_hits=3, max_misses=2))
    p = np.array([400.0, 50.0, 70.0])
    v = np.array([5.0, 0.0, 0.0])
    conf = []
    for k in range(4):
        states = tr.step(one(p + v * DT * k, range_rate(p, v)))
        conf.append(states[0].confirmed)
    assert conf == [False, False, True, True]
    assert tr.step(Objects.empty())[0].misses == 1
    assert len(tr.step(Objects.empty())) == 1
    assert tr.step(Objects.empty()) == []                 # third miss: deleted
    # a one-off detection is dropped at its first miss and never confirmed
    tr2 = Tracker()
    assert not tr2.step(one([300.0, 0, 50], 0.0))[0].confirmed
    assert tr2.step(Objects.empty()) == []


def test_observations_carry_confidences_and_turn_probability():
    """TrajFormer reads each observation's object confidences and the IMM's
    turning-model probability; both filter forms record the same."""
    hist = {}
    for batched in (False, True):
        tr = Tracker(TrackerConfig(batched=batched))
        for k in range(12):
            a = 0.1 * k * DT
            p = np.array([500 + 80 * np.cos(a), 80 * np.sin(a), 90.0])
            v = 8.0 * np.array([-np.sin(a), np.cos(a), 0.0])
            tr.step(one(p, range_rate(p, v)), confidence=np.array([[0.1 * k, 0.05 * k]]))
        hist[batched] = np.array(tr.tracks[0].history)
    h = hist[True]
    assert h.shape == (12, len(OBS_FIELDS))
    cs, cv, mu = (OBS_FIELDS.index(f) for f in ("c_s", "c_v", "mu_ct"))
    assert np.allclose(h[:, cs], 0.1 * np.arange(12)) and np.allclose(h[:, cv], 0.05 * np.arange(12))
    assert np.all(h[:2, mu] == 0.5)                      # no filter before the second detection
    assert np.all((h[2:, mu] > 0) & (h[2:, mu] < 1)) and np.ptp(h[2:, mu]) > 0
    assert np.allclose(hist[False], h, atol=1e-6)
    with pytest.raises(ValueError, match="confidence has 2 rows for 1 objects"):
        Tracker().step(one([300.0, 0, 50], 0.0), confidence=np.zeros((2, 2)))


def test_batched_filters_match_the_filterpy_imm():
    """The array form of all tracks' IMM-UKFs gives the filterpy IMM's numbers."""
    rng = np.random.default_rng(5)
    runs = {}
    for batched in (False, True):
        tr = Tracker(TrackerConfig(batched=batched))
        r = np.random.default_rng(5)
        out = []
        for k in range(40):
            a = 0.08 * k * DT
            ps = [np.array([500 + 90 * np.cos(a), 90 * np.sin(a), 90.0]), np.array([300.0 - 7 * DT * k, 200.0, 60.0])]
            vs = [7.2 * np.array([-np.sin(a), np.cos(a), 0.0]), np.array([-7.0, 0.0, 0.0])]
            pos = np.array([p + r.normal(0, 2, 3) for p in ps])
            dop = np.array([range_rate(p, v) for p, v in zip(ps, vs)])
            states = tr.step(Objects(pos, dop, np.zeros((2, 5)), np.ones(2, np.int64), np.arange(2)))
            out.append([(s.id, s.state.copy(), s.model_probs.copy()) for s in states])
        runs[batched] = out
    del rng
    for a, b in zip(runs[False], runs[True]):
        assert [s[0] for s in a] == [s[0] for s in b]
        for sa, sb in zip(a, b):
            assert np.allclose(sa[1], sb[1], atol=1e-6)
            assert np.allclose(sa[2], sb[2], atol=1e-6)


def test_batch_add_many_matches_one_by_one():
    """New tracks of a frame go into the bank in one call; the bank is the
    same as after adding them one at a time."""
    from sense_nodes.core.bsense.imm_batch import BatchIMM
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3, 7)) * [100, 100, 50, 1, 0.2, 5, 0.05]
    A = rng.normal(size=(3, 7, 7))
    P = A @ np.swapaxes(A, 1, 2) + np.eye(7)
    one, many = BatchIMM(), BatchIMM()
    rows = [one.add(x, p) for x, p in zip(X, P)]
    assert list(many.add_many(X, P)) == rows == [0, 1, 2]
    for k in ("x", "P", "mu", "omega", "sig", "xc", "Pc"):
        np.testing.assert_array_equal(getattr(one, k), getattr(many, k), err_msg=k)
