"""Training of the imaging DNNs (Sec. V-C): RMSprop, initial learning rate
1e-3 halved when the validation loss stagnates, best checkpoint kept.

The paper trains 200 epochs on 90,000 images on an A100; here the epoch and
sample counts are parameters, and the plateau patience (5 of 200 epochs) is
scaled to the epoch count, so a run fits a two-core CPU. The paper's budget
(18 million image passes) cannot be met on this CPU: one thread manages
about 2,000 image passes a minute in bfloat16, so a 45-minute run sees
about 0.5 % of it. On the CPU the forward pass runs under bfloat16 autocast
(weights, loss and optimiser stay float32), about twice as fast as float32.

OHEM-1 with eta = 10 (Net-9) starts in the basin of the all-zero image (its
loss there, M / (M + eta M) = 0.091, is where a cold start stays for
thousands of steps here); ``init`` warm-starts a network from another
checkpoint of the same shape (e.g. Net-10, whose OHEM-2 loss weights the
positives eta-fold more and leaves that basin), which the checkpoint records.
A network of another shape starts from the layers it shares with the init
checkpoint (``warm_start``): a CNN or Dn-CNN of Table IV from a resCNN (all but
the skip convolutions), DNN<SP> of Table III from Net-9 (all but the input layer).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sense_nodes.core import checkpoint as ckpt

from sense_nodes.core.imaging.backprojection import bp_features
from sense_nodes.core.imaging.dataset import INPUTS, ImagingSet, cached, generate
from sense_nodes.core.imaging.geometry import ImagingConfig, n_measurements
from sense_nodes.core.imaging.losses import LOSSES, imaging_loss
from sense_nodes.core.imaging.networks import ARCHS, HEADS, build_network
from sense_nodes.core.imaging.sensing_matrix import build_sensing_matrix

CHECKPOINT_KIND = "imaging"
CHECKPOINT_VERSION = 2  # 1: an unverified torch pickle (refused)

# Table III / IV rows. eta is not given per network: OHEM-1 uses eta = 10,
# where Fig. 13(a) has its lowest MSE and highest SSIM; OHEM-2 uses eta = 25,
# where Fig. 13(b)'s detection rate saturates near Net-10's 97.55 %.
PRESETS = {
    "net1": dict(arch="dn-cnn", loss="mse", alpha=0.0),
    "net2": dict(arch="dn-rescnn", loss="mse", alpha=0.0),
    "net3": dict(arch="cnn", loss="mse", alpha=0.0),
    "net4": dict(arch="cnn", loss="mse", alpha=1.0),
    "net5": dict(arch="rescnn", loss="mse", alpha=0.0),
    "net6": dict(arch="rescnn", loss="mse", alpha=1.0),
    "net7": dict(arch="rescnn", loss="ohem1", alpha=0.0, eta=10.0),
    "net8": dict(arch="rescnn", loss="ohem2", alpha=0.0, eta=25.0),
    "net9": dict(arch="rescnn", loss="ohem1", alpha=1.0, eta=10.0),
    "net10": dict(arch="rescnn", loss="ohem2", alpha=1.0, eta=25.0),
    # Table III: the same training strategy on other inputs
    "dnn_y": dict(arch="mlp", input="y", loss="ohem1", alpha=1.0, eta=10.0),
    "dnn_sp": dict(arch="rescnn", input="sp", loss="ohem1", alpha=1.0, eta=10.0),
}


@dataclass
class TrainConfig:
    name: str = "net9"
    arch: str = "rescnn"
    input: str = "bp"
    loss: str = "ohem1"
    eta: float = 10.0
    alpha: float = 1.0
    n_train: int = 6000
    n_val: int = 500
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    patience: int | None = None       # None: 5 epochs of 200, scaled to ``epochs``
    time_budget_min: float | None = None
    sparsity: int = 6                 # M° of SP when input == "sp"
    seed: int = 0
    threads: int | None = None
    head: str = "sigmoid"             # output activation (networks.HEADS)
    bf16: bool = True                 # bfloat16 autocast of the forward pass on the CPU
    clip_grad: float | None = 5.0     # gradient-norm clipping (None: off)
    init: str | None = None           # checkpoint to warm-start from (its shared layers)
    n_fresh: int = 0                  # extra scenes simulated anew every epoch (0: none)
    imaging: dict = field(default_factory=lambda: ImagingConfig().to_dict())

    def __post_init__(self):
        checks = [(self.arch in ARCHS, "arch", f"one of {ARCHS}"),
                  (self.input in INPUTS, "input", f"one of {INPUTS}"),
                  (self.loss in LOSSES, "loss", f"one of {LOSSES}"),
                  (self.eta > 0, "eta", "> 0"), (self.alpha >= 0, "alpha", ">= 0"),
                  (self.n_train >= self.batch_size, "n_train", ">= batch_size"),
                  (self.n_val >= 1, "n_val", ">= 1"), (self.epochs >= 1, "epochs", ">= 1"),
                  (self.batch_size >= 1, "batch_size", ">= 1"), (self.lr > 0, "lr", "> 0"),
                  (self.head in HEADS, "head", f"one of {HEADS}"),
                  (self.n_fresh >= 0, "n_fresh", ">= 0"),
                  ((self.arch == "mlp") == (self.input == "y"), "arch/input",
                   "arch 'mlp' exactly when input is 'y'")]
        for ok, name, need in checks:
            if not ok:
                raise ValueError(f"bad training parameter {name}={getattr(self, name, None)!r}: "
                                 f"need {need}")

    @property
    def plateau_patience(self) -> int:
        if self.patience is not None:
            return self.patience
        return max(1, round(5 * self.epochs / 200))

    @classmethod
    def preset(cls, name: str, **overrides) -> "TrainConfig":
        if name not in PRESETS:
            raise ValueError(f"preset={name!r} must be one of {sorted(PRESETS)}")
        return cls(name=name, **{**PRESETS[name], **overrides})


def in_channels(kind: str) -> int:
    return {"bp": 3, "sp": 1, "y": 0}[kind]


def make_network(tc: TrainConfig, cfg: ImagingConfig) -> torch.nn.Module:
    dims = 3 if cfg.is_3d else 2
    return build_network(tc.arch, in_channels(tc.input), dims, cfg.grid_shape,
                         n_measurements=n_measurements(cfg), head=tc.head)


def batch_features(data: ImagingSet, idx: np.ndarray, cfg: ImagingConfig) -> np.ndarray:
    """Network input for rows ``idx`` of a dataset (same transform as Imager.features)."""
    x = data.x[idx]
    if data.kind == "bp":
        return bp_features(x, cfg.grid_shape)
    if data.kind == "sp":
        return x.reshape((len(idx), 1) + cfg.grid_shape).astype(np.float32)
    scale = 1.0 / math.sqrt(cfg.noise_var)
    return (np.concatenate([x.real, x.imag], axis=1) * scale).astype(np.float32)


def evaluate_loss(net, data: ImagingSet, tc: TrainConfig, cfg: ImagingConfig, device,
                  batch: int = 64):
    """(loss, plain MSE) of ``net`` on a dataset."""
    net.eval()
    tot = mse = 0.0
    with torch.inference_mode():
        for s in range(0, len(data), batch):
            idx = np.arange(s, min(s + batch, len(data)))
            x = torch.from_numpy(batch_features(data, idx, cfg)).to(device)
            t = torch.from_numpy(data.labels[idx].reshape((len(idx),) + cfg.grid_shape)).to(device)
            loss, m = imaging_loss(net(x), t, tc.loss, tc.eta, tc.alpha)
            tot += float(loss) * len(idx)
            mse += float(m) * len(idx)
    return tot / len(data), mse / len(data)


def train(tc: TrainConfig, out: str | Path, device: str = "cpu", progress: bool = True) -> dict:
    """Train one network and save the best-validation checkpoint to ``out``.
    Returns a summary (losses, seconds, epochs run)."""
    if tc.threads:
        torch.set_num_threads(tc.threads)
    torch.manual_seed(tc.seed)
    cfg = ImagingConfig.from_dict(tc.imaging)
    dev = torch.device(device)
    S = build_sensing_matrix(cfg)
    train_set = cached(cfg, S, tc.n_train, tc.seed * 2 + 11, tc.input, sparsity=tc.sparsity,
                       progress=progress)
    val_set = cached(cfg, S, tc.n_val, tc.seed * 2 + 12, tc.input, sparsity=tc.sparsity,
                     progress=progress)
    net = make_network(tc, cfg)
    if tc.init:
        fresh = warm_start(net, load_network(tc.init)[0])
        if fresh and progress:
            tqdm.write(f"{tc.name}: warm start from {tc.init}; freshly initialised: "
                       f"{', '.join(fresh)}")
    net = net.to(dev)
    fmt = torch.channels_last if (cfg.is_3d is False and tc.arch != "mlp") else torch.contiguous_format
    net = net.to(memory_format=fmt)
    use_bf16 = tc.bf16 and dev.type == "cpu"
    opt = torch.optim.RMSprop(net.parameters(), lr=tc.lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5,
                                                       patience=tc.plateau_patience)
    rng = np.random.default_rng(tc.seed)
    history, best, t0 = [], math.inf, time.perf_counter()
    base_set = train_set
    for epoch in range(tc.epochs):
        if tc.n_fresh:
            fresh = generate(cfg, S, tc.n_fresh, 10_000 * (tc.seed + 1) + epoch, tc.input,
                             sparsity=tc.sparsity, progress=False)
            train_set = ImagingSet(base_set.kind, np.concatenate([base_set.x, fresh.x]),
                                   np.concatenate([base_set.labels, fresh.labels]),
                                   base_set.positions + fresh.positions)
        steps = len(train_set) // tc.batch_size
        net.train()
        order = rng.permutation(len(train_set))
        bar = tqdm(range(steps), desc=f"{tc.name} epoch {epoch + 1}/{tc.epochs}", unit="batch",
                   disable=not progress)
        run_loss = run_mse = 0.0
        for k in bar:
            idx = np.sort(order[k * tc.batch_size:(k + 1) * tc.batch_size])
            x = torch.from_numpy(batch_features(train_set, idx, cfg)).to(dev)
            if x.dim() == 4:
                x = x.contiguous(memory_format=fmt)
            t = torch.from_numpy(train_set.labels[idx].reshape((len(idx),) + cfg.grid_shape)).to(dev)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
                pred = net(x)
            loss, mse = imaging_loss(pred.float(), t, tc.loss, tc.eta, tc.alpha)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if tc.clip_grad:
                torch.nn.utils.clip_grad_norm_(net.parameters(), tc.clip_grad)
            opt.step()
            run_loss += float(loss.detach())
            run_mse += float(mse)
            bar.set_postfix(loss=f"{run_loss / (k + 1):.4g}", mse=f"{run_mse / (k + 1):.3g}")
        val_loss, val_mse = evaluate_loss(net, val_set, tc, cfg, dev)
        sched.step(val_loss)
        history.append(dict(epoch=epoch + 1, train_loss=run_loss / steps, train_mse=run_mse / steps,
                            val_loss=val_loss, val_mse=val_mse, lr=opt.param_groups[0]["lr"],
                            seconds=time.perf_counter() - t0))
        if progress:
            tqdm.write(f"{tc.name} epoch {epoch + 1}: val loss {val_loss:.4g}, val MSE "
                       f"{val_mse:.4g}, lr {opt.param_groups[0]['lr']:.2g}")
        if val_loss < best:
            best = val_loss
            save_checkpoint(out, net, tc, cfg, history)
        else:  # keep the history current even when the weights are not
            _update_history(out, history)
        if tc.time_budget_min and time.perf_counter() - t0 > 60 * tc.time_budget_min:
            tqdm.write(f"{tc.name}: time budget of {tc.time_budget_min} min reached")
            break
    return dict(best_val_loss=best, epochs_run=len(history), train_seconds=time.perf_counter() - t0,
                history=history)


def warm_start(net: torch.nn.Module, init_net: torch.nn.Module) -> list[str]:
    """Copy into ``net`` every tensor of ``init_net`` with the same name and shape:
    all of them for networks of one shape, else the shared layers (a CNN from a
    resCNN lacks the skip convolutions; DNN<SP> takes one input channel, not
    A^H y's three). Returns the names left at their fresh initialisation."""
    own = net.state_dict()
    shared = {k: v for k, v in init_net.state_dict().items()
              if k in own and own[k].shape == v.shape}
    if not shared:
        raise ValueError("the init checkpoint shares no layer with this network")
    net.load_state_dict(shared, strict=False)
    return sorted(k for k in own if k not in shared)


def save_checkpoint(path, net, tc: TrainConfig, cfg: ImagingConfig, history: list) -> None:
    """Weights in float16 (half the size; loaded back as float32) with both
    configs and the training history, through the shared safe writer."""
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    ckpt.save_checkpoint(path, kind=CHECKPOINT_KIND, version=CHECKPOINT_VERSION,
                         config=dict(train_config=dataclasses.asdict(tc), imaging_config=cfg.to_dict()),
                         state_dict=state, extra=dict(history=history))


def read_checkpoint(path) -> ckpt.Checkpoint:
    """The verified checkpoint of an imaging network (CheckpointError if unusable)."""
    path = Path(path)
    if not path.exists():
        raise ckpt.CheckpointError(f"{path}: no such checkpoint file (train one with `sense train imaging`)")
    return ckpt.load_checkpoint(path, kind=CHECKPOINT_KIND, version=CHECKPOINT_VERSION)


def _update_history(path, history):
    path = Path(path)
    if path.exists():
        ck = read_checkpoint(path)
        ckpt.save_checkpoint(path, kind=CHECKPOINT_KIND, version=CHECKPOINT_VERSION, config=ck.config,
                             state_dict=ck.state_dict, extra=dict(ck.extra, history=history))


def load_network(path):
    """(network in float32 on the CPU, ImagingConfig, train-config dict) from a checkpoint."""
    ck = read_checkpoint(path)
    try:
        # train configs written before the output activation was a parameter have a linear head
        tc = TrainConfig(**{"head": "linear", **ck.config["train_config"]})
        cfg = ImagingConfig.from_dict(ck.config["imaging_config"])
        net = make_network(tc, cfg)
    except (KeyError, TypeError, ValueError) as exc:
        raise ckpt.CheckpointError(f"{ck.path}: config does not describe an imaging network ({exc})") from None
    ckpt.load_state(net, ck)
    return net.eval(), cfg, dataclasses.asdict(tc)
