"""The FWA nodes under ``detector: subspace``: `sense train fwa --subspace`
writes a calibration file that reads back as written; the BS encoders and
the centre, on real topics, turn a replayed scene of a small ray-traced
set into a detection with a finite position, equal to the in-process
chain; a missing calibration file is refused naming the command that makes
one; `sense eval fwa --subspace-deployment` measures the same chain; the
centre's threshold depends on which BSs answered; the learned
detector's runtime parameters are refused there, not ignored."""
from __future__ import annotations


import numpy as np
import pytest



@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """(dataset folder, calibration file) made by the CLI on the small set."""
    from conftest import fwa_dataset
    from sense_nodes.cli.main import main
    ds = fwa_dataset()
    out = tmp_path_factory.mktemp("fwa_cal") / "subspace.npz"
    rc = main(["train", "fwa", "--subspace", "--dataset", str(ds), "--calibration-out", str(out)])
    assert rc in (0, None)
    return ds, out


def test_the_calibration_file_reads_back_as_written(calibrated, tmp_path):
    from sense_nodes.core.fwa.calibration import SubspaceCalibration
    _, path = calibrated
    cal = SubspaceCalibration.load(path)
    assert cal.n_bs == 2 and cal.n_cpe == 16 and len(cal.threshold_missing) == 2
    assert all(u.dtype == np.complex64 and u.shape[0] == 64 * 4 * 64 for b in cal.bases for u in b)
    again = SubspaceCalibration.load(cal.save(tmp_path / "again.npz"))
    for b in range(2):
        for u, v in zip(cal.bases[b], again.bases[b]):
            assert np.array_equal(u, v)
    assert again.threshold == cal.threshold and again.k_pairs == cal.k_pairs and again.info == cal.info
    assert np.array_equal(again.threshold_missing, cal.threshold_missing)
    one = SubspaceCalibration.load(path, bs=1)  # a BS node reads its own bases only
    assert one.bases[0] is None and len(one.bases[1]) == 16
    with np.load(path, allow_pickle=False) as f:  # nothing in it needs pickle
        assert {"bs0_bases", "bs1_bases", "threshold", "k_pairs"} <= set(f.files)


def test_eval_measures_the_deployed_chain(calibrated, tmp_path):
    import json

    from sense_nodes.cli.main import main
    ds, cal = calibrated
    out = tmp_path / "dep.json"
    assert main(["eval", "fwa", "--dataset", str(ds), "--subspace-deployment", str(cal), "--split", "all",
                 "--json", str(out)]) in (0, None)
    fig = json.loads(out.read_text())
    assert fig["deployed_subspace_scenes"] == 20
    assert 0.0 <= fig["deployed_subspace_mdp_pct"] <= 100.0 and 0.0 <= fig["deployed_subspace_fap_pct"] <= 100.0
    assert fig["deployed_subspace_scene_ms"] > 0


def test_the_threshold_follows_the_bss_that_answered(calibrated):
    from sense_nodes.core.fwa.calibration import SubspaceCalibration, SubspaceCentre
    cal = SubspaceCalibration.load(calibrated[1], bs=[])
    cal.threshold, cal.threshold_missing = 10.0, np.array([4.0, 6.0])
    centre = SubspaceCentre(cal)
    both = {k: (8.0 if k == 20 else 1.0, 150.0) for k in range(32)}
    only_bs1 = {k: v for k, v in both.items() if k >= 16}
    assert not centre.detect(both).present            # 8 < 10 with both BSs
    d = centre.detect(only_bs1)                       # 8 >= 4: BS 0 silent
    assert d.present and d.probability == pytest.approx(8 / 12) and d.threshold == 4.0
    assert sum(d.attention.values()) == pytest.approx(1.0) and set(d.attention) == set(only_bs1)
    assert d.selected[0] == 20 and len(d.selected) == min(cal.k_pairs, 16)
    assert np.isfinite(d.position).all()


def _scene_bundle(ds_path):
    """(a UAV scene's CsiBundle, its pair CFRs) of the small set."""
    from sense_nodes.data.csi.dataset import load_dataset
    from sense_nodes.data.csi.fwa_pairs import sample_links
    from sense_nodes.msg import CsiBundle
    from sense_nodes.nodes.csi_source import csi_frame
    ds = load_dataset(ds_path)
    i = int(np.flatnonzero(np.asarray(ds.arrays["uav_present"]))[-1])
    smp = sample_links(ds, i)
    msg = CsiBundle(sample_index=i)
    msg.header.stamp.sec = 7
    msg.header.frame_id = "map"
    msg.frames = [csi_frame(link, msg.header) for link in smp.links]
    return msg, {link.link_index: np.asarray(link.H, np.complex64) for link in smp.links}


