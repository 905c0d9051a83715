"""Physics of the off-grid ISAC imager: A against Eq. 11, PSF, SP, A^H y."""
import cmath
import math

import numpy as np
import pytest

from sense_nodes.core.imaging.backprojection import back_project
from sense_nodes.core.imaging.channel import cascaded_channel
from sense_nodes.core.imaging.geometry import (ImagingConfig, antenna_positions, measurement_pairs,
                                               n_measurements, subcarrier_wavelengths,
                                               voxel_centres)
from sense_nodes.core.imaging.psf import centre_voxel, max_sidelobe, psf_matrix, psf_row
from sense_nodes.core.imaging.sensing_matrix import build_sensing_matrix
from sense_nodes.core.imaging.subspace_pursuit import subspace_pursuit
from sense_nodes.core.imaging.targets import SIGMA_REF, Scene, label_image, measure


def small(**kw):
    base = dict(n0=3, roi_size_m=(30.0, 30.0, 0.0), voxel_m=3.0, n_subcarriers=2,
                bandwidth_hz=40e6)
    base.update(kw)
    return ImagingConfig(**base)


def test_sensing_matrix_matches_eq11_evaluated_directly():
    cfg = small()
    S = build_sensing_matrix(cfg)
    assert S.A.shape == (n_measurements(cfg), 100) and S.A.dtype == np.complex64
    ants, lams, vox = antenna_positions(cfg), subcarrier_wavelengths(cfg), voxel_centres(cfg)
    kappa = cfg.wavelength0 * math.sqrt(cfg.gain) / math.sqrt(4 * math.pi)
    na = cfg.n_antennas
    for v in (0, 37, 99):
        row = 0
        for b1, b2 in measurement_pairs(cfg):
            for lam in lams:
                for t in range(na):
                    for r in range(na):
                        d1 = math.dist(ants[b1][t], vox[v])
                        d2 = math.dist(ants[b2][r], vox[v])
                        h1 = cmath.exp(-2j * math.pi * d1 / lam) / (math.sqrt(4 * math.pi) * d1)
                        h2 = cmath.exp(-2j * math.pi * d2 / lam) / (math.sqrt(4 * math.pi) * d2)
                        expect = kappa * h1 * h2
                        assert abs(S.A[row, v] - expect) <= 1e-5 * abs(expect)
                        row += 1


def test_modes_count_the_papers_measurement_sets():
    # N_b (N_b + 1) / 2 sets in mode A (Eq. 14), bistatic only in B, monostatic in C
    assert len(measurement_pairs(small(mode="A"))) == 10
    assert len(measurement_pairs(small(mode="B"))) == 6
    assert len(measurement_pairs(small(mode="C"))) == 4
    assert n_measurements(ImagingConfig(n_subcarriers=1)) == 6250   # "6250 x 1600 per frequency"


def test_y_equals_A_sigma_for_on_grid_targets():
    cfg = small(n_subcarriers=1)
    S = build_sensing_matrix(cfg)
    vox = voxel_centres(cfg)
    idx = np.array([5, 44, 81])
    scene = Scene(positions=vox[idx], sigma=np.array([0.1, 0.12, 0.09]), voxels=idx)
    y = measure(cfg, [scene], None, noise=False)[0]
    sigma = label_image(cfg, scene) * SIGMA_REF
    np.testing.assert_allclose(y, S.A @ sigma, rtol=1e-4, atol=1e-12)
    # the first block is pair (0, 0): H of Eq. 10, row-major over (n_t, n_r)
    ants = antenna_positions(cfg)
    H = cascaded_channel(cfg, ants[0], ants[0], vox[idx], scene.sigma, subcarrier_wavelengths(cfg)[0])
    np.testing.assert_allclose(y[:cfg.n_antennas ** 2], H.reshape(-1), rtol=1e-4)


def test_psf_is_symmetric_with_unit_peak():
    cfg = small()
    S = build_sensing_matrix(cfg)
    P = psf_matrix(S.A.astype(np.complex128))
    np.testing.assert_allclose(P, P.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(P), 1.0, atol=1e-9)
    assert P.max() <= 1.0 + 1e-9
    n1 = centre_voxel(cfg)
    row = psf_row(cfg, n1)                 # blockwise, without A
    np.testing.assert_allclose(row, P[n1], atol=1e-5)
    assert np.argmax(row) == n1
    assert 0 < max_sidelobe(row, n1) < 1


