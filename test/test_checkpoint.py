"""The shared safe model-file loader: what a user handing it a bad file sees."""
import os
import pickle
import struct
import zipfile

import pytest
import torch

from sense_nodes.core.checkpoint import (CheckpointError, load_checkpoint, load_state,
                                         save_checkpoint)


def _net(hidden=4):
    return torch.nn.Sequential(torch.nn.Linear(3, hidden), torch.nn.BatchNorm1d(hidden), torch.nn.ReLU(),
                               torch.nn.Linear(hidden, 2)).eval()


def _save(path, net=None, **kw):
    net = net or _net()
    args = dict(kind="toy", version=2, config={"hidden": 4, "name": "a"},
                state_dict=net.state_dict(), extra={"mean": torch.ones(3), "epochs": 3})
    args.update(kw)
    return save_checkpoint(path, **args)


def test_round_trip_gives_the_same_outputs(tmp_path):
    net = _net()
    p = _save(tmp_path / "m.pt", net)
    ck = load_checkpoint(p, kind="toy", version=2)
    assert ck.config == {"hidden": 4, "name": "a"} and ck.extra["epochs"] == 3
    other = load_state(_net(ck.config["hidden"]), ck)
    x = torch.randn(5, 3)
    assert torch.equal(net(x), other(x))
    assert not any(f.name.endswith(".tmp") for f in tmp_path.iterdir())


def test_pickled_object_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    p = _save(tmp_path / "m.pt")
    payload = torch.load(p, weights_only=True)
    payload["extra"]["x"] = Evil()
    torch.save(payload, p, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="nothing executed") as err:
        load_checkpoint(p, kind="toy", version=2)
    assert not marker.exists()
    assert str(p) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("kind,version,match", [("other", 2, "'toy' checkpoint"), ("toy", 1, "version 2")])
def test_wrong_kind_or_version_is_refused(tmp_path, kind, version, match):
    p = _save(tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(p, kind=kind, version=version)


def test_truncated_and_missing_files_are_refused(tmp_path):
    p = _save(tmp_path / "m.pt")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(p, kind="toy", version=2)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "none.pt", kind="toy", version=2)


def test_edited_weights_fail_the_checksum(tmp_path):
    p = _save(tmp_path / "m.pt")
    payload = torch.load(p, weights_only=True)
    payload["state_dict"]["0.weight"][0, 0] += 1.0
    torch.save(payload, p)
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(p, kind="toy", version=2)


def test_bit_flip_inside_the_archive_is_refused(tmp_path):
    p = _save(tmp_path / "m.pt")
    with zipfile.ZipFile(p) as z:
        name = next(n for n in z.namelist() if "/data/" in n)
        info = z.getinfo(name)
    data = bytearray(p.read_bytes())
    # the local header's own name and extra lengths (torch pads the extra field)
    name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)
    data[info.header_offset + 30 + name_len + extra_len + 1] ^= 0x40
    p.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        load_checkpoint(p, kind="toy", version=2)


def test_non_finite_weights_are_neither_saved_nor_loaded(tmp_path):
    net = _net()
    with torch.no_grad():
        net[0].weight[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="non-finite"):
        _save(tmp_path / "m.pt", net)
    p = _save(tmp_path / "m.pt")
    payload = torch.load(p, weights_only=True)
    payload["state_dict"]["3.bias"][0] = float("inf")
    from sense_nodes.core.checkpoint import payload_digest
    payload["sha256"] = payload_digest("toy", 2, payload["config"], payload["state_dict"], payload["extra"])
    torch.save(payload, p)
    with pytest.raises(CheckpointError, match="non-finite values in state_dict.3.bias"):
        load_checkpoint(p, kind="toy", version=2)


def test_shapes_are_checked_against_the_config(tmp_path):
    p = _save(tmp_path / "m.pt")
    ck = load_checkpoint(p, kind="toy", version=2)
    with pytest.raises(CheckpointError, match=r"shape \(4, 3\).*needs \(8, 3\)"):
        load_state(_net(8), ck)
    with pytest.raises(CheckpointError, match="missing"):
        load_state(torch.nn.Sequential(_net(), torch.nn.Linear(2, 2)), ck)


def test_unsafe_config_values_are_refused_at_save(tmp_path):
    with pytest.raises(TypeError, match="cannot be stored safely"):
        _save(tmp_path / "m.pt", config={"f": object()})
