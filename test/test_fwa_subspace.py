"""The background-nulling FWA detector and the bistatic localiser on
hand-made pairs: a static background of a few paths with fresh random
phases per scene (Eq. 27), receiver noise, and one UAV echo."""
from __future__ import annotations

import numpy as np
import pytest

from sense_nodes.core.fwa.bistatic import bistatic_range, locate, refine_delay
from sense_nodes.core.fwa.subspace import BackgroundSubspace, SubspaceDetector, pair_statistics
from sense_nodes.data.csi.cfr import dirichlet

K, N_TAPS, N_T = 512, 64, 4


def _path(rng, u=None):
    """One path's taps [64, 4, 64]: BS UPA response x CPE response x delay response."""
    ux, uy = rng.uniform(-1, 1, 2)
    bs = np.exp(1j * np.pi * (ux * np.arange(8)[:, None] + uy * np.arange(8)[None, :])).reshape(64)
    cpe = np.exp(1j * rng.uniform(0, 2 * np.pi, N_T))
    u = rng.uniform(2, 40) if u is None else u
    d = dirichlet((np.arange(N_TAPS) - u) / K, K)
    return (bs[:, None, None] * cpe[None, :, None] * d[None, None, :]).astype(np.complex64)


def _scenes(rng, paths, amps, n, noise_var, echo=None):
    """n scenes [n, 1, D]: the paths with random phases, plus noise (and the echo)."""
    out = []
    for _ in range(n):
        ph = np.exp(1j * rng.uniform(0, 2 * np.pi, len(paths)))
        t = sum(a * p_ * f for a, p_, f in zip(amps, paths, ph))
        if echo is not None:
            t = t + echo
        w = np.sqrt(noise_var / 2) * (rng.standard_normal(t.shape) + 1j * rng.standard_normal(t.shape))
        out.append((t + w).reshape(1, -1))
    return np.stack(out).astype(np.complex64)


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    paths = [_path(rng) for _ in range(12)]
    amps = 10 ** (rng.uniform(0, 3, 12) / 2)      # 30 dB of spread, the strongest far above the echo
    noise_var = 1e-2
    sub = BackgroundSubspace.fit(_scenes(rng, paths, amps, 60, noise_var), [noise_var])
    return rng, paths, amps, noise_var, SubspaceDetector(sub, N_T, N_TAPS)


def test_the_fitted_span_has_one_dimension_per_background_path(pair):
    _rng, paths, _amps, _nv, det = pair
    assert det.subspace.ranks.tolist() == [len(paths)]


def test_nulling_leaves_noise_in_an_empty_scene_and_finds_a_weak_echo(pair):
    rng, paths, amps, nv, det = pair
    empty = det.pair_stats(_scenes(rng, paths, amps, 1, nv)[0]).z[0]
    # an echo 40 dB below the strongest background path, at -13 dB per entry against the noise
    echo = 10 ** (-40 / 20) * amps.max() * _path(rng, u=17.3)
    with_uav = det.pair_stats(_scenes(rng, paths, amps, 1, nv, echo)[0])
    assert empty < 30                      # the largest of 4096 cells of unit-mean noise
    assert with_uav.z[0] > 10 * empty
    assert abs(int(with_uav.tap[0]) - 17) <= 1


def test_without_nulling_the_background_hides_the_same_echo(pair):
    rng, paths, amps, nv, det = pair
    echo = 10 ** (-40 / 20) * amps.max() * _path(rng, u=17.3)
    raw = _scenes(rng, paths, amps, 1, nv, echo)[0]
    stats = pair_statistics(raw, np.array([nv]), N_T, N_TAPS)
    assert stats.tap[0] != 17                 # the strongest cell is a background path's


def test_the_delay_fit_finds_a_fractional_delay():
    rng = np.random.default_rng(1)
    r = _path(rng, u=23.37)
    assert refine_delay(r, 23, K) == pytest.approx(23.37, abs=0.02)


def test_a_position_from_bistatic_ranges_survives_one_wrong_pair():
    b = np.array([[-50.0, 0, 100]] * 3 + [[50.0, 0, 100]] * 3)
    c = np.array([[-70.0, -60, 18], [0, 70, 18], [65, 40, 18], [-60, 60, 18], [10, -70, 18], [70, -50, 18]])
    p = np.array([12.0, -31.0, 60.0])
    ranges = bistatic_range(p, b, c)
    ranges[2] -= 80.0                          # a peak that was not the echo
    est = locate(b, c, ranges, 60.0, np.array([-80.0, -80.0]), np.array([80.0, 80.0]))
    assert np.linalg.norm(est - p) < 0.05


def test_a_missing_pair_does_not_vote():
    z = np.array([[1.0, 50.0, 2.0]])
    assert SubspaceDetector.scene_score(z)[0] == 50.0
    assert SubspaceDetector.scene_score(z, np.array([True, False, True]))[0] == 2.0


def test_too_few_scenes_are_refused():
    with pytest.raises(ValueError, match="UAV-free"):
        BackgroundSubspace.fit(np.zeros((1, 2, 8), np.complex64), [1.0, 1.0])
