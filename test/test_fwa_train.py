"""`sense train fwa --models validation`: the validation figures a trained
set is chosen on (I-ULocNet RMSE, APE of C-ULocNet and of the fusion
baselines), measured without training or rewriting anything."""
from __future__ import annotations

import hashlib
import json
import math
import shutil

import pytest

KEYS = ("ulocnet_val_rmse_m", "culocnet_val_ape_mean_m", "culocnet_val_ape95_m", "hard_fusion_val_ape95_m",
        "perfect_labels_val_ape95_m", "soft_fusion_val_ape95_m")


@pytest.mark.slow
def test_validation_reports_the_sets_figures_and_rewrites_nothing(tmp_path):
    from conftest import fwa_dataset
    from sense_nodes.cli.main import main
    from sense_nodes.core.fwa import pipeline as pl
    ds = fwa_dataset()
    ck = tmp_path / "set"
    ck.mkdir()
    for f in pl.checkpoint_dir().glob("*.pt"):
        shutil.copy(f, ck / f.name)
    before = {f.name: hashlib.sha1(f.read_bytes()).hexdigest() for f in ck.glob("*.pt")}
    out = tmp_path / "val.json"
    rc = main(["train", "fwa", "--dataset", str(ds), "--out-dir", str(ck), "--models", "validation",
               "--json", str(out)])
    assert rc in (0, None)
    fig = json.loads(out.read_text())
    for k in KEYS:
        assert k in fig and math.isfinite(fig[k]) and fig[k] >= 0, k
    assert not any(k.endswith("train_minutes") for k in fig)
    assert {f.name: hashlib.sha1(f.read_bytes()).hexdigest() for f in ck.glob("*.pt")} == before
