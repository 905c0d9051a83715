"""Table VI plumbing: Sionna RT canyon CSI in the sensing matrix's row order."""
from types import SimpleNamespace

import numpy as np
import pytest

from sense_nodes.eval.imaging_canyon import measurements, sensing_matrix


def _fake_ds(rng, n=2, L=10, na=25, K=6):
    shape = (n, L, na, na, K)
    he = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
    hb = (rng.normal(size=shape[1:]) * 10 + 1j * rng.normal(size=shape[1:])).astype(np.complex64)
    links = [dict(index=k, tx_id=f"bs{i}", rx_id=f"bs{j}")
             for k, (i, j) in enumerate((i, j) for i in range(4) for j in range(i, 4))]
    return SimpleNamespace(arrays=dict(H_echo=he, H_background=hb), links=links)


def test_measurements_follow_the_row_order_link_subcarrier_tx_rx():
    ds = _fake_ds(np.random.default_rng(0))
    y = measurements(ds, [1], 0.0, None)[0].reshape(10, 6, 25, 25)
    he = ds.arrays["H_echo"][1]                       # [link, rx, tx, k]
    assert y[3, 2, 7, 11] == he[3, 11, 7, 2]
    assert y[9, 5, 0, 24] == he[9, 24, 0, 5]


def test_residual_ratio_is_relative_to_each_links_echo_power():
    ds = _fake_ds(np.random.default_rng(1))
    y0 = measurements(ds, [0], 0.0, None)[0].reshape(10, -1)
    for r in (1e-3, 1.0):
        res = measurements(ds, [0], r, None)[0].reshape(10, -1) - y0
        ratio = np.mean(np.abs(res) ** 2, axis=1) / np.mean(np.abs(y0) ** 2, axis=1)
        assert np.allclose(ratio, r, rtol=1e-3)


@pytest.mark.slow
def test_canyon_echo_matches_the_sensing_model_at_the_targets():
    """The traced echoes of a sample against sum_m sigma_m b(p_m), b built like A's
    columns from the dataset's antenna positions (needs Sionna RT and the tiny
    imaging dataset, or the one named by SENSE_IMAGING_DATASET)."""
    import os
    from pathlib import Path
    from sense_nodes.data.csi.dataset import default_dir, load_dataset
    from sense_nodes.eval import imaging_canyon as ic_eval
    path = Path(os.environ.get("SENSE_IMAGING_DATASET") or default_dir("imaging", True, 0))
    if not (path / "manifest.json").exists():
        pytest.skip("no imaging CSI dataset (set SENSE_IMAGING_DATASET)")
    pytest.importorskip("sionna.rt")
    ds = load_dataset(path)
    ants = ic_eval._antennas(path)
    S = sensing_matrix(ds, ants)
    assert S.A.shape == (10 * 6 * 625, 480)
    from sense_nodes.core.imaging.sensing_matrix import steering_vectors
    pos = np.asarray(ds.arrays["target_pos"][0], float)
    sig = np.asarray(ds.arrays["target_sigma"][0], float)
    # steering vectors at the true target positions, same construction as A
    B = steering_vectors(S.cfg, pos, antennas=ants)
    y = measurements(ds, [0], 0.0, None)[0]
    model = B @ sig.astype(np.complex64)
    rho = np.abs(np.vdot(model, y)) / (np.linalg.norm(model) * np.linalg.norm(y))
    assert rho > 0.99


def test_the_canyon_config_reads_the_datasets_grid_subcarriers_and_noise():
    from sense_nodes.core.imaging.geometry import subcarrier_wavelengths, voxel_centres
    from sense_nodes.data.csi import imaging_channels as ic
    from sense_nodes.eval.imaging_canyon import canyon_config
    manifest = {"carrier_hz": ic.CARRIER_HZ, "subcarrier_spacing_hz": ic.SCS_HZ,
                "num_subcarriers": ic.NUM_SUBCARRIERS, "bandwidth_hz": ic.BANDWIDTH_HZ,
                "geometry": {"bs_pos_m": ic.BS_POS.tolist(), "roi_min_m": ic.ROI_MIN.tolist(),
                             "roi_max_m": ic.roi_max().tolist(), "voxel_m": ic.VOXEL,
                             "targets_per_sample": ic.NUM_TARGETS,
                             "target_rcs_m2": {"mean": ic.RCS_MEAN, "var": ic.RCS_VAR, "min": 1e-4}},
                "antenna_arrays": {"bs": {"rows": ic.N0}},
                "power": {"pt_dbm": ic.PT_DBM, "pn_dbm_per_antenna": ic.PN_DBM}}
    cfg = canyon_config(SimpleNamespace(manifest=manifest))
    np.testing.assert_allclose(voxel_centres(cfg), ic.voxel_centers().reshape(-1, 3))
    freqs = 299_792_458.0 / subcarrier_wavelengths(cfg)
    np.testing.assert_allclose(freqs, ic.CARRIER_HZ + (np.arange(6) - 3) * ic.SCS_HZ)
    assert cfg.noise_var == pytest.approx(10 ** ((ic.PN_DBM - ic.PT_DBM) / 10))
    assert cfg.gain == 1.0 and cfg.mode == "A"
