"""Training of the cooperative-sensing networks on cached features
(:mod:`sense_nodes.core.fwa.features`), Section III-D and V-A4.

- detector (I-UDetNet + C-UDetNet jointly): binary cross-entropy on the
  scene label only, with random pair sampling: per scene a subset of
  ``uniform{MN/2, ..., MN}`` pairs, padded and masked;
- pair-supervised baseline ("SL with sigma_d"): per-pair cross-entropy on
  pair labels;
- I-ULocNet: MSE between each UAV-affected pair's coarse estimate and the
  UAV position (pairs with y^(m,n) = 1 of UAV-present scenes);
- C-ULocNet and the soft-fusion baseline: MSE of the fused position over
  the pairs the trained detector selects (Eq. 16), with tokens dropped at
  random (each kept with probability ``keep``) so a missing BS or pair is
  seen in training.

Adam, the learning rate halved when the validation loss stops falling,
the best validation epoch kept (early stopping), a time budget per model.
The paper trains 200 / 1,000 / 300 epochs at rates 1e-4 / 1e-3 / 1e-3 on
16,200 scenes on a GPU; within CPU minutes we use fewer epochs and a
higher detector rate (1e-3; recorded in each checkpoint).
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from sense_nodes.core.fwa import pipeline as pl
from sense_nodes.core.fwa.metrics import pick_threshold
from sense_nodes.core.fwa.selection import select_pairs
from sense_nodes.core.fwa.udetnet import PairSupervisedNet
from sense_nodes.core.fwa.ulocnet import POS_SCALE, IULocNet


@dataclass
class TrainConfig:
    epochs: int = 12
    batch_size: int = 16
    lr: float = 1e-3
    minutes: float = 10.0     # time budget of this model
    patience: int = 2         # epochs without improvement before halving the rate
    stop_patience: int = 4    # ... before stopping
    seed: int = 0
    min_pairs_frac: float = 0.5  # random pair sampling: subset size ~ U[MN/2, MN]
    keep: float = 0.8            # fusion training: token keep probability

    def to_dict(self):
        return asdict(self)


def _batches(n: int, size: int, rng: np.random.Generator | None):
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for s in range(0, n, size):
        yield order[s:s + size]


def random_pair_subsets(n_scenes: int, n_pairs: int, rng: np.random.Generator,
                        min_frac: float = 0.5) -> np.ndarray:
    """[n_scenes, n_pairs] bool: per scene a random subset whose size is
    uniform in [ceil(min_frac * n_pairs), n_pairs] (Section III-D)."""
    lo = int(np.ceil(min_frac * n_pairs))
    sizes = rng.integers(lo, n_pairs + 1, size=n_scenes)
    mask = np.zeros((n_scenes, n_pairs), bool)
    for i, s in enumerate(sizes):
        mask[i, rng.choice(n_pairs, size=s, replace=False)] = True
    return mask


def _fit(model, params, step_fn, n_train, val_fn, cfg: TrainConfig, name: str, log):
    """Generic loop: step_fn(batch_idx, rng) -> loss tensor; val_fn() -> float."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    opt = torch.optim.Adam(params, lr=cfg.lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=cfg.patience)
    best, best_state, bad, history = np.inf, None, 0, []
    t0 = time.perf_counter()
    deadline = t0 + 60 * cfg.minutes
    for epoch in range(cfg.epochs):
        model.train()
        losses = []
        bar = tqdm(list(_batches(n_train, cfg.batch_size, rng)), desc=f"{name} epoch {epoch + 1}/{cfg.epochs}",
                   unit="batch", leave=False)
        for idx in bar:
            loss = step_fn(idx, rng)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
            if time.perf_counter() > deadline:
                break
        model.eval()
        val = float(val_fn())
        sched.step(val)
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_loss": val,
                        "lr": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0})
        log(f"{name} epoch {epoch + 1}: train {np.mean(losses):.4f} val {val:.4f} "
            f"lr {opt.param_groups[0]['lr']:.1e} ({time.perf_counter() - t0:.0f} s)")
        if val < best - 1e-6:
            best, best_state, bad = val, copy.deepcopy(model.state_dict()), 0
        else:
            bad += 1
        if bad >= cfg.stop_patience or time.perf_counter() > deadline:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return {"best_val_loss": best, "epochs_run": len(history), "history": history,
            "train_seconds": time.perf_counter() - t0}


