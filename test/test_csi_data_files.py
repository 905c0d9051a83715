"""CSI dataset files: manifest round trip, rejection of bad or
incomplete dataset files with a clear message, the numpy CFR. No ray
tracing here: fast."""
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from sense_nodes.data.csi import cfr as cfrmod
from sense_nodes.data.csi import dataset as dsmod


def _manifest(n=4):
    return {"kind": "imaging", "scene": "simple_street_canyon", "num_samples": n, "seed": 3,
            "code_version": dsmod.code_version(), "carrier_hz": 2.6e9,
            "subcarrier_spacing_hz": 1e6, "num_subcarriers": 2,
            "geometry": {"bs_pos_m": np.zeros((2, 3))}, "links": [{"index": 0, "tx_id": "bs0", "rx_id": "bs1"}],
            "split": {"schemes": {"random": {"array": "split_random"}}},
            "generation": {"seconds": 1.0, "samples_per_s": n}}


def _arrays(n=4):
    rng = np.random.default_rng(0)
    return {"H": (rng.standard_normal((n, 1, 2, 2, 2)) + 1j).astype(np.complex64),
            "split_random": np.array([0, 0, 1, 2][:n], np.int8)}


def test_manifest_round_trip(tmp_path):
    man, arr = _manifest(), _arrays()
    path = dsmod.write_dataset(tmp_path / "ds", man, arr)
    ds = dsmod.load_dataset(path)
    assert ds.kind == "imaging" and ds.num_samples == 4
    for key in ("scene", "seed", "code_version", "carrier_hz", "links", "split"):
        assert ds.manifest[key] == json.loads(json.dumps(dsmod._jsonable(man[key])))
    assert ds.manifest["geometry"]["bs_pos_m"] == [[0.0] * 3] * 2
    assert ds.manifest["complete"] is True
    np.testing.assert_array_equal(ds.arrays["H"], arr["H"])
    assert ds.arrays["H"].dtype == np.complex64
    np.testing.assert_array_equal(ds.split_indices("val"), [2])
    assert not list(tmp_path.glob(".ds.tmp*"))  # written atomically


def test_missing_folder_and_manifest(tmp_path):
    with pytest.raises(dsmod.DatasetError, match="no such dataset folder"):
        dsmod.load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(dsmod.DatasetError, match="no manifest.json"):
        dsmod.load_dataset(tmp_path / "empty")


def test_bad_manifest_rejected(tmp_path):
    path = dsmod.write_dataset(tmp_path / "ds", _manifest(), _arrays())
    mf = path / "manifest.json"
    mf.write_text("{not json")
    with pytest.raises(dsmod.DatasetError, match="manifest.json: unreadable manifest"):
        dsmod.load_dataset(path)
    m = dsmod._jsonable(dict(_manifest(), format=dsmod.FORMAT, format_version=1, arrays={}))
    mf.write_text(json.dumps(m))  # no complete flag: an interrupted run
    with pytest.raises(dsmod.DatasetError, match="incomplete dataset"):
        dsmod.load_dataset(path)
    m.update(complete=True, kind="radar")
    mf.write_text(json.dumps(m))
    with pytest.raises(dsmod.DatasetError, match="unknown kind 'radar'"):
        dsmod.load_dataset(path)


def test_truncated_or_mismatched_arrays_rejected(tmp_path):
    path = dsmod.write_dataset(tmp_path / "ds", _manifest(), _arrays())
    h5 = path / "arrays.h5"
    data = h5.read_bytes()
    h5.write_bytes(data[: len(data) // 3])
    with pytest.raises(dsmod.DatasetError, match=r"arrays\.h5: unreadable or truncated HDF5"):
        dsmod.load_dataset(path)
    path = dsmod.write_dataset(tmp_path / "ds2", _manifest(), _arrays())
    with h5py.File(path / "arrays.h5", "a") as f:
        del f["H"]
        f.create_dataset("H", data=np.zeros((3, 1, 2, 2, 2), np.complex64))
    with pytest.raises(dsmod.DatasetError, match=r"array 'H' is \[3, 1, 2, 2, 2\] complex64, manifest says"):
        dsmod.load_dataset(path)
    with h5py.File(path / "arrays.h5", "a") as f:
        del f["H"]
    with pytest.raises(dsmod.DatasetError, match="array 'H' missing"):
        dsmod.load_dataset(path)
    (path / "arrays.h5").unlink()
    with pytest.raises(dsmod.DatasetError, match="arrays file missing"):
        dsmod.load_dataset(path)


def test_cli_check_reports_bad_dataset(tmp_path):
    (tmp_path / "bad").mkdir()
    r = subprocess.run([sys.executable, "-m", "sense_nodes", "data", "check", str(tmp_path / "bad")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "not a CSI dataset" in r.stderr and str(tmp_path / "bad") in r.stderr


def test_cli_bad_parameters(tmp_path):
    from sense_nodes.cli.main import main
    for argv, msg in ((["--kind", "fwa", "--samples", "3"], "--samples must be an even number"),
                      (["--kind", "imaging", "--residual-ratio", "-1"], "--residual-ratio must be"),
                      (["--kind", "imaging", "--users", "3"], "--users applies to --kind diffloc"),
                      (["--kind", "diffloc", "--seed", "-2"], "--seed must be >= 0")):
        from sense_nodes.cli import data as climod
        import argparse
        p = argparse.ArgumentParser()
        climod.add_arguments(p)
        args = p.parse_args(["generate"] + argv)
        from sense_nodes.errors import UserError
        with pytest.raises(UserError, match=msg):
            climod.run(args)
    assert main(["data", "generate", "--kind", "fwa", "--samples", "5"]) == 2


def test_cfr_matches_direct_sum():
    rng = np.random.default_rng(1)
    a = (rng.standard_normal((3, 2, 2, 4, 5)) + 1j * rng.standard_normal((3, 2, 2, 4, 5))).astype(np.complex64)
    tau = rng.uniform(1e-7, 2e-6, size=(3, 2, 5)).astype(np.float32)
    tau[0, 1, 2] = -1  # an invalid path
    a[0, :, 1, :, 2] = 0
    f = cfrmod.subcarrier_offsets(8, 30e3 * 24)
    assert f[4] == 0 and f[0] == -4 * 720e3  # centred, as paths.cfr
    h = cfrmod.cfr_from_cir(a, tau, f, chunk=2)
    t = np.where(tau < 0, 0, tau).astype(np.float64)
    ref = np.einsum("rAtBp,rtpk->rAtBk", a.astype(np.complex128),
                    np.exp(-2j * np.pi * t[..., None] * f))
    np.testing.assert_allclose(h, ref, rtol=1e-4, atol=1e-5)
    n, ds = cfrmod.link_path_stats(a, tau)
    assert n[0, 1] == 4 and n[1, 0] == 5
    assert np.all(ds >= 0)


def test_data_layer_imports_no_ros():
    code = ("import sys; import sense_nodes.data.csi.dataset, sense_nodes.data.csi.stats, "
            "sense_nodes.data.csi.fwa_pairs, sense_nodes.data.csi.srs_positioning, "
            "sense_nodes.data.csi.imaging_channels, sense_nodes.data.csi.cfr, sense_nodes.data.csi.rt; "
            "bad=[m for m in sys.modules if m.startswith(('rclpy','sense_nodes.msg','mitsuba','drjit','sionna'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
