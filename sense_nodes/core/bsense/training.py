"""Training data and training of TrajFormer, and the object-level threshold
calibration (BSense paper, Sections 3.3.4, 3.4.2 and 4.1).

* Noise model for training runs: fitted on the library's UAV-free
  calibration case (the paper's 10-minute recording, Section 3.2.2).
* Thresholds: :func:`calibrate_thresholds` runs noise filter + clustering +
  object filter over training cases and returns the 5th percentile of the
  spatial and velocity confidences of UAV objects (Section 3.3.4).
* Samples: the chain up to stage 4 (no classifier) runs over the training
  cases of a case-level fold (``library.folds``: cases of one trajectory
  type never in both parts); every associated track with >= W observations
  gives one sliding-window sample; its label is 1 when at least half of the
  window's detections lie within 10 m of a UAV (the paper's 10 m rule,
  Section 4.1; the majority rule is our choice).
* :func:`train` trains with class-balanced cross-entropy (our choice; true
  windows are the minority), a tqdm progress bar, CPU or CUDA, and saves a
  checkpoint with its config. Consecutive windows of a track share W - 1 of
  their W observations, so most false windows repeat what their neighbours
  say: training keeps every true window and a ``negative_share`` of the false
  ones (drawn with the seed), holds a ``val_share`` of the windows out and
  stops when their loss has not improved for ``patience`` epochs, keeping
  the best epoch's weights (our choices, for time: see :class:`TrainConfig`).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

import numpy as np
from sense_nodes.bs_sensor import UAV

from .clustering import cluster
from .noise_model import NoiseModel, NoiseModelConfig
from .object_filter import ObjectFilter, confidence_thresholds
from .pipeline import BSensePipeline, PipelineConfig
from .trajformer import (N_FEATURES, TrajFormer, TrajFormerConfig, save_checkpoint, track_features,
                         window_features)

UAV_CLASS = UAV
UAV_RADIUS_M = 10.0            # Section 4.1
CALIB_CASE = "uav_free_calib"


def uav_positions(frame) -> np.ndarray:
    """(U, 3) true positions of the UAVs flying in a simulator frame."""
    t = frame.truth
    return np.asarray(t["position"][t["object_class"] == UAV_CLASS], dtype=np.float64).reshape(-1, 3)


def near_uav(pos: np.ndarray, uav: np.ndarray, radius: float = UAV_RADIUS_M) -> np.ndarray:
    """(M,) positions within ``radius`` of a UAV."""
    if len(pos) == 0 or len(uav) == 0:
        return np.zeros(len(pos), bool)
    return (np.linalg.norm(pos[:, None, :] - uav[None, :, :], axis=-1) <= radius).any(1)


def fit_noise_model(case: str = CALIB_CASE, seed=None, site_seed=None, max_frames: int | None = None,
                    config: NoiseModelConfig | None = None, cache: bool = True) -> NoiseModel:
    """Noise model fitted on a UAV-free case (Section 3.2.2), cached by case,
    seeds and simulator version in the project cache."""
    from sense_nodes.data.bs_sim import library, sim_version
    from sense_nodes.data.paths import cache_dir
    config = config or NoiseModelConfig()
    tag = (f"{case}_s{seed}_ss{site_seed}_n{max_frames}_c{config.cube_m:g}_p{config.percentile:g}"
           f"_sim{sim_version()}")
    path = cache_dir("bsense") / f"noise_model_{tag}.npz"
    if cache and path.exists():
        return NoiseModel.load(path)
    sc = library.scenario(case, seed, site_seed)
    n = len(sc) if max_frames is None else min(len(sc), int(max_frames))
    model = NoiseModel(config).fit(sc.frame(k).points for k in range(n))
    if cache:
        model.save(path)
    return model


def collect_confidences(cases, noise_model: NoiseModel, config: PipelineConfig = PipelineConfig(),
                        max_frames: int | None = None, seed=None, site_seed=None):
    """Spatial and velocity confidences (Eq. 13, 16) of the UAV objects of
    ``cases`` (objects within 10 m of a UAV) -> (c_s, c_v)."""
    from sense_nodes.data.bs_sim import library
    cs, cv = [], []
    for name in cases:
        sc = library.scenario(name, seed, site_seed)
        of = ObjectFilter(replace(config.objects, use_spatial=False, use_velocity=False))
        n = len(sc) if max_frames is None else min(len(sc), int(max_frames))
        for k in range(n):
            f = sc.frame(k)
            objs = cluster(f.points, noise_model.filter(f.points), config.cluster)
            sco = of.step(objs, config.tracker.dt)
            u = near_uav(objs.pos, uav_positions(f))
            cs.append(sco.c_s[u])
            cv.append(sco.c_v[u])
    return np.concatenate(cs) if cs else np.zeros(0), np.concatenate(cv) if cv else np.zeros(0)


def calibrate_thresholds(cases, noise_model: NoiseModel, config: PipelineConfig = PipelineConfig(),
                         percentile: float = 5.0, max_frames: int | None = None) -> tuple[float, float]:
    """(tau_s, tau_v) as the 5th percentile of UAV confidences on ``cases`` (Section 3.3.4)."""
    cs, cv = collect_confidences(cases, noise_model, config, max_frames)
    return confidence_thresholds(cs, cv, percentile)


def collect_windows(cases, noise_model: NoiseModel, config: PipelineConfig = PipelineConfig(stage=4),
                    window: int = 6, max_frames: int | None = None, seed=None, site_seed=None, progress=None):
    """Sliding-window samples (X (n, W, N_FEATURES) float32, y (n,) int64, case index
    (n,)) from running the chain (stage <= 4) over the named ``cases``."""
    from sense_nodes.data.bs_sim import library

    def frames_of(name):
        sc = library.scenario(name, seed, site_seed)
        n = len(sc) if max_frames is None else min(len(sc), int(max_frames))
        return (sc.frame(k) for k in range(n))

    return windows_from_cases([frames_of(name) for name in cases], noise_model, config, window, progress)


def windows_from_cases(cases, noise_model, config: PipelineConfig = PipelineConfig(stage=4), window: int = 6,
                       progress=None, return_tracks: bool = False, prepare=None, on_frame=None):
    """Sliding-window samples from ``cases``, each an iterable of simulator
    frames (points and truth), run through the chain up to stage 4 with
    ``config``'s object thresholds. A case may also be a pair
    (frames, noise_model) to use its own fingerprints. ``return_tracks``
    adds a fourth array: each window's track, unique across the cases.
    ``prepare(case index, pipeline)`` is called on each case's new pipeline
    (the evaluation makes it replay stored clusters), ``on_frame(case index,
    frame, result, pipeline)`` after each frame (what else the evaluation
    reads from the same tracking run: the tracks TrajFormer would score)."""
    cfg = replace(config, stage=min(config.stage, 4))
    X, S, Y, G, T = [], [], [], [], []
    for ci, case in enumerate(cases):
        frames, model = case if isinstance(case, tuple) else (case, noise_model)
        pipe = BSensePipeline(cfg, model)
        if prepare is not None:
            prepare(ci, pipe)
        flags: dict[int, list] = {}
        for f in frames:
            r = pipe.step(f.points)
            if on_frame is not None:
                on_frame(ci, f, r, pipe)
            uav = uav_positions(f)
            for t in pipe.tracker.tracks:
                if not t.associated:
                    continue
                fl = flags.setdefault(t.id, [])
                fl.append(bool(near_uav(r.objects.pos[t.detection][None], uav)[0]))
                if len(t.history) >= window:
                    hist = np.asarray(t.history, np.float32)
                    X.append(hist[-window:])
                    S.append(track_features(hist, cfg.tracker.origin))
                    Y.append(int(np.mean(fl[-window:]) >= 0.5))
                    G.append(ci)
                    T.append(ci * 10_000_000 + t.id)
            live = {t.id for t in pipe.tracker.tracks}
            for i in [i for i in flags if i not in live]:
                del flags[i]
            if progress is not None:
                progress.update(1)
    if not X:
        out = np.zeros((0, window, N_FEATURES), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    else:
        out = (window_features(np.stack(X), cfg.tracker.origin, track=np.stack(S)).astype(np.float32),
               np.asarray(Y, np.int64),
               np.asarray(G, np.int64))
    return out + (np.asarray(T, np.int64),) if return_tracks else out


@dataclass(frozen=True)
class TrainConfig:
    """Training run (our choices; the paper gives no optimiser settings)."""
    fold: int = 0                    # test fold of library.folds(k)
    k: int = 5                       # 5-fold (paper)
    window: int = 6                  # W (paper)
    epochs: int = 30                 # at most (early stopping below)
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    max_frames: int | None = None    # per case (None: whole case)
    cases: tuple | None = None       # override the fold's training cases
    device: str = "auto"             # auto | cpu | cuda
    seed: int = 0
    negative_share: float = 1.0      # share of the false windows trained on (all true ones are kept)
    val_share: float = 0.0           # windows held out for early stopping (0: none, every epoch runs)
    patience: int = 3                # epochs without a lower held-out loss before stopping


def train(config: TrainConfig, out_path, noise_model: NoiseModel | None = None,
          samples=None, progress: bool = True, model_config: TrajFormerConfig | None = None):
    """Train TrajFormer on the fold's training cases; save to ``out_path``.
    ``samples`` = (X, y) skips the collection. Returns (model, history dict)."""
    import torch
    from tqdm import tqdm
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    dev = ("cuda" if torch.cuda.is_available() else "cpu") if config.device == "auto" else config.device
    t0 = time.time()
    cases, X, y = training_windows(config, noise_model, samples, progress)
    X, y, Xv, yv = split_windows(X, y, config, rng)
    mcfg = model_config or TrajFormerConfig(window=config.window)
    model = TrajFormer(mcfg)
    flat = X.reshape(-1, X.shape[-1])
    model.set_normalisation(flat.mean(0), flat.std(0))
    model.to(dev)
    Xt = torch.as_tensor(X, dtype=torch.float32, device=dev)
    yt = torch.as_tensor(y, dtype=torch.long, device=dev)
    pos = max(float(y.mean()), 1e-3)
    weight = torch.tensor([0.5 / (1 - pos), 0.5 / pos], dtype=torch.float32, device=dev)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    lossf = torch.nn.CrossEntropyLoss(weight=weight)
    hist = {"loss": [], "val_loss": []}
    n = len(X)
    best, best_state, stale = np.inf, None, 0
    for ep in tqdm(range(config.epochs), desc="TrajFormer epochs", disable=not progress):
        model.train()
        perm = torch.as_tensor(rng.permutation(n), device=dev)
        tot = 0.0
        for i in range(0, n, config.batch_size):
            b = perm[i:i + config.batch_size]
            opt.zero_grad()
            loss = lossf(model(Xt[b]), yt[b])
            loss.backward()
            opt.step()
            tot += loss.item() * len(b)
        hist["loss"].append(tot / n)
        if len(Xv):
            v = _loss(model, lossf, Xv, yv, dev, config.batch_size)
            hist["val_loss"].append(v)
            if v < best:
                best, stale = v, 0
                best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
            else:
                stale += 1
                if stale >= config.patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval().cpu()
    extra = {"train_config": asdict(config), "train_cases": cases, "n_samples": int(n),
             "positive_share": float(y.mean()), "final_loss": hist["loss"][-1], "epochs_run": len(hist["loss"]),
             "seconds": time.time() - t0}
    if out_path is not None:
        save_checkpoint(model, out_path, **extra)
    return model, hist


def training_windows(config: TrainConfig, noise_model: NoiseModel | None = None, samples=None,
                     progress: bool = True):
    """(case names, X, y): the sliding windows of the fold's training cases
    (or ``config.cases``), collected with ``noise_model`` (default: the
    calibration case's), or ``samples`` = (X, y) as given."""
    from tqdm import tqdm
    if config.cases is not None:
        cases = list(config.cases)
    else:
        from sense_nodes.data.bs_sim import library
        cases = list(library.folds(config.k)[config.fold].train)
    if samples is None:
        noise_model = noise_model or fit_noise_model()
        with tqdm(desc="verifier samples (frames)", disable=not progress, unit="frame") as bar:
            X, y, _ = collect_windows(cases, noise_model, window=config.window, max_frames=config.max_frames,
                                      progress=bar)
    else:
        X, y = samples[0], samples[1]
    if len(X) == 0:
        raise ValueError("no training windows collected")
    return cases, X, y


def train_boosted(config: TrainConfig, out_path, noise_model: NoiseModel | None = None, samples=None,
                  progress: bool = True):
    """The boosted-tree verifier (:mod:`.boosted`) on the same windows
    TrajFormer trains on; saved to ``out_path``. Returns (verifier, extra)."""
    from .boosted import BoostedConfig, BoostedVerifier, save_verifier

    t0 = time.time()
    cases, X, y = training_windows(config, noise_model, samples, progress)
    model = BoostedVerifier.fit(X, y, BoostedConfig(window=config.window, n_features=X.shape[-1], seed=config.seed))
    extra = {"train_config": asdict(config), "train_cases": cases, "n_samples": int(len(X)),
             "positive_share": float(y.mean()), "trees": int(model.trees.roots.size), "seconds": time.time() - t0}
    if out_path is not None:
        save_verifier(model, out_path, **extra)
    return model, extra


def split_windows(X: np.ndarray, y: np.ndarray, config: TrainConfig, rng: np.random.Generator):
    """(X, y, X_val, y_val): a ``val_share`` of the windows held out (drawn
    with ``rng``), then a ``negative_share`` of the false training windows
    kept with every true one (order kept). Held-out windows keep both
    classes as they come, so their loss is the weighted loss on unseen data."""
    n = len(X)
    val = np.zeros(n, bool)
    if config.val_share > 0 and n >= 10:
        val[rng.choice(n, max(1, int(round(config.val_share * n))), replace=False)] = True
    keep = ~val
    if config.negative_share < 1.0:
        keep &= (y == 1) | (rng.random(n) < config.negative_share)
    if y[keep].min(initial=1) == y[keep].max(initial=0):     # one class left: train on everything
        keep, val = np.ones(n, bool), np.zeros(n, bool)
    return X[keep], y[keep], X[val], y[val]


def _loss(model, lossf, X: np.ndarray, y: np.ndarray, dev, batch: int) -> float:
    """Mean weighted loss of ``model`` on (X, y), eval mode, no autograd."""
    import torch
    model.eval()
    tot = 0.0
    with torch.inference_mode():
        for i in range(0, len(X), batch):
            xb = torch.as_tensor(X[i:i + batch], dtype=torch.float32, device=dev)
            yb = torch.as_tensor(y[i:i + batch], dtype=torch.long, device=dev)
            tot += lossf(model(xb), yb).item() * len(xb)
    return tot / len(X)
