"""BSense trajectory level (paper Section 3.4.1): angle-safe IMM-UKF over CV
and CTRV, Doppler in the measurement, confirmation and deletion."""
import numpy as np
import pytest

from sense_nodes.core.bsense.clustering import Objects
from imm_reference import filterpy_imm
from sense_nodes.core.bsense.imm_ukf import (IMM, ORIGIN, BatchIMM, fx_ctrv, fx_cv, hx, measurement_covs, mix,
                                             state_from, velocity_cov, velocity_of, wrap)
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
    imm = IMM(state_from(p, v), np.diag([4, 4, 4, 0.05, 0.05, 1, 0.01]))
    for k in range(60):
        p = p + v * DT
        v = np.array([-8.0, 0.3 * (-1) ** (k // 10), 0.0])   # heading wobbles across +-pi
        imm.predict()
        imm.update(np.r_[p + rng.normal(0, 2, 3), range_rate(p, v)], np.diag([4.0, 4.0, 4.0, 0.09]))
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
    turning-model probability."""
    tr = Tracker()
    for k in range(12):
        a = 0.1 * k * DT
        p = np.array([500 + 80 * np.cos(a), 80 * np.sin(a), 90.0])
        v = 8.0 * np.array([-np.sin(a), np.cos(a), 0.0])
        tr.step(one(p, range_rate(p, v)), confidence=np.array([[0.1 * k, 0.05 * k]]))
    h = np.array(tr.tracks[0].history)
    assert h.shape == (12, len(OBS_FIELDS))
    cs, cv, mu = (OBS_FIELDS.index(f) for f in ("c_s", "c_v", "mu_ct"))
    assert np.allclose(h[:, cs], 0.1 * np.arange(12)) and np.allclose(h[:, cv], 0.05 * np.arange(12))
    assert np.all(h[:2, mu] == 0.5)                      # no filter before the second detection
    assert np.all((h[2:, mu] > 0) & (h[2:, mu] < 1)) and np.ptp(h[2:, mu]) > 0
    with pytest.raises(ValueError, match="confidence has 2 rows for 1 objects"):
        Tracker().step(one([300.0, 0, 50], 0.0), confidence=np.zeros((2, 2)))


def test_array_filters_match_the_filterpy_imm():
    """All tracks' IMM-UKFs in arrays give filterpy's UKF-under-IMM numbers
    (angle-safe hooks plugged in), step by step, for tracks of different
    ages side by side, and the single filter (a batch of one) too."""
    r = np.random.default_rng(5)
    starts = [(np.array([590.0, 0.0, 90.0]), np.array([0.0, 7.2, 0.0])),
              (np.array([300.0, 200.0, 60.0]), np.array([-7.0, 0.0, 0.0])),
              (np.array([-250.0, -400.0, 120.0]), np.array([-3.0, 6.0, 0.5]))]
    P0 = np.diag([4.0, 4.0, 4.0, 0.3, 0.05, 4.0, 0.01])
    bank, ref = BatchIMM(DT), {}
    single = IMM(state_from(*starts[0]), P0, DT)
    for k in range(40):
        if k in (0, 7, 15):                               # tracks start at different frames
            key = (0, 7, 15).index(k)
            x0 = state_from(*starts[key])
            bank.add([key], x0, P0)
            ref[key] = filterpy_imm(x0, P0, DT)
        bank.predict()
        single.predict()
        keys = sorted(ref)
        Z = []
        for key in keys:
            p0, v = starts[key]
            p = p0 + v * DT * k + 3 * np.array([np.sin(0.1 * k), np.cos(0.13 * k), 0.0])
            Z.append(np.r_[p + r.normal(0, 2, 3), range_rate(p, v) + r.normal(0, 0.2)])
        Z = np.array(Z)
        R = measurement_covs(Z[:, :3])
        bank.update(keys, Z, R)
        single.update(Z[0], R[0])
        for key, z, Rk in zip(keys, Z, R):
            imm = ref[key]
            imm.predict()
            for f in imm.filters:
                f.R = Rk
            imm.update(z)
            row = bank.rows([key])[0]
            assert np.allclose(wrap(bank.xc[row] - imm.x), 0, atol=1e-6), (k, key)
            assert np.allclose(bank.Pc[row], imm.P, atol=1e-6) and np.allclose(bank.mu[row], imm.mu, atol=1e-6)
        assert np.allclose(single.x, ref[0].x, atol=1e-6) and np.allclose(single.mu, ref[0].mu, atol=1e-6)


def test_bank_keeps_and_finds_tracks_by_key():
    """Tracks added together or one by one hold the same numbers; dropping
    some leaves the others' rows reachable by their keys."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3, 7)) * [100, 100, 50, 1, 0.2, 5, 0.05]
    A = rng.normal(size=(3, 7, 7))
    P = A @ np.swapaxes(A, 1, 2) + np.eye(7)
    one, many = BatchIMM(), BatchIMM()
    for key, x, p in zip((4, 9, 11), X, P):
        one.add([key], x, p)
    many.add([4, 9, 11], X, P)
    for k in BatchIMM.FIELDS:
        np.testing.assert_array_equal(getattr(one, k), getattr(many, k), err_msg=k)
    many.predict()
    kept = many.xc[many.rows([11, 4])].copy()
    many.keep([11, 4])
    assert 9 not in many and len(many) == 2
    np.testing.assert_array_equal(many.xc[many.rows([11, 4])], kept)


def test_velocity_covariance_follows_the_state_covariance():
    """The Cartesian velocity's covariance (reported on each track) matches
    the spread of velocities drawn from the state's distribution."""
    rng = np.random.default_rng(2)
    x = state_from([400.0, 100.0, 80.0], [6.0, -3.0, 1.0])
    P = np.diag([1.0, 1.0, 1.0, 0.02, 0.01, 0.25, 0.001])
    draws = velocity_of(rng.multivariate_normal(x, P, 200_000))
    assert np.allclose(velocity_cov(x, P), np.cov(draws.T), atol=0.02)


def test_a_role_can_be_replaced_without_touching_the_tracker():
    """The tracker's rules are small role objects: a confirmation rule that
    asks for two hits confirms a track one frame earlier, nothing else changes."""
    from sense_nodes.core.bsense.track_roles import StreakConfirmation
    p, v = np.array([400.0, 50.0, 70.0]), np.array([5.0, 0.0, 0.0])
    runs = {}
    for k_hits in (3, 2):
        tr = Tracker()
        tr.confirmation = StreakConfirmation(k_hits)
        runs[k_hits] = [tr.step(one(p + v * DT * k, range_rate(p, v)))[0] for k in range(4)]
    assert [s.confirmed for s in runs[3]] == [False, False, True, True]
    assert [s.confirmed for s in runs[2]] == [False, True, True, True]
    assert all(np.array_equal(a.state, b.state) for a, b in zip(runs[3], runs[2]))