def _x(feat, scenes, pairs=None) -> torch.Tensor:
    """Features of scenes (and pairs) as float32 tensors."""
    if pairs is None:
        return torch.from_numpy(np.asarray(feat.x[np.sort(scenes)], np.float32))
    return torch.from_numpy(np.asarray(feat.x[scenes, pairs], np.float32))


def _scene_batch(feat, idx, mask):
    """Gather only the sampled pairs; returns (x [n, 64, 4, 64], owner
    positions into the padded [B, P] layout)."""
    order = np.argsort(idx)
    idx, mask = idx[order], mask[order]
    x = np.asarray(feat.x[idx], np.float32)  # [B, P, ...]
    return torch.from_numpy(x[mask]), torch.from_numpy(mask), order


def detector_logits(det, x_sel, mask):
    """Encode the sampled pairs, scatter into [B, P, N_e], pool, classify."""
    h = det.encoder(x_sel)
    H = torch.zeros(mask.shape + (h.shape[-1],), dtype=h.dtype)
    H[mask] = h
    return det.centre(H, mask)


def train_detector(det, feat, cfg: TrainConfig, log=print) -> dict:
    tr, va = feat.indices("train"), feat.indices("val")
    P = feat.x.shape[1]
    bce = nn.BCEWithLogitsLoss()
    y_all = torch.from_numpy(feat.present.astype(np.float32))

    def step(b, rng):
        idx = tr[b]
        m = random_pair_subsets(len(idx), P, rng, cfg.min_pairs_frac)
        x, mask, order = _scene_batch(feat, idx, m)
        logit, _ = detector_logits(det, x, mask)
        return bce(logit, y_all[idx[order]])

    def val():
        with torch.no_grad():
            tot = 0.0
            for b in _batches(len(va), 32, None):
                idx = np.sort(va[b])
                logit, _ = det.centre(det.encoder(_x(feat, idx)))
                tot += float(nn.functional.binary_cross_entropy_with_logits(
                    logit, y_all[idx], reduction="sum"))
            return tot / len(va)

    return _fit(det, det.parameters(), step, len(tr), val, cfg, "detector", log)


def train_pair_sl(net: PairSupervisedNet, feat, cfg: TrainConfig, log=print) -> dict:
    """Per-pair BCE on pair labels, batches of scenes x a random half of their pairs."""
    tr, va = feat.indices("train"), feat.indices("val")
    P = feat.x.shape[1]
    bce = nn.BCEWithLogitsLoss()
    lab = torch.from_numpy(feat.pair_label.astype(np.float32))

    def step(b, rng):
        idx = np.sort(tr[b])
        m = random_pair_subsets(len(idx), P, rng, cfg.min_pairs_frac)
        x = torch.from_numpy(np.asarray(feat.x[idx], np.float32)[m])
        return bce(net(x), lab[idx][torch.from_numpy(m)])

    def val():
        with torch.no_grad():
            tot = 0.0
            for b in _batches(len(va), 32, None):
                idx = np.sort(va[b])
                tot += float(nn.functional.binary_cross_entropy_with_logits(
                    net(_x(feat, idx)), lab[idx], reduction="sum"))
            return tot / (len(va) * P)

    return _fit(net, net.parameters(), step, len(tr), val, cfg, "pair-SL", log)


def affected_pairs(feat, split: str, min_peak: float = 0.0):
    """(scene, pair) index arrays of the UAV-affected pairs of ``split``
    whose input peak reaches ``min_peak`` (0: all of them)."""
    idx = feat.indices(split)
    idx = idx[feat.present[idx] == 1]
    keep = feat.pair_label[idx] == 1
    if min_peak > 0:
        peak = np.stack([np.asarray(feat.x[i], np.float32).reshape(feat.x.shape[1], -1).max(-1) for i in idx])
        keep &= peak >= min_peak
    s, p = np.nonzero(keep)
    return idx[s], p


def train_ulocnet(net: IULocNet, feat, cfg: TrainConfig, log=print, min_peak: float = 0.0) -> dict:
    """``min_peak`` > 0 trains on the affected pairs whose echo shows in the
    input (most affected pairs carry an echo under the background's spread,
    from which no position can be learned: trained on all of them the net
    learns the area's centre)."""
    ts, tp = affected_pairs(feat, "train", min_peak)
    val_pairs = affected_pairs(feat, "val", min_peak)  # found once, scored every epoch
    log(f"I-ULocNet: {len(ts)} training and {len(val_pairs[0])} validation pairs")

    def step(b, rng):
        x, y = _pair_batch(feat, ts[b], tp[b])
        return ((net(x)[0] / POS_SCALE - y) ** 2).sum(-1).mean()

    return _fit(net, net.parameters(), step, len(ts), lambda: ulocnet_val_loss(net, feat, min_peak, val_pairs),
                cfg, "I-ULocNet", log)