def test_sidelobe_drops_with_more_antennas_and_sparse_spacing():
    # Fig. 4(a): more antennas and a larger spacing factor lower P(n1)
    def p(**kw):
        cfg = small(n_subcarriers=1, **kw)
        n1 = centre_voxel(cfg)
        return max_sidelobe(psf_row(cfg, n1), n1)
    assert p(n0=4) < p(n0=2)
    assert p(n0=3, xi=4.0) < p(n0=3, xi=1.0)


def test_subspace_pursuit_recovers_on_grid_noiseless_scene_exactly():
    cfg = small(n_subcarriers=1)
    S = build_sensing_matrix(cfg)
    vox = voxel_centres(cfg)
    idx = np.array([11, 47, 88])
    sig = np.array([0.1, 0.11, 0.095])
    y = measure(cfg, [Scene(vox[idx], sig, idx)], None, noise=False)[0]
    res = subspace_pursuit(S, y, sparsity=3, eps=1e-9 * np.linalg.norm(y))
    assert list(res.support) == sorted(idx.tolist())
    np.testing.assert_allclose(np.abs(res.sigma[np.sort(idx)]), sig[np.argsort(idx)], rtol=1e-3)


def test_back_projection_peaks_at_an_on_grid_uav_with_unit_value():
    cfg = small(n_subcarriers=1, n0=4)
    S = build_sensing_matrix(cfg)
    v = 55
    y = measure(cfg, [Scene(voxel_centres(cfg)[[v]], np.array([SIGMA_REF]), np.array([v]))],
                None, noise=False)[0]
    bp = np.abs(back_project(S, y))
    assert np.argmax(bp) == v
    assert bp[v] == pytest.approx(1.0, rel=1e-4)


def test_back_projection_of_a_batch_is_the_conjugate_transpose_without_copying_A():
    import tracemalloc
    cfg = small(n0=4)
    S = build_sensing_matrix(cfg)
    rng = np.random.default_rng(2)
    Y = (rng.normal(size=(3, S.A.shape[0])) + 1j * rng.normal(size=(3, S.A.shape[0]))).astype(np.complex64)
    direct = (S.A.conj().T.astype(np.complex128) @ Y.T.astype(np.complex128)).T / (S.col_norm2 * SIGMA_REF)
    batch = back_project(S, Y)
    assert np.allclose(batch, direct, rtol=1e-4, atol=1e-6 * np.abs(direct).max())
    assert np.allclose(batch[1], back_project(S, Y[1]), rtol=1e-4, atol=1e-6 * np.abs(direct).max())
    tracemalloc.start()
    back_project(S, Y[:1])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < S.A.nbytes / 4     # a conj(A) temporary would be as large as A


@pytest.mark.parametrize("mode", ["A", "B"])
def test_factored_back_projection_equals_A_H_y(mode):
    from sense_nodes.core.imaging.backprojection import FactoredBackProjector
    cfg = small(mode=mode)                      # two subcarriers, 3x3 arrays
    S = build_sensing_matrix(cfg)
    F = FactoredBackProjector(cfg)
    rng = np.random.default_rng(4)
    Y = (rng.normal(size=(2, S.A.shape[0])) + 1j * rng.normal(size=(2, S.A.shape[0]))).astype(np.complex64)
    ref = back_project(S, Y)
    assert np.allclose(F(Y), ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    assert np.allclose(F(Y[1]), ref[1], rtol=0, atol=1e-5 * np.abs(ref).max())
    assert np.allclose(F.col_norm2, S.col_norm2, rtol=1e-5)
    with pytest.raises(ValueError, match="measurements"):
        F(Y[:, :-1])


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="mode"):
        ImagingConfig(mode="D")
    with pytest.raises(ValueError, match="n0"):
        ImagingConfig(n0=0)
    with pytest.raises(ValueError, match="max_bytes"):
        build_sensing_matrix(ImagingConfig(), max_bytes=1024)


def test_stack_measurements_follows_the_row_order_of_A():
    from sense_nodes.core.imaging.imager import stack_measurements
    cfg = small()
    S = build_sensing_matrix(cfg)
    vox = voxel_centres(cfg)
    idx = np.array([12, 60])
    sig = np.array([0.1, 0.1])
    ants, lams = antenna_positions(cfg), subcarrier_wavelengths(cfg)
    channels = {(b1, b2): np.stack([cascaded_channel(cfg, ants[b1], ants[b2], vox[idx], sig, lam)
                                    for lam in lams])
                for b1, b2 in measurement_pairs(cfg)}
    y = stack_measurements(cfg, channels)
    np.testing.assert_allclose(y, S.A[:, idx] @ sig, rtol=1e-4)
    del channels[(0, 1)]
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        stack_measurements(cfg, channels)
