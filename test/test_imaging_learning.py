"""OHEM losses (Eq. 21-22), a training step, checkpoints and the Imager API."""
import math

import numpy as np
import pytest
import torch

from sense_nodes.core.imaging.geometry import ImagingConfig
from sense_nodes.core.imaging.losses import imaging_loss, ohem_select
from sense_nodes.core.imaging.networks import PAPER_CHANNELS, ImagingCNN, build_network


def _pair():
    """One 4x4 image: 2 UAVs, and 14 empty voxels with distinct errors."""
    target = torch.zeros(1, 4, 4)
    target[0, 0, 0] = 1.0
    target[0, 3, 3] = 1.0
    pred = torch.arange(16, dtype=torch.float32).reshape(1, 4, 4) / 100.0
    pred[0, 0, 0] = 0.5
    pred[0, 3, 3] = 0.8
    return pred, target


def test_ohem_keeps_the_eta_M_hardest_negatives():
    pred, target = _pair()
    sq = (pred - target) ** 2
    pos_sum, n_pos, neg_sum, n_neg = ohem_select(sq, target, eta=3)
    assert n_pos.item() == 2 and n_neg.item() == 6
    assert pos_sum.item() == pytest.approx(0.5 ** 2 + 0.2 ** 2)
    # the six largest negative errors are voxels 9..14 (15 is a positive)
    assert neg_sum.item() == pytest.approx(sum((k / 100) ** 2 for k in range(9, 15)))


def test_ohem_losses_follow_eq21_and_eq22():
    pred, target = _pair()
    pos = 0.5 ** 2 + 0.2 ** 2
    neg = sum((k / 100) ** 2 for k in range(9, 15))
    l1, mse = imaging_loss(pred, target, "ohem1", eta=3, alpha=0.0)
    assert l1.item() == pytest.approx((pos + neg) / 8)
    l2, _ = imaging_loss(pred, target, "ohem2", eta=3, alpha=0.0)
    assert l2.item() == pytest.approx(pos / 2 + neg / 6)
    assert mse.item() == pytest.approx(((pred - target) ** 2).mean().item())
    la, _ = imaging_loss(pred, target, "ohem1", eta=3, alpha=2.0)
    assert la.item() == pytest.approx(l1.item() + 2.0 * pred.abs().mean().item())
    # every negative selected: OHEM-1 becomes the plain MSE (Sec. IV-C)
    lall, _ = imaging_loss(pred, target, "ohem1", eta=7, alpha=0.0)
    assert lall.item() == pytest.approx(mse.item())


def test_scene_without_uav_does_not_crash_and_pushes_to_zero():
    target = torch.zeros(2, 4, 4)
    target[1, 1, 1] = 1.0
    pred = torch.full((2, 4, 4), 0.1, requires_grad=True)
    for kind in ("ohem1", "ohem2"):
        loss, mse = imaging_loss(pred, target, kind, eta=5, alpha=1.0)
        assert math.isfinite(loss.item()) and math.isfinite(mse.item())
        loss.backward()
        assert torch.all(pred.grad[0] >= 0)     # empty scene: gradient toward zero
        pred.grad = None
    _, n_pos, _, n_neg = ohem_select((pred - target).detach() ** 2, target, eta=5)
    assert n_pos.tolist() == [0, 1] and n_neg.tolist() == [5, 5]


def test_bad_loss_parameters_are_named():
    pred, target = _pair()
    with pytest.raises(ValueError, match="eta"):
        imaging_loss(pred, target, "ohem1", eta=0)
    with pytest.raises(ValueError, match="kind"):
        imaging_loss(pred, target, "focal")


def test_imager_network_has_the_papers_blocks_in_2d_and_3d():
    net = build_network("rescnn", 3, 2, (40, 40))
    assert [b.conv.out_channels for b in net.blocks] == list(PAPER_CHANNELS)
    assert net(torch.zeros(2, 3, 40, 40)).shape == (2, 40, 40)
    net3 = ImagingCNN(3, dims=3)
    assert isinstance(net3.blocks[0].conv, torch.nn.Conv3d)
    assert net3(torch.zeros(1, 3, 6, 6, 4)).shape == (1, 6, 6, 4)


def test_a_few_training_steps_reduce_the_loss():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    target = torch.zeros(8, 12, 12)
    for i in range(8):
        idx = rng.choice(144, 3, replace=False)
        target[i].view(-1)[idx] = 1.0
    # a blurred, noisy copy as the "A^H y" input
    x = torch.nn.functional.avg_pool2d(target[:, None], 3, 1, 1).repeat(1, 3, 1, 1)
    x = x + 0.05 * torch.randn_like(x)
    net = ImagingCNN(3, channels=(16, 16), dims=2)
    opt = torch.optim.RMSprop(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss, _ = imaging_loss(net(x), target, "ohem1", eta=5, alpha=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:3])