def _pair_batch(feat, s, p):
    """Inputs of the pairs (s, p) and their UAV's position / POS_SCALE."""
    o = np.lexsort((p, s))
    return _x(feat, s[o], p[o]), torch.from_numpy(np.nan_to_num(feat.uav_pos[s[o]]).astype(np.float32)) / POS_SCALE


def ulocnet_val_loss(net: IULocNet, feat, min_peak: float = 0.0, pairs=None) -> float:
    """I-ULocNet's validation loss: the mean squared position error (in
    POS_SCALE units) over the validation split's affected pairs of
    ``min_peak`` (:func:`affected_pairs`; ``pairs``: those, when already found)."""
    vs, vp = affected_pairs(feat, "val", min_peak) if pairs is None else pairs
    with torch.no_grad():
        tot = 0.0
        for b in _batches(len(vs), 64, None):
            x, y = _pair_batch(feat, vs[b], vp[b])
            tot += float(((net(x)[0] / POS_SCALE - y) ** 2).sum())
        return tot / len(vs)


def selections(attention, mask, k: int, sigma_att: float) -> list[np.ndarray]:
    """Eq. 16 per scene over the pairs present (mask [S, P])."""
    out = []
    for a, m in zip(attention, mask):
        keys = np.flatnonzero(m)
        out.append(np.asarray(select_pairs(a[keys], k, sigma_att, keys), int))
    return out


def _pad_sets(sets, rng=None, keep: float = 1.0):
    """Selected index sets -> (e [B, L] long, mask [B, L] bool); with rng,
    each token kept with probability ``keep`` (at least one)."""
    kept = []
    for s in sets:
        s = np.asarray(s, int)
        if rng is not None and s.size > 1:
            k = rng.random(s.size) < keep
            if not k.any():
                k[rng.integers(s.size)] = True
            s = s[k]
        kept.append(s)
    L = max(len(s) for s in kept)
    e = np.zeros((len(kept), L), np.int64)
    m = np.zeros((len(kept), L), bool)
    for i, s in enumerate(kept):
        e[i, :len(s)] = s
        m[i, :len(s)] = True
    return torch.from_numpy(e), torch.from_numpy(m)


def train_fusion(net, scenes_tr, sets_tr, scenes_va, sets_va, inputs, feat, cfg: TrainConfig,
                 name: str, log=print) -> dict:
    """C-ULocNet (``inputs(scene_idx, e) -> (p, v)``) or the soft-fusion
    net (``inputs(scene_idx, e) -> x``) on selected pair sets."""
    pos = torch.from_numpy(np.nan_to_num(feat.uav_pos).astype(np.float32)) / POS_SCALE

    def loss(b, sets, scenes, rng):
        e, m = _pad_sets([sets[i] for i in b], rng, cfg.keep if rng is not None else 1.0)
        out = net(*inputs(scenes[b], e), e, m) / POS_SCALE
        return ((out - pos[scenes[b]]) ** 2).sum(-1)

    def step(b, rng):
        return loss(b, sets_tr, scenes_tr, rng).mean()

    def val():
        with torch.no_grad():
            return float(torch.cat([loss(b, sets_va, scenes_va, None)
                                    for b in _batches(len(scenes_va), 64, None)]).mean())

    return _fit(net, net.parameters(), step, len(scenes_tr), val, cfg, name, log)


def decision_thresholds(det, feat, scenes, n_bs: int, n_cpe: int) -> tuple[float, list[float]]:
    """The detector's decision thresholds chosen on the scenes ``scenes``
    (the validation split), minimising MDP + FAP: with every BS, and with
    each BS silent in turn (its pairs left out, as the centre leaves out a
    BS past its timeout)."""
    scenes = np.sort(scenes)
    h = torch.stack([pl.encode(det, feat.x[i]) for i in scenes])
    y = feat.present[scenes] == 1
    thr = pick_threshold(pl.detect(det, h)[0], y)
    missing = []
    for b in range(n_bs):
        m = np.ones(h.shape[:2], bool)
        m[:, b * n_cpe:(b + 1) * n_cpe] = False
        missing.append(pick_threshold(pl.detect(det, h, m)[0], y))
    return thr, missing
