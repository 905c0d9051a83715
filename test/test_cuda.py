"""Where a CUDA device is present: the models that say they run on CUDA
train and infer there with the CPU's results. Skipped on machines without
one (CI has none); run it where a GPU is lent."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    from diffloc_helpers import synthetic_dataset
    from sense_nodes.core.diffloc.dataset import load_positioning
    from sense_nodes.data.csi.dataset import load_dataset
    path = tmp_path_factory.mktemp("cuda") / "syn"
    synthetic_dataset(path)
    return load_positioning(load_dataset(path))


def _train(data, model, device, out):
    """Dropout off: its masks come from each device's own generator, the
    one draw that cannot be the same on both."""
    from sense_nodes.core.diffloc.training import TrainConfig, train
    cfg = TrainConfig(model=model, steps=60, eval_every=20, components=16, device=device, dropout=0.0,
                      grid_spacing_m=20.0 if model == "grid" else None)
    return train(data, cfg, out, progress=False, log=lambda *_: None)


@pytest.mark.parametrize("model", ["ct", "unet", "mlp", "supervised_mlp", "cnn", "grid"])
def test_diffloc_trains_on_cuda_as_on_the_cpu(tmp_path, syn, model):
    from sense_nodes.core.diffloc.estimator import Estimator
    cpu = _train(syn, model, "cpu", tmp_path / "cpu.pt")
    gpu = _train(syn, model, "cuda", tmp_path / "gpu.pt")
    for a, b in zip(cpu["stations"], gpu["stations"]):   # same seeded draws on both devices
        assert b["steps"] == a["steps"]
        assert b["best_val_loss"] == pytest.approx(a["best_val_loss"], rel=0.05, abs=1e-4)
    te = syn.indices("test")
    on_gpu = Estimator.from_checkpoint(tmp_path / "gpu.pt", "cuda")
    assert on_gpu.device.type == "cuda"
    out_gpu = on_gpu.estimate(syn.fp[te], syn.valid[te])
    out_cpu = Estimator.from_checkpoint(tmp_path / "gpu.pt", "cpu").estimate(syn.fp[te], syn.valid[te])
    assert np.isfinite(out_gpu.fused_xy).all()
    assert np.allclose(out_gpu.fused_xy, out_cpu.fused_xy, atol=0.01)   # 1 cm


@pytest.mark.parametrize("precision", ["float32", "auto"])
def test_the_shipped_imager_images_on_cuda_as_on_the_cpu(precision):
    from sense_nodes.core.imaging.imager import CHECKPOINT_DIR, Imager
    cpu = Imager.from_checkpoint(CHECKPOINT_DIR / "net10.pt", "cpu", "float32")
    gpu = Imager.from_checkpoint(CHECKPOINT_DIR / "net10.pt", "cuda", precision)
    rng = np.random.default_rng(0)
    y = (rng.standard_normal(cpu.n_measurements) + 1j * rng.standard_normal(cpu.n_measurements)) \
        * np.sqrt(cpu.cfg.noise_var / 2) * 30
    v_cpu, _ = cpu.image(y.astype(np.complex64))
    v_gpu, _ = gpu.image(y.astype(np.complex64))
    tol = 1e-3 if precision == "float32" else 3e-2   # bfloat16 keeps about 3 significant digits
    assert np.abs(v_gpu - v_cpu).max() <= tol * max(1.0, np.abs(v_cpu).max())