def test_train_writes_a_checkpoint_the_imager_loads(tmp_path, monkeypatch):
    from sense_nodes.core.imaging.imager import Imager
    from sense_nodes.core.imaging.targets import measure, sample_scene
    from sense_nodes.core.imaging.training import TrainConfig, train
    monkeypatch.setenv("SENSE_CACHE", str(tmp_path / "cache"))
    cfg = ImagingConfig(n0=2, roi_size_m=(24.0, 24.0, 0.0), voxel_m=3.0)
    tc = TrainConfig.preset("net9", n_train=16, n_val=4, epochs=1, batch_size=8,
                            imaging=cfg.to_dict())
    out = tmp_path / "net9.pt"
    summary = train(tc, out, progress=False)
    assert out.exists() and summary["epochs_run"] == 1
    assert out.stat().st_size < 5 * 2**20
    im = Imager.from_checkpoint(out, "cpu")
    assert im.cfg == cfg and im.train_cfg["loss"] == "ohem1"
    rng = np.random.default_rng(3)
    y = measure(cfg, [sample_scene(cfg, rng)], rng)[0]
    voxels, detections = im.image(y)
    assert voxels.shape == (8, 8)
    for d in detections:
        assert voxels.reshape(-1)[d.voxel] >= im.threshold == 0.1
        assert d.value == pytest.approx(voxels.reshape(-1)[d.voxel])
    with pytest.raises(ValueError, match="shape"):
        im.image(y[:-1])


def test_training_config_errors_name_the_parameter():
    from sense_nodes.core.imaging.training import TrainConfig
    with pytest.raises(ValueError, match="loss"):
        TrainConfig(loss="l2")
    with pytest.raises(ValueError, match="preset"):
        TrainConfig.preset("net11")


def test_inference_optimisation_keeps_the_output():
    from sense_nodes.core.imaging.imager import optimize_for_inference
    torch.manual_seed(1)
    net = build_network("rescnn", 3, 2, (12, 12)).eval()
    x = torch.randn(2, 3, 12, 12)
    with torch.inference_mode():
        ref = net(x)
        fp32 = optimize_for_inference(net, torch.device("cpu"), precision="float32")
        assert fp32.dtype == torch.float32 and fp32.memory_format == torch.channels_last
        assert torch.allclose(ref, fp32(x), atol=1e-4)
        bf16 = optimize_for_inference(net, torch.device("cpu"), precision="bfloat16")
        out = bf16(x)
        assert out.dtype == torch.float32 and bf16.dtype == torch.bfloat16
        assert torch.allclose(ref, out, atol=0.03)      # bfloat16 keeps ~3 significant digits
    assert net(x).dtype == torch.float32                # the caller's network is untouched
    with pytest.raises(ValueError, match="precision"):
        optimize_for_inference(net, torch.device("cpu"), precision="int8")


def test_sigmoid_head_bounds_the_image_and_old_checkpoints_load_linear(tmp_path):
    from sense_nodes.core.checkpoint import save_checkpoint
    from sense_nodes.core.imaging.training import (CHECKPOINT_KIND, CHECKPOINT_VERSION, TrainConfig,
                                                   load_network, make_network)
    torch.manual_seed(2)
    x = 5 * torch.randn(2, 3, 10, 10)
    net = build_network("rescnn", 3, 2, (10, 10)).eval()
    out = net(x)
    assert out.min() >= 0 and out.max() <= 1
    lin = build_network("rescnn", 3, 2, (10, 10), head="linear").eval()
    lin.load_state_dict(net.state_dict())
    assert torch.allclose(torch.sigmoid(lin(x)), out, atol=1e-6)
    with pytest.raises(ValueError, match="head"):
        build_network("rescnn", 3, 2, (10, 10), head="relu")
    # a checkpoint written before `head` existed has a linear output
    cfg = ImagingConfig(n0=2, roi_size_m=(30.0, 30.0, 0.0))
    tc = TrainConfig.preset("net10", n_train=32, n_val=4, imaging=cfg.to_dict())
    old = {k: v for k, v in tc.__dict__.items() if k not in ("head", "bf16", "clip_grad", "init",
                                                               "n_fresh")}
    save_checkpoint(tmp_path / "old.pt", kind=CHECKPOINT_KIND, version=CHECKPOINT_VERSION,
                    config=dict(train_config=old, imaging_config=cfg.to_dict()),
                    state_dict=make_network(tc, cfg).state_dict(), extra=dict(history=[]))
    loaded, _, tcd = load_network(tmp_path / "old.pt")
    assert tcd["head"] == "linear" and loaded.sigmoid is False


