"""`sense train/eval/bench diffloc` on a small synthetic dataset: the
figures of the command-line contract come out as JSON, a sample with a dead link is still
evaluated, and bad input is a one-line error."""
import json

import pytest

from sense_nodes.cli.main import main

KEYS = ["crb_median_cm", "samples_not_localised_pct", "ct_cov95_coverage_pct", "ct_unseen_user_fused_error_cm",
        "ct_vehicular_fused_error_cm"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import torch
    torch.set_num_threads(1)
    from diffloc_helpers import synthetic_dataset
    root = tmp_path_factory.mktemp("dlcli")
    ds = synthetic_dataset(root / "syn")
    models = root / "models"
    for m in ("ct", "unet", "grid", "supervised_mlp"):
        extra = ["--grid-spacing", "20"] if m == "grid" else []
        assert main(["train", "diffloc", "--model", m, "--dataset", str(ds), "--steps", "30", "--components", "8",
                     "--no-progress", "--out", str(models / f"{m}.pt")] + extra) == 0
    assert main(["train", "diffloc", "--model", "ct", "--split", "user", "--dataset", str(ds), "--steps", "30",
                 "--components", "8", "--no-progress", "--out", str(models / "ct-user.pt")]) == 0
    return root, ds, models


def test_eval_writes_the_contract_keys(setup, capsys):
    root, ds, models = setup
    out = root / "eval.json"
    assert main(["eval", "diffloc", "--dataset", str(ds), "--models", str(models), "--ddim-steps", "5",
                 "--draws", "4", "--skip", "fig8,fig9,fig11", "--figures", str(root / "png"),
                 "--json", str(out)]) == 0
    fig = json.loads(out.read_text())
    for m in ("ct", "unet", "grid", "supervised_mlp", "knn"):
        assert fig[f"{m}_fused_error_cm"] > 0
        for b in range(4):
            assert f"{m}_bs{b}_error_cm" in fig
    for k in KEYS:
        assert fig[k] is not None, k
    assert fig["mlp_fused_error_cm"] is None and fig["mlp_trained"] is False  # not trained: reported, not invented
    assert fig["paper_ct_fused_error_cm"] == 0.5 and fig["paper_grid_fused_error_cm"] == 306.0
    assert fig["ct_fused1bs_median_error_cm"] > 0 and "ct_fusion_monotonic" in fig
    assert fig["samples_not_localised_pct"] == 0.0
    # the headline fusion rule and the covariance scale were chosen on validation at training time
    assert fig["ct_fusion_chosen_on"] == "validation split" and fig["ct_cov_scale"] > 0
    assert "ct_cov95_coverage_uncalibrated_pct" in fig
    assert (root / "png" / "diffloc_cdf.png").stat().st_size > 1000
    assert "ct_fused_error_cm" in capsys.readouterr().out


def test_bench_writes_the_contract_keys(setup):
    root, _ds, models = setup
    out = root / "bench.json"
    assert main(["bench", "diffloc", "--repeats", "2", "--batch", "8", "--models", str(models),
                 "--json", str(out)]) == 0
    fig = json.loads(out.read_text())
    for k in ("ct_fused3_latency_ms", "ddim200_fused3_latency_ms", "ct_batched_estimates_per_s", "mflops_per_forward"):
        assert fig[k] > 0, k
    assert fig["paper_mflops_per_forward"] == pytest.approx(6.362)


def test_choose_fusion_rechooses_without_training(setup, tmp_path):
    import shutil
    root, ds, models = setup
    path = shutil.copy(models / "ct.pt", tmp_path / "ct.pt")
    before = path.read_bytes()
    out = tmp_path / "choice.json"
    assert main(["train", "diffloc", "--model", "ct", "--dataset", str(ds), "--out", str(path), "--choose-fusion",
                 "--choice-draws", "3", "--no-progress", "--json", str(out)]) == 0
    fig = json.loads(out.read_text())
    assert fig["fusion_chosen_on_validation"] in ("sum", "prior_corrected", "gaussian_product")
    assert fig["validation_samples"] > 0 and fig["cov_scale"] > 0
    assert path.read_bytes() != before  # the choice is recorded in the checkpoint


def test_a_beam_delay_model_trains_and_localises_a_bundle(setup, tmp_path):
    import numpy as np
    from sense_nodes.core.diffloc.dataset import bundle_fingerprints
    from sense_nodes.core.diffloc.estimator import Estimator
    from sense_nodes.data.csi.dataset import load_dataset
    root, ds, models = setup
    path = tmp_path / "ct-beamdb.pt"
    assert main(["train", "diffloc", "--model", "ct", "--magnitude", "beam_db", "--dataset", str(ds), "--steps", "20",
                 "--components", "8", "--no-progress", "--out", str(path)]) == 0
    est = Estimator.from_checkpoint(path, "cpu")
    assert est.magnitude == "beam_db" and est.expected_fingerprint_dim < 2 * est.ports * est.taps
    H = np.asarray(load_dataset(ds).arrays["H"][5])
    fp, mask = bundle_fingerprints({b: H[b] for b in range(4)}, est.taps, 4, est.ports, est.magnitude,
                                   est.expected_fingerprint_dim)
    out = est.estimate(fp[None], mask[None])
    assert out.localised.all() and np.isfinite(out.fused_xy).all() and np.isfinite(out.cov).all()


def test_a_ct_of_narrower_unet_widths_is_saved_with_them_and_localises(setup, tmp_path, capsys):
    import numpy as np
    from sense_nodes.core.diffloc.estimator import Estimator
    root, ds, models = setup
    path = tmp_path / "ct-narrow.pt"
    assert main(["train", "diffloc", "--model", "ct", "--unet-widths", "16,24", "--dataset", str(ds), "--steps", "20",
                 "--components", "8", "--no-progress", "--out", str(path)]) == 0
    est = Estimator.from_checkpoint(path, "cpu")
    assert [e[0].out_features for e in est.nets[0].enc] == [24]
    fp = np.random.default_rng(0).standard_normal((2, est.num_bs, est.expected_fingerprint_dim)).astype(np.float32)
    assert np.isfinite(est.estimate(fp, np.ones((2, est.num_bs), bool)).fused_xy).all()
    for bad in ("16", "16,x", "0,8"):
        with pytest.raises(SystemExit):
            main(["train", "diffloc", "--model", "ct", "--unet-widths", bad, "--dataset", str(ds)])
        assert "--unet-widths" in capsys.readouterr().err
    assert main(["train", "diffloc", "--model", "grid", "--unet-widths", "16,24", "--dataset", str(ds)]) == 2
    assert "--unet-widths" in capsys.readouterr().err


def test_bad_input_is_refused_with_its_name(setup, tmp_path, capsys):
    root, ds, models = setup
    assert main(["train", "diffloc", "--model", "ct", "--dataset", str(tmp_path / "none")]) == 2
    assert "no such dataset" in capsys.readouterr().err
    assert main(["train", "diffloc", "--model", "ct", "--dataset", str(ds), "--noise", "loud"]) == 2
    bad = tmp_path / "m"
    bad.mkdir()
    (bad / "ct.pt").write_bytes(b"not a checkpoint")
    assert main(["eval", "diffloc", "--dataset", str(ds), "--models", str(bad), "--skip",
                 "fig7,fig8,fig9,fig11,table6,fusion"]) == 2
    assert "ct.pt" in capsys.readouterr().err


def test_the_consistency_model_projects_on_fewer_components_unless_told():
    """Without --components the consistency model sees its own default
    number of principal components (fewer than the other models', for its
    request latency); a number given is kept, and a negative one refused."""
    from sense_nodes.core.diffloc.estimator import Estimator
    from sense_nodes.core.diffloc.training import COMPONENTS, TrainConfig, default_components
    assert TrainConfig(model="ct").components == default_components("ct") < COMPONENTS
    assert TrainConfig(model="unet").components == COMPONENTS
    assert TrainConfig(model="ct", components=128).components == 128
    assert Estimator.untrained("ct").config["cond_dims"] == [default_components("ct")] * 4
    with pytest.raises(ValueError, match="components"):
        TrainConfig(model="ct", components=-1)