@pytest.mark.ros
def test_encoders_and_centre_locate_a_replayed_scene(ros_context, calibrated):
    from rclpy.parameter import Parameter

    from fwa_synthetic import run_nodes
    from sense_nodes.core.fwa.calibration import SubspaceCalibration, SubspaceCentre, pair_echoes
    ds_path, cal_path = calibrated
    sub = [Parameter("detector", value="subspace"), Parameter("calibration", value=str(cal_path))]
    msg, csi = _scene_bundle(ds_path)
    # threshold 0: declared whatever the tiny calibration's threshold, so the fix is exercised
    got, _encs, centre, nodes = run_nodes(ros_context, (0, 1), [Parameter("threshold", value=0.0), *sub],
                                          [msg], 1, timeout=60, ns="/s", encoder_params=sub)
    try:
        [d] = got
        cal = SubspaceCalibration.load(cal_path)
        ref = SubspaceCentre(cal, threshold=0.0).detect(pair_echoes(cal, csi))
        assert d.uav_present and d.position_valid
        pos = np.array([d.position.x, d.position.y, d.position.z])
        assert np.isfinite(pos).all() and pos == pytest.approx(ref.position, abs=1e-3)
        assert list(d.selected_pairs) == ref.selected and len(ref.selected) == cal.k_pairs
        assert sum(d.attention) == pytest.approx(1.0, abs=1e-4)
        assert d.presence_probability == pytest.approx(ref.probability, abs=1e-5)
        assert centre.counts["localized"] == 1 and centre.counts["bs_timeouts"] == 0
        # the learned detector's pair selection does not apply: refused, not ignored
        [res] = centre.set_parameters([Parameter("k", value=5)])
        assert not res.successful and "'k'" in res.reason and "subspace_k" in res.reason
    finally:
        for n in nodes:
            n.destroy_node()


@pytest.mark.ros
@pytest.mark.parametrize("kind", ["encoder", "centre"])
def test_a_missing_calibration_is_refused_naming_the_command(ros_context, tmp_path, kind):
    from rclpy.parameter import Parameter

    from sense_nodes.nodes.base import ParameterError
    from sense_nodes.nodes.fwa_bs_encoder import FwaBsEncoder
    from sense_nodes.nodes.fwa_fusion_center import FwaFusionCenter
    cls = FwaBsEncoder if kind == "encoder" else FwaFusionCenter
    missing = tmp_path / "nowhere.npz"
    with pytest.raises(ParameterError, match="sense train fwa --subspace") as err:
        cls(context=ros_context, parameter_overrides=[Parameter("detector", value="subspace"),
                                                      Parameter("calibration", value=str(missing))])
    assert "calibration" in str(err.value) and str(missing) in str(err.value)


@pytest.mark.ros
def test_networks_on_nulled_input_run_both_rounds_with_the_calibration(ros_context, calibrated, tmp_path):
    """Models trained on background-nulled input (here untrained weights
    tied to the small set's calibration) run the learned two-round chain
    over topics and give the in-process chain's numbers; without the
    calibration they trained on, the BS encoder refuses to start."""
    from rclpy.parameter import Parameter

    from fwa_synthetic import run_nodes
    from sense_nodes.core.fwa import pipeline as pl
    from sense_nodes.core.fwa.calibration import SubspaceCalibration
    from sense_nodes.core.fwa.nulled import NulledInput, calibration_digest
    from sense_nodes.nodes.base import ParameterError
    from sense_nodes.nodes.fwa_bs_encoder import FwaBsEncoder
    ds_path, cal_path = calibrated
    cal = SubspaceCalibration.load(cal_path)
    import torch
    torch.manual_seed(0)
    pl.save_model(tmp_path / "detector.pt", "fwa_detector", pl.Detector(input="nulled"),
                  {"n_embed": 32, "width": 8, "input": "nulled"},
                  {"threshold": 0.0, "calibration_digest": calibration_digest(cal)})
    pl.save_model(tmp_path / "ulocnet.pt", "fwa_ulocnet", pl.IULocNet(input="nulled"),
                  {"n_feature": 64, "width": 8, "input": "nulled"})
    pl.save_model(tmp_path / "culocnet.pt", "fwa_culocnet", pl.CULocNet(n_feature=64), {"n_feature": 64})
    with pytest.raises(ParameterError, match="calibration"):
        FwaBsEncoder(context=ros_context, parameter_overrides=[
            Parameter("checkpoints", value=str(tmp_path)), Parameter("calibration", value=str(tmp_path / "no.npz"))])
    ck = [Parameter("checkpoints", value=str(tmp_path))]
    msg, csi = _scene_bundle(ds_path)
    got, _encs, centre, nodes = run_nodes(ros_context, (0, 1), ck, [msg], 1, timeout=60, ns="/n",
                                          encoder_params=[*ck, Parameter("calibration", value=str(cal_path))])
    try:
        [d] = got
        models = pl.Models.load(tmp_path, nuller=lambda _ds: NulledInput(cal))
        encs = [pl.BsEncoder(models, b) for b in (0, 1)]
        h = {}
        for b in (0, 1):
            h.update(encs[b].round1({k: H for k, H in csi.items() if k // 16 == b}))
        ref = pl.FusionCentre(models).detect(h)
        answers = {}
        for b in (0, 1):
            answers.update(encs[b].round2(ref.selected))
        pos = pl.FusionCentre(models).localize(answers)
        assert d.uav_present and list(d.selected_pairs) == ref.selected
        assert d.presence_probability == pytest.approx(ref.probability, abs=1e-5)
        assert np.allclose([d.position.x, d.position.y, d.position.z], pos, atol=1e-3)
    finally:
        for n in nodes:
            n.destroy_node()