def test_warm_start_begins_from_the_init_checkpoint(tmp_path, monkeypatch):
    from sense_nodes.core.imaging.training import TrainConfig, load_network, train
    monkeypatch.setenv("SENSE_CACHE", str(tmp_path / "cache"))
    cfg = ImagingConfig(n0=2, roi_size_m=(24.0, 24.0, 0.0), voxel_m=3.0)
    small = dict(n_train=16, n_val=4, epochs=1, batch_size=8, imaging=cfg.to_dict())
    train(TrainConfig.preset("net10", **small), tmp_path / "a.pt", progress=False)
    tc = TrainConfig.preset("net9", init=str(tmp_path / "a.pt"), lr=1e-12, n_fresh=8, **small)
    train(tc, tmp_path / "b.pt", progress=False)
    a, b = load_network(tmp_path / "a.pt")[0], load_network(tmp_path / "b.pt")[0]
    assert load_network(tmp_path / "b.pt")[2]["init"] == str(tmp_path / "a.pt")
    wa, wb = a.state_dict(), b.state_dict()
    for k in wa:
        if "running" not in k and "num_batches" not in k:   # batch-norm statistics move
            assert torch.allclose(wa[k].float(), wb[k].float(), atol=1e-3), k


@pytest.mark.parametrize("name,loss,eta", [("net9", "ohem1", 10.0), ("net10", "ohem2", 25.0)])
def test_shipped_checkpoints_are_the_papers_networks(name, loss, eta):
    from sense_nodes.core.imaging.imager import CHECKPOINT_DIR
    from sense_nodes.core.imaging.training import load_network
    path = CHECKPOINT_DIR / f"{name}.pt"
    assert path.stat().st_size < 2 * 2**20
    net, cfg, tc = load_network(path)
    assert (tc["loss"], tc["eta"], tc["alpha"], tc["arch"], tc["input"]) == (loss, eta, 1.0, "rescnn", "bp")
    assert tc["head"] == "sigmoid"
    assert [b.conv.out_channels for b in net.blocks] == list(PAPER_CHANNELS)
    assert cfg == ImagingConfig()
    assert tc["init"] is None or "/" not in tc["init"]   # no machine paths in shipped files
    with torch.inference_mode():
        out = net(torch.randn(1, 3, 40, 40))
    assert out.shape == (1, 40, 40) and 0 <= out.min() and out.max() <= 1


def test_warm_start_copies_the_shared_layers_of_another_shape():
    from sense_nodes.core.imaging.training import warm_start
    res = build_network("rescnn", 3, 2, (8, 8))
    cnn = build_network("cnn", 3, 2, (8, 8))           # Net-3: no skip convolutions
    assert warm_start(cnn, res) == []
    for k, v in cnn.state_dict().items():
        assert torch.equal(v, res.state_dict()[k]), k
    sp = build_network("rescnn", 1, 2, (8, 8))         # DNN<SP>: one input channel
    assert warm_start(sp, res) == ["blocks.0.conv.weight", "blocks.0.skip.weight"]
    assert torch.equal(sp.state_dict()["head.weight"], res.state_dict()["head.weight"])
    with pytest.raises(ValueError, match="shares no layer"):
        warm_start(sp, build_network("mlp", 0, 2, (8, 8), n_measurements=4))


def test_cached_sets_are_made_again_when_the_generator_code_changes(tmp_path, monkeypatch):
    """A set cached by older scene or measurement code is not reused."""
    from sense_nodes.core.imaging import dataset
    from sense_nodes.core.imaging.sensing_matrix import build_sensing_matrix
    monkeypatch.setenv("SENSE_CACHE", str(tmp_path / "cache"))
    cfg = ImagingConfig(n0=2, roi_size_m=(24.0, 24.0, 0.0), voxel_m=3.0)
    S = build_sensing_matrix(cfg)
    a = dataset.cached(cfg, S, 4, seed=1, progress=False)
    files = set((tmp_path / "cache" / "imaging").glob("set_*.npz"))
    assert len(files) == 1
    again = dataset.cached(cfg, S, 4, seed=1, progress=False)          # same code: read back
    assert np.array_equal(again.x, a.x) and set((tmp_path / "cache" / "imaging").glob("set_*.npz")) == files
    monkeypatch.setattr(dataset, "generator_version", lambda: "edited-code")
    dataset.cached(cfg, S, 4, seed=1, progress=False)
    assert len(set((tmp_path / "cache" / "imaging").glob("set_*.npz"))) == 2


def test_a_checkpoint_carrying_code_is_refused_by_the_imager_and_the_bench(tmp_path):
    """A copy of a shipped imager with one extra pickled object: refused, nothing runs."""
    import os
    import pickle

    from sense_nodes.cli.main import main as sense
    from sense_nodes.core.checkpoint import CheckpointError
    from sense_nodes.core.imaging.imager import CHECKPOINT_DIR, Imager
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    ck = torch.load(CHECKPOINT_DIR / "net9.pt", weights_only=True)
    ck["extra"]["payload"] = Evil()
    bad = tmp_path / "net9.pt"
    torch.save(ck, bad, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="nothing executed"):
        Imager.from_checkpoint(bad)
    assert sense(["bench", "imaging", "--checkpoint", str(bad), "--repeats", "1", "--no-3d"]) == 2
    assert sense(["bench", "imaging", "--checkpoint", str(tmp_path / "missing.pt"), "--repeats", "1"]) == 2
    assert not marker.exists()
