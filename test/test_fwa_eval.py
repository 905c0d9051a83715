"""`sense eval fwa` end to end on a small ray-traced set: every figure the
issue names is reported, the classical and background-nulling detectors
beside the learned one, and a number is a number where it can be one."""
from __future__ import annotations

import json
import math

import pytest

KEYS = ("mdp_pct", "fap_pct", "mdp_ci_high_pct", "ape_mean_m", "ape95_m", "hard_fusion_ape95_m",
        "soft_fusion_ape95_m", "perfect_labels_ape95_m", "attention_label_pearson", "classical_mdp_pct",
        "classical_fap_pct", "one_bs_missing_mdp_pct", "subspace_mdp_pct", "subspace_fap_pct",
        "subspace_ape95_m", "subspace_one_bs_missing_mdp_pct")


@pytest.mark.slow
def test_eval_fwa_reports_every_figure(tmp_path):
    from conftest import fwa_dataset
    from sense_nodes.cli.main import main
    ds = fwa_dataset()
    out = tmp_path / "fwa.json"
    rc = main(["eval", "fwa", "--checkpoints", "bdz", "--dataset", str(ds), "--json", str(out),
               "--out-dir", str(tmp_path / "figs"),
               "--subspace-calibration", "50"])
    assert rc in (0, None)
    fig = json.loads(out.read_text())
    missing = [k for k in KEYS if k not in fig]
    assert not missing, f"missing figures: {missing}"
    for k in ("mdp_pct", "fap_pct", "subspace_mdp_pct", "subspace_fap_pct"):
        assert 0.0 <= fig[k] <= 100.0
    assert 0 < fig["subspace_rank_mean"] <= 128
    assert math.isfinite(fig["subspace_threshold"])
    assert (tmp_path / "figs" / "fwa_ape_cdf.png").stat().st_size > 0


def test_bench_fwa_times_both_sides_and_counts_the_bytes_sent(tmp_path):
    from sense_nodes.cli.main import main
    out = tmp_path / "bench.json"
    assert main(["bench", "fwa", "--repeats", "2", "--json", str(out)]) in (0, None)
    fig = json.loads(out.read_text())
    assert fig["encoder_median_ms"] > 0 and fig["centre_median_ms"] > 0
    assert fig["soft_fusion_centre_median_ms"] > 0
    # the two rounds send a few kB where the raw CSI of 32 pairs is tens of MB
    assert fig["bytes_per_frame"] == fig["round1_bytes_per_frame"] + fig["round2_bytes_per_frame"]
    assert fig["compression_ratio"] > 100


def test_bench_fwa_refuses_nulled_models_without_their_calibration(tmp_path):
    from sense_nodes.cli.main import main
    rc = main(["bench", "fwa", "--checkpoints", "nulled", "--calibration", str(tmp_path / "none.npz"),
               "--repeats", "1"])
    assert rc == 2
