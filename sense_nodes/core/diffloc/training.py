"""Training of every DiffLoc model kind, one network per BS (Sec. III-B:
"we train one score network per BS and fuse their predictions").

- ``mlp``   DiffLoc-MLP, DDPM noise prediction (Eq. 12) with dynamic soft
            labels (Sec. IV-B) by default;
- ``unet``  DiffLoc-UNet, the same objective, soft labels off (Fig. 9);
- ``ct``    DiffLoc-CT, consistency training of the UNet (Eq. 22);
- ``supervised_mlp``, ``cnn``  position regression (MSE), Sec. V-B1/2;
- ``grid``  grid classifier with bilinear soft labels, Sec. V-B3.

Adam, batch 32 (Table II); the paper's learning rate is not legible, we use
1e-3. Training stops after ``steps`` optimiser steps or ``time_budget_s``
per BS, keeping the weights of the best validation loss (the paper stops
early on validation loss). Links with no path (``valid`` false) are left out.

Dynamic soft labels (Sec. IV-B): the target is x0 + sigma_s(t) n with
sigma_s(t) = sigma0 (t / T)^rho, sigma0 = 20 cm, rho = 0.8 (Table II); the
paper's exact time dependence is not legible, this one is zero at t = 0 and
grows with the diffusion time.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from sense_nodes.core.diffloc.consistency import ConsistencyConfig, ConsistencyModel
from sense_nodes.core.diffloc.fingerprint import FeatureNorm, PositionNorm
from sense_nodes.core.diffloc.grid_fusion import make_grid, soft_labels
from sense_nodes.core.diffloc.networks import UNET_WIDTHS, CNNRegressor, GridClassifier, Regressor, ScoreMLP, ScoreUNet
from sense_nodes.core.diffloc.sampler import DDIMScheduler
from sense_nodes.core.diffloc.score_fusion import GaussianPrior

MODELS = ("mlp", "unet", "ct", "supervised_mlp", "cnn", "grid")
DIFFUSION = ("mlp", "unet")
CHECKPOINT_KIND = "diffloc"
CHECKPOINT_VERSION = 1
GRID_SPACINGS_M = (4.0, 8.0, 16.0)
MIN_TRAIN_LINKS = 8
DEFAULT_STEPS = {"mlp": 12000, "unet": 12000, "ct": 12000, "supervised_mlp": 6000, "cnn": 1500, "grid": 4000}
# Principal components of the fingerprint the networks see (FeatureNorm).
# The consistency model's were chosen on the validation split among 128, 64
# and 32: its request latency is mostly the projection of each station's
# 28,672-value fingerprint onto them, and with about 1,100 training links a
# station, fewer components did not cost accuracy. The others keep 128.
DEFAULT_COMPONENTS = {"ct": 64}
COMPONENTS = 128


def default_components(model: str) -> int:
    return DEFAULT_COMPONENTS.get(model, COMPONENTS)


def check_unet_widths(widths) -> tuple:
    """The UNet's encoder widths as a tuple of ints; ValueError unless at
    least two, all positive (one level has no encoder step to skip over)."""
    widths = tuple(int(w) for w in widths)
    if len(widths) < 2 or min(widths) < 1:
        raise ValueError(f"UNet widths must be at least two positive numbers (got {widths})")
    return widths


@dataclass
class TrainConfig:
    model: str
    steps: int | None = None          # optimiser steps per BS (None: DEFAULT_STEPS)
    batch_size: int = 32
    lr: float = 1e-3
    components: int | None = None     # principal components of the fingerprint (0 = all; None: per model)
    unet_widths: tuple = UNET_WIDTHS  # encoder widths of the UNet (unet, ct)
    soft_labels: bool | None = None   # None: on for mlp only (Fig. 9)
    sigma0_m: float = 0.20
    rho: float = 0.8
    grid_spacing_m: float | None = None  # None: tuned on validation over GRID_SPACINGS_M
    dropout: float = 0.1
    scheme: str = "random"            # split scheme: random or user
    time_budget_s: float | None = None  # per BS
    eval_every: int = 250
    seed: int = 0
    train_fraction: float = 1.0       # share of the training split used (learning curves)
    device: str = "cpu"               # where the networks train (cpu or cuda)

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r} (one of {', '.join(MODELS)})")
        if self.steps is None:
            self.steps = DEFAULT_STEPS[self.model]
        if self.soft_labels is None:
            self.soft_labels = self.model == "mlp"
        for name, lo in (("steps", 1), ("batch_size", 2), ("eval_every", 1)):
            if getattr(self, name) < lo:
                raise ValueError(f"{name} must be >= {lo} (got {getattr(self, name)})")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a finite number > 0 (got {self.lr})")
        if self.components is None:
            self.components = default_components(self.model)
        if self.components < 0:
            raise ValueError(f"components must be >= 0 (got {self.components})")
        self.unet_widths = check_unet_widths(self.unet_widths)
        if self.grid_spacing_m is not None and not self.grid_spacing_m > 0:
            raise ValueError(f"grid spacing must be > 0 m (got {self.grid_spacing_m})")
        if self.scheme not in ("random", "user"):
            raise ValueError(f"split scheme must be random or user (got {self.scheme!r})")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu or cuda (got {self.device!r})")
        if not 0 < self.train_fraction <= 1:
            raise ValueError(f"train fraction must be in (0, 1] (got {self.train_fraction})")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def build_net(model: str, cond_dim: int, ports: int, taps: int, cells: int = 0, dropout: float = 0.1,
              unet_widths=UNET_WIDTHS) -> nn.Module:
    if model == "mlp":
        return ScoreMLP(cond_dim, dropout=dropout)
    if model in ("unet", "ct"):
        return ScoreUNet(cond_dim, widths=tuple(unet_widths))
    if model == "supervised_mlp":
        return Regressor(cond_dim, dropout=dropout)
    if model == "cnn":
        return CNNRegressor(ports, taps, dropout=dropout)
    if model == "grid":
        return GridClassifier(cond_dim, cells, dropout=dropout)
    raise ValueError(f"unknown model {model!r}")


class _Objective:
    """The loss of one model kind on a batch (x0 normalised positions,
    cond features); ``val`` evaluates it with fixed noise."""

    def __init__(self, cfg: TrainConfig, net: nn.Module, pos_norm: PositionNorm, grid=None):
        self.cfg, self.net, self.pos_norm, self.grid = cfg, net, pos_norm, grid
        self.sched = DDIMScheduler()
        self.cm = ConsistencyModel(net, ConsistencyConfig()) if cfg.model == "ct" else None

    def __call__(self, x0, cond, xy, gen=None):
        m = self.cfg.model
        if m in DIFFUSION:
            T = self.sched.num_train_timesteps
            t = torch.randint(0, T, (len(x0),), generator=gen).to(x0.device)
            if self.cfg.soft_labels:
                s = self.cfg.sigma0_m / self.pos_norm.half * (t.float() / T) ** self.cfg.rho
                x0 = x0 + s[:, None] * torch.randn(x0.shape, generator=gen).to(x0.device)
            eps = torch.randn(x0.shape, generator=gen).to(x0.device)
            xt = self.sched.add_noise(x0, eps, t)
            return ((self.net(xt, t.float() / T, cond) - eps) ** 2).mean()
        if m == "ct":
            return self.cm.loss(x0, cond, generator=gen)[0]
        if m == "grid":
            centres, lo, spacing, shape = self.grid
            q = torch.from_numpy(soft_labels(xy, lo, spacing, shape)).to(cond.device)
            return -(q * torch.log_softmax(self.net(cond), dim=1)).sum(1).mean()
        return ((self.net(cond) - x0) ** 2).sum(1).mean()

    def after_step(self):
        if self.cm is not None:
            self.cm.update_target()


def _batches(n, batch, gen):
    while True:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n - batch + 1 if n >= batch else 1, batch):
            yield perm[i:i + batch]


def train_station(cfg: TrainConfig, feats_tr, x0_tr, xy_tr, feats_va, x0_va, xy_va, pos_norm, ports, taps,
                  grid=None, desc="", progress=True) -> tuple[nn.Module, dict]:
    """Train one BS's network; returns (net with the best validation
    weights, on the CPU, summary). Every random draw (batches, noise
    levels, noises) comes from one CPU generator and is moved to
    ``cfg.device``, so a seed draws the same batches and noises on a GPU as
    on the CPU; only dropout masks come from the device's own generator."""
    torch.manual_seed(cfg.seed)
    dev = torch.device(cfg.device)
    cells = len(grid[0]) if grid is not None else 0
    net = build_net(cfg.model, feats_tr.shape[1], ports, taps, cells, cfg.dropout, cfg.unet_widths).to(dev)
    obj = _Objective(cfg, net, pos_norm, grid)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    Xtr, Ytr = torch.from_numpy(feats_tr).to(dev), torch.from_numpy(x0_tr).to(dev)
    Xva, Yva = torch.from_numpy(feats_va).to(dev), torch.from_numpy(x0_va).to(dev)
    best, best_state, history = float("inf"), None, []
    t0 = time.perf_counter()
    batches = _batches(len(Xtr), min(cfg.batch_size, len(Xtr)), gen)
    bar = tqdm(range(cfg.steps), desc=desc, disable=not progress, leave=False, unit="step")
    step = 0
    for step in bar:
        net.train()
        idx = next(batches)
        loss = obj(Ytr[idx], Xtr[idx], xy_tr[idx.numpy()], gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        obj.after_step()
        last = step + 1 == cfg.steps
        over = cfg.time_budget_s is not None and time.perf_counter() - t0 > cfg.time_budget_s
        if (step + 1) % cfg.eval_every == 0 or last or over:
            net.eval()
            with torch.no_grad():
                vgen = torch.Generator().manual_seed(1234)
                v = float(np.mean([float(obj(Yva[i:i + 256], Xva[i:i + 256], xy_va[i:i + 256], vgen))
                                   for i in range(0, len(Xva), 256)])) if len(Xva) else float(loss)
            history.append({"step": step + 1, "train_loss": float(loss.detach()), "val_loss": v})
            bar.set_postfix(val=f"{v:.4g}")
            if v < best:
                best = v
                best_state = {k: t.detach().clone() for k, t in net.state_dict().items()}
        if over:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.to("cpu").eval()
    return net, {"steps": step + 1, "seconds": time.perf_counter() - t0, "best_val_loss": best,
                 "history": history}


def training_subset(tr: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """A seeded random share of the training indices, in their original
    order. A learning curve (error against training samples) says whether
    a model is limited by how densely the area is sampled: the same draw
    serves every model and the k-NN floor, so their curves are comparable."""
    if fraction >= 1:
        return tr
    keep = max(1, int(round(fraction * len(tr))))
    rng = np.random.default_rng([int(seed), 23])
    return np.sort(rng.choice(tr, size=keep, replace=False))


def prepare(data, cfg: TrainConfig):
    """Split indices, position normalisation and prior from the training
    split (shared by all stations)."""
    tr, va = data.indices("train", cfg.scheme), data.indices("val", cfg.scheme)
    tr = training_subset(tr, cfg.train_fraction, cfg.seed)
    pos_norm = PositionNorm.fit(data.xy[tr])
    prior = GaussianPrior.fit(pos_norm.to_unit(data.xy[tr]))
    return tr, va, pos_norm, prior


def train(data, cfg: TrainConfig, out_path, progress: bool = True, log=print) -> dict:
    """Train ``cfg.model`` for every BS of ``data`` (a PositioningData) and
    save one checkpoint holding all stations' networks, their fingerprint
    normalisation, the position normalisation and the prior."""
    from sense_nodes.core.checkpoint import save_checkpoint
    tr, va, pos_norm, prior = prepare(data, cfg)
    comps = 0 if cfg.model == "cnn" else cfg.components
    spacings = [cfg.grid_spacing_m] if cfg.grid_spacing_m else (list(GRID_SPACINGS_M) if cfg.model == "grid" else [None])
    t_start = time.perf_counter()
    best_run = None
    for spacing in spacings:
        grid = None
        if spacing is not None:
            lo = data.xy[tr].min(0) - spacing / 2
            hi = data.xy[tr].max(0) + spacing / 2
            centres, shape = make_grid(lo, hi, spacing)
            grid = (centres, lo, spacing, shape)
        nets, norms, summaries, trained = [], [], [], []
        for b in range(data.num_bs):
            tb = tr[data.valid[tr, b]]
            vb = va[data.valid[va, b]]
            if len(tb) < MIN_TRAIN_LINKS:
                log(f"BS{b}: only {len(tb)} training links with a path; station not trained")
                D = data.fp.shape[2]
                fn = FeatureNorm(np.zeros(D, np.float32), np.ones(D, np.float32),
                                 np.zeros((D, comps), np.float32) if comps else None,
                                 np.ones(comps, np.float32) if comps else None)
                nets.append(build_net(cfg.model, fn.out_dim, data.ports, data.taps,
                                      len(grid[0]) if grid else 0, cfg.dropout, cfg.unet_widths).eval())
                norms.append(fn)
                summaries.append({"steps": 0, "seconds": 0.0, "best_val_loss": None})
                trained.append(False)
                continue
            fn = FeatureNorm.fit(data.fp[tb, b], comps, seed=cfg.seed)
            desc = f"{cfg.model} BS{b}" + (f" grid {spacing:g} m" if spacing else "")
            net, summ = train_station(cfg, fn(data.fp[tb, b]), pos_norm.to_unit(data.xy[tb]), data.xy[tb],
                                      fn(data.fp[vb, b]), pos_norm.to_unit(data.xy[vb]), data.xy[vb],
                                      pos_norm, data.ports, data.taps, grid, desc, progress)
            log(f"{desc}: {summ['steps']} steps, {summ['seconds']:.0f} s, best val loss {summ['best_val_loss']:.4g} "
                f"({len(tb)} training links)")
            nets.append(net)
            norms.append(fn)
            summaries.append({k: v for k, v in summ.items() if k != "history"})
            trained.append(True)
        run = dict(nets=nets, norms=norms, summaries=summaries, trained=trained, grid=grid, spacing=spacing)
        if len(spacings) > 1:
            run["val_error_m"] = _grid_val_error(data, va, run, pos_norm)
            log(f"grid {spacing:g} m: fused validation error {run['val_error_m']:.2f} m")
        if best_run is None or run.get("val_error_m", 0) < best_run.get("val_error_m", 0):
            best_run = run
    seconds = time.perf_counter() - t_start
    config = {"model": cfg.model, "num_bs": data.num_bs, "ports": data.ports, "taps": data.taps,
              "cond_dims": [fn.out_dim for fn in best_run["norms"]], "dropout": cfg.dropout,
              "unet_widths": list(cfg.unet_widths),
              "trained_bs": best_run["trained"], "train": cfg.to_dict(), "train_seconds": seconds,
              "consistency": ConsistencyConfig().to_dict(), "bs_pos": data.bs_pos.tolist(),
              "noise": data.noise, "magnitude": data.magnitude, "grid_spacing_m": best_run["spacing"],
              "grid_shape": list(best_run["grid"][3]) if best_run["grid"] else None,
              "stations": best_run["summaries"]}
    extra = {"feature_norm": [fn.to_dict() for fn in best_run["norms"]], "pos_norm": pos_norm.to_dict(),
             "prior": prior.to_dict()}
    if best_run["grid"] is not None:
        extra["grid_centres"] = torch.from_numpy(best_run["grid"][0].astype(np.float32))
    state = nn.ModuleList(best_run["nets"]).state_dict()
    save_checkpoint(out_path, kind=CHECKPOINT_KIND, version=CHECKPOINT_VERSION, config=config,
                    state_dict=state, extra=extra)
    return {"train_seconds": seconds, "stations": best_run["summaries"], "grid_spacing_m": best_run["spacing"],
            "checkpoint": str(out_path)}


def _grid_val_error(data, va, run, pos_norm) -> float:
    from sense_nodes.core.diffloc.grid_fusion import fuse_maps
    logps, masks = [], []
    centres = torch.from_numpy(run["grid"][0].astype(np.float32))
    for b, (net, fn) in enumerate(zip(run["nets"], run["norms"])):
        with torch.no_grad():
            logps.append(torch.log_softmax(net(torch.from_numpy(fn(data.fp[va, b]))), 1))
        masks.append(torch.from_numpy(data.valid[va, b] & run["trained"][b]))
    mean, _ = fuse_maps(torch.stack(logps), torch.stack(masks), centres)
    ok = torch.stack(masks).any(0).numpy()
    return float(np.mean(np.linalg.norm(mean.numpy()[ok] - data.xy[va][ok], axis=1)))
