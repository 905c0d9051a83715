"""The one DiffLoc chain, shared by the ``diffloc_server`` node and by
``sense eval diffloc``: per-BS fingerprints -> per-BS networks -> fused
estimate with covariance, plus the per-BS estimates.

    est = Estimator.from_checkpoint("ct.pt")
    out = est.estimate(fp, mask)          # fp [N, B, D] Eq. 4 fingerprints, mask [N, B]
    out.fused_xy, out.cov, out.per_bs_xy, out.localised

Diffusion models (``mlp``, ``unet``) run deterministic DDIM (Eq. 13) with
the per-BS noise predictions fused at every step (Eq. 19); ``ct`` runs the
consistency sampler (Alg. 4) with the per-BS x0 predictions turned into
noise predictions eps_b = (x - f_b) / sigma and fused the same way. Both
draw ``draws`` initial noises: the mean of the outputs is the estimate, the
spread its covariance. The fusion rules: ``sum`` (Eq. 19),
``prior_corrected`` (Eq. 16's prior taken out) and ``gaussian_product``
(each station sampled alone, the stations' Gaussian posteriors multiplied:
Eq. 17 in closed form). The score sums are exact only at vanishing noise
(see :mod:`score_fusion`). The default rule of a model is the one chosen
on the validation split and recorded in its checkpoint (:mod:`calibration`);
a checkpoint without that record uses the paper's plain sum (Eq. 19). The
covariance is multiplied by the scale calibrated on the validation split
for the rule in use (1 without a record). Regressors fuse by averaging the stations' outputs;
the grid baseline by multiplying probability maps. A sample with no usable
link at any station is not localised (NaN, counted by the caller).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sense_nodes.core.diffloc import calibration, covariance
from sense_nodes.core.diffloc.consistency import ConsistencyConfig, ConsistencyModel, ConsistencySampler
from sense_nodes.core.diffloc.fingerprint import FeatureNorm, PositionNorm
from sense_nodes.core.diffloc.grid_fusion import fuse_maps
from sense_nodes.core.diffloc.networks import UNET_WIDTHS, ScoreUNet
from sense_nodes.core.diffloc.sampler import NUM_TRAIN_TIMESTEPS, DDIMScheduler
from sense_nodes.core.diffloc.stacked import StackedUNet
from sense_nodes.core.diffloc.station_pass import StationPass
from sense_nodes.core.diffloc.score_fusion import RULES, GaussianPrior, fuse_noise, gaussian_product
from sense_nodes.core.diffloc.training import CHECKPOINT_KIND, CHECKPOINT_VERSION, build_net, default_components

METHOD_NAMES = {"mlp": "diffloc-mlp-ddim", "unet": "diffloc-unet-ddim", "ct": "diffloc-consistency",
                "supervised_mlp": "supervised-mlp", "cnn": "cnn", "grid": "grid-fusion"}
DEFAULT_STEPS = {"mlp": 200, "unet": 200, "ct": 2}
# Without a rule chosen on validation data (calibration.KEY in the
# checkpoint's config) the generative models use the paper's Eq. 19.
PAPER_FUSION = "sum"
NOISE_CACHE = 64  # cached (rows, draws, seed) noise tensors
# dtypes of the fingerprint projection (configure(projection=...))
PROJECTIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16, "int8": torch.int8}
DEFAULT_PROJECTION = "int8"


@dataclass
class Estimates:
    fused_xy: np.ndarray   # [N, 2] m (NaN where not localised)
    cov: np.ndarray        # [N, 2, 2] m^2
    per_bs_xy: np.ndarray  # [N, B, 2] m (NaN where the station has no link)
    localised: np.ndarray  # [N] bool
    per_bs_cov: np.ndarray | None = None  # [N, B, 2, 2] m^2 (generative models)


class Estimator:
    """A trained model of any kind and its normalisation, on a device."""

    def __init__(self, config: dict, nets: nn.ModuleList, norms: list[FeatureNorm], pos_norm: PositionNorm,
                 prior: GaussianPrior, grid_centres: torch.Tensor | None = None, device: str = "cpu"):
        self.config = config
        self.model = config["model"]
        self.device = torch.device(device)
        self.nets = nets.to(self.device).eval()
        self.norms = norms
        self.pos_norm = pos_norm
        self.prior = prior
        self.grid_centres = None if grid_centres is None else grid_centres.to(self.device)
        self.trained = np.asarray(config["trained_bs"], bool)
        self.num_bs = int(config["num_bs"])
        self.taps, self.ports = int(config["taps"]), int(config["ports"])
        self.magnitude = config.get("magnitude", "linear")
        self.steps = DEFAULT_STEPS.get(self.model, 1)
        self.draws = 8
        chosen = config.get(calibration.KEY, {})
        self.default_fusion = chosen.get("fusion", PAPER_FUSION if self.model in calibration.GENERATIVE
                                         else "gaussian_product")
        self.fusion = self.default_fusion
        self.cov_scales = {str(k): float(v) for k, v in chosen.get("cov_scale", {}).items()}
        self._cov_scale = None  # None: the validation scale of the rule in use
        self._noise_cache: dict = {}
        self._samplers: dict = {}
        self.stack = None  # the stations' UNets as one batched network (see stacked.py)
        if all(isinstance(n, ScoreUNet) for n in self.nets):
            self.stack = StackedUNet(list(self.nets))
        self.seed = 0
        self.cm_cfg = ConsistencyConfig(**config.get("consistency", {}))
        # the projection of a 28,672-value fingerprint is memory-bound: with
        # int8 weights it reads a quarter of the float32 bytes, and the
        # components move by a few parts in a thousand (FeatureNorm)
        self.configure(projection=DEFAULT_PROJECTION)

    @classmethod
    def from_checkpoint(cls, path, device: str | None = None) -> "Estimator":
        from sense_nodes.core.checkpoint import load_checkpoint, load_state
        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        ck = load_checkpoint(path, kind=CHECKPOINT_KIND, version=CHECKPOINT_VERSION)
        c = ck.config
        cells = int(np.prod(c["grid_shape"])) if c.get("grid_shape") else 0
        widths = c.get("unet_widths", UNET_WIDTHS)  # a checkpoint without them has the default UNet
        nets = nn.ModuleList([build_net(c["model"], d, c["ports"], c["taps"], cells, c.get("dropout", 0.1), widths)
                              for d in c["cond_dims"]])
        load_state(nets, ck)
        ex = ck.extra
        return cls(c, nets, [FeatureNorm.from_dict(d) for d in ex["feature_norm"]],
                   PositionNorm.from_dict(ex["pos_norm"]), GaussianPrior.from_dict(ex["prior"]),
                   ex.get("grid_centres"), dev)

    @classmethod
    def untrained(cls, model: str, num_bs: int = 4, cond_dim: int | None = None, ports: int = 128, taps: int = 112,
                  device: str = "cpu") -> "Estimator":
        """A randomly initialised model of the default shapes (timing only;
        ``cond_dim``: the model's default principal components)."""
        D = 2 * ports * taps
        cond_dim = default_components(model) if cond_dim is None else cond_dim
        rng = np.random.default_rng(0)
        norms = [FeatureNorm(np.zeros(D, np.float32), np.ones(D, np.float32),
                             None if model == "cnn" else rng.standard_normal((D, cond_dim)).astype(np.float32),
                             None if model == "cnn" else np.full(cond_dim, np.sqrt(D), np.float32))
                 for _ in range(num_bs)]
        dims = [n.out_dim for n in norms]
        nets = nn.ModuleList([build_net(model, d, ports, taps, 64) for d in dims])
        cfg = {"model": model, "num_bs": num_bs, "ports": ports, "taps": taps, "cond_dims": dims,
               "trained_bs": [True] * num_bs, "bs_pos": np.zeros((num_bs, 3)).tolist()}
        centres = torch.zeros(64, 2) if model == "grid" else None
        return cls(cfg, nets, norms, PositionNorm(np.zeros(2), 100.0),
                   GaussianPrior(torch.zeros(2), torch.full((2,), 0.3)), centres, device)

    @property
    def method(self) -> str:
        name = METHOD_NAMES[self.model]
        return f"{name}-{self.steps}step" if self.model in DEFAULT_STEPS else name

    @property
    def expected_fingerprint_dim(self) -> int:
        """D of the fingerprints the model reads (its normalisation's length)."""
        return int(self.norms[0].mean.shape[0])

    def configure(self, steps: int | None = None, draws: int | None = None, fusion: str | None = None,
                  seed: int | None = None, projection: str | None = None,
                  cov_scale: float | str | None = None) -> None:
        """Sampler steps, initial noises, fusion rule (``auto``: the one
        chosen on validation), noise seed, the dtype of the fingerprint
        projection (a key of ``PROJECTIONS``) and the covariance scale
        (a number, or ``auto``: the one calibrated on validation)."""
        if projection is not None:
            if projection not in PROJECTIONS:
                raise ValueError(f"projection must be one of {tuple(PROJECTIONS)} (got {projection!r})")
            for n in self.norms:
                n.compute_dtype = PROJECTIONS[projection]
        if steps is not None:
            if steps < 1 or (self.model in ("mlp", "unet") and steps > NUM_TRAIN_TIMESTEPS):
                raise ValueError(f"steps = {steps} out of range for {self.model}")
            self.steps = int(steps)
        if draws is not None:
            if draws < 1:
                raise ValueError(f"draws must be >= 1 (got {draws})")
            self.draws = int(draws)
        if fusion == "auto":
            fusion = self.default_fusion
        if fusion is not None:
            if fusion not in RULES:
                raise ValueError(f"fusion must be one of {RULES} (got {fusion!r})")
            self.fusion = fusion
        if seed is not None:
            self.seed = int(seed)
        if cov_scale is not None:
            if cov_scale != "auto" and not (isinstance(cov_scale, (int, float)) and 0 < cov_scale < np.inf):
                raise ValueError(f"cov_scale must be a finite number > 0 or 'auto' (got {cov_scale!r})")
            self._cov_scale = None if cov_scale == "auto" else float(cov_scale)

    @property
    def cov_scale(self) -> float:
        """The factor applied to every covariance this estimator returns."""
        if self._cov_scale is not None:
            return self._cov_scale
        return self.cov_scales.get(self.fusion, 1.0)

    # --- features ---------------------------------------------------------------
    def features(self, fp: np.ndarray, used=None) -> list[torch.Tensor]:
        """Per-BS network inputs [N, d_b] from raw fingerprints [N, B, D]
        (zeros for stations not in ``used``: their outputs are masked)."""
        if fp.ndim != 3 or fp.shape[1] != self.num_bs or fp.shape[2] != self.expected_fingerprint_dim:
            raise ValueError(f"fingerprints of shape {fp.shape}; the model expects [N, {self.num_bs}, "
                             f"{self.expected_fingerprint_dim}]")
        used = np.ones(self.num_bs, bool) if used is None else used
        out = []
        for b, n in enumerate(self.norms):
            if not used[b]:
                out.append(torch.zeros((len(fp), self.config["cond_dims"][b]), device=self.device))
            elif self.model == "cnn":
                out.append(torch.from_numpy(n.standardise(fp[:, b])).to(self.device))
            else:
                out.append(torch.from_numpy(n(fp[:, b])).to(self.device))
        return out

    # --- samplers ---------------------------------------------------------------
    def _ddim(self, feats, mask, noise):
        sched = DDIMScheduler()
        sched.set_timesteps(self.steps)
        x = noise
        pas = StationPass.build(feats, mask, self.stack)
        for t in sched.timesteps:
            t = int(t)
            tt = float(t) / sched.num_train_timesteps  # one time for every row (networks take a number)
            eps = pas.run(lambda net, f, xb: net(xb, tt, f), x, self.nets, self.num_bs)
            ab = float(sched.alphas_cumprod[t])
            prior_eps = self.prior.eps_ddpm(x, ab) if self.fusion == "prior_corrected" else None
            x = sched.step(fuse_noise(eps, mask, prior_eps), t, x).prev_sample
        return x

    def _ct_sampler(self) -> ConsistencySampler:
        """The consistency sampler of ``steps`` (its noise levels computed once)."""
        if self.steps not in self._samplers:
            self._samplers[self.steps] = ConsistencySampler(self.cm_cfg, self.steps)
        return self._samplers[self.steps]

    def _ct(self, feats, mask, noise, blocks):
        cm = ConsistencyModel(None, self.cm_cfg)
        sampler = self._ct_sampler()
        x = sampler.initial(noise)
        pas = StationPass.build(feats, mask, self.stack)
        levels = sampler.sigma_list.tolist()
        for i, s in enumerate(levels):
            eps = pas.run(lambda net, fb, xb: (xb - cm.denoise(xb, s, fb, net=net)) / s, x, self.nets, self.num_bs)
            prior_eps = self.prior.eps_ve(x, s) if self.fusion == "prior_corrected" else None
            x0 = x - s * fuse_noise(eps, mask, prior_eps)
            # the last level returns x0 itself: no fresh noise to draw
            z = self._noise(blocks, self.draws, (self.seed, 1 + i)) if i + 1 < len(levels) else None
            x, _ = sampler.step(x0, i, x, z)
        return x

    def _noise(self, blocks, K, seed):
        """[K * sum(blocks), 2] standard normal draws ordered draw-major, the
        samples of each block drawn as if alone: sample i's draws do not
        depend on how many samples follow it in its block, nor on the other
        blocks (numpy fills sequentially; torch's CPU randn changes algorithm
        with the tensor size). Cached: the same shapes and seed give the same
        draws, and a request's latency should not pay for the generator."""
        parts = []
        for n in blocks:
            key = (int(n), int(K), tuple(seed))
            z = self._noise_cache.get(key)
            if z is None:
                if len(self._noise_cache) > NOISE_CACHE:
                    self._noise_cache.clear()
                z = np.random.default_rng(list(seed)).standard_normal((n, K, 2)).astype(np.float32)
                z = self._noise_cache[key] = torch.from_numpy(z.transpose(1, 0, 2).copy()).to(self.device)
            parts.append(z)
        return (parts[0] if len(parts) == 1 else torch.cat(parts, 1)).reshape(-1, 2)

    @torch.inference_mode()
    def _generative(self, feats, mask, blocks=None):
        """[N, 2] metric mean and [N, 2, 2] covariance over ``draws``;
        ``blocks``: sizes of consecutive row groups that draw their noise as
        if sampled alone (default one group)."""
        n, K = len(feats[0]), self.draws
        blocks = [n] if blocks is None else blocks
        noise = self._noise(blocks, K, (self.seed, 0))
        fk = feats if K == 1 else [f.repeat(K, 1) for f in feats]
        mk = mask if K == 1 else mask.repeat(1, K)
        x = self._ddim(fk, mk, noise) if self.model in ("mlp", "unet") else self._ct(fk, mk, noise, blocks)
        xy = self.pos_norm.to_metric(x.cpu().numpy().reshape(K, n, 2))
        return covariance.spread(xy)

    @torch.inference_mode()
    def _each_station(self, feats, mask: np.ndarray):
        """Every station's own posterior on the samples it measured, all
        stations in one sampler pass (each network runs on its rows only):
        per-BS means [N, B, 2] (NaN where unmeasured) and covariances."""
        n = len(mask)
        per = np.full((n, self.num_bs, 2), np.nan)
        pcov = np.tile(np.eye(2), (n, self.num_bs, 1, 1))
        heard = mask.any(0)
        if self.model == "ct" and self.stack is not None and mask[:, heard].all():
            used = np.flatnonzero(heard)
            m, c = self._ct_side_by_side(feats, used, n)
            per[:, used], pcov[:, used] = m.transpose(1, 0, 2), c.transpose(1, 0, 2, 3)
            return per, pcov
        blocks = [np.flatnonzero(mask[:, b]) for b in range(self.num_bs)]
        sizes = [len(r) for r in blocks]
        rows = torch.from_numpy(np.concatenate(blocks)).to(self.device)
        joint = torch.zeros((self.num_bs, len(rows)), dtype=torch.bool, device=self.device)
        joint[torch.from_numpy(np.repeat(np.arange(self.num_bs), sizes)).to(self.device),
              torch.arange(len(rows), device=self.device)] = True
        m, c = self._generative([f[rows] for f in feats], joint, [s for s in sizes if s])
        at = np.cumsum([0] + sizes)
        for b, r in enumerate(blocks):
            per[r, b], pcov[r, b] = m[at[b]:at[b + 1]], c[at[b]:at[b + 1]]
        return per, pcov

    def _ct_side_by_side(self, feats, used: np.ndarray, n: int):
        """:meth:`_each_station` when every station in ``used`` heard all n
        rows (the common request): the stations' samplers run side by side,
        x [S, K n, 2], one stacked call per level with no gather, scatter or
        fusion over [B, N]. The same draws and arithmetic as the general pass
        (its rows are draw-major, station blocks inside), so the same output:
        means [S, n, 2] and covariances [S, n, 2, 2] of the ``used`` stations."""
        S, K = len(used), self.draws
        cond = self.stack.conditioning([feats[b] for b in used])
        cond = cond.repeat(1, K, 1) if K > 1 else cond
        stack, cm, sampler = self.stack.select(used.tolist()), ConsistencyModel(None, self.cm_cfg), self._ct_sampler()

        def noise(i):
            return self._noise([n] * S, K, (self.seed, i)).view(K, S, n, 2).transpose(0, 1).reshape(S, K * n, 2)

        x = sampler.initial(noise(0))
        levels = sampler.sigma_list.tolist()
        for i, s in enumerate(levels):
            eps = (x - cm.denoise(x, s, cond, net=stack)) / s
            x, _ = sampler.step(x - s * eps, i, x, noise(1 + i) if i + 1 < len(levels) else None)
        xy = self.pos_norm.to_metric(x.cpu().numpy().reshape(S, K, n, 2).transpose(1, 0, 2, 3).reshape(K, S * n, 2))
        m, c = covariance.spread(xy)
        return m.reshape(S, n, 2), c.reshape(S, n, 2, 2)

    @torch.inference_mode()
    def _fuse(self, feats, mask):
        """Fused estimate over ``mask`` [B, N] (torch bool)."""
        if self.model in ("mlp", "unet", "ct"):
            return self._generative(feats, mask)
        if self.model == "grid":
            lp = torch.stack([torch.log_softmax(net(f), 1) for net, f in zip(self.nets, feats)])
            mean, cov = fuse_maps(lp, mask, self.grid_centres)
            return mean.cpu().numpy().astype(np.float64), cov.cpu().numpy().astype(np.float64) + covariance.FLOOR_M2 * np.eye(2)
        out = torch.stack([net(f) for net, f in zip(self.nets, feats)])  # [B, N, 2]
        xy = self.pos_norm.to_metric(out.cpu().numpy())
        m = mask.cpu().numpy()
        w = m / np.maximum(m.sum(0), 1)
        mean = np.einsum("bn,bni->ni", w, xy)
        d = xy - mean[None]
        cov = np.einsum("bn,bni,bnj->nij", w, d, d) + covariance.FLOOR_M2 * np.eye(2)
        return mean, cov

    def estimate(self, fp: np.ndarray, mask: np.ndarray, stations=None, per_bs: bool = True) -> Estimates:
        """Fused (over ``stations``, default all) and per-BS estimates of N
        measurements: ``fp`` [N, B, D] fingerprints, ``mask`` [N, B] which
        links were measured with a path."""
        fp = np.asarray(fp, np.float32)
        mask = np.asarray(mask, bool) & self.trained[None]
        if stations is not None:
            sel = np.zeros(self.num_bs, bool)
            sel[list(stations)] = True
            mask = mask & sel[None]
        n = len(fp)
        feats = self.features(fp, mask.any(0))
        mt = torch.from_numpy(mask.T.copy()).to(self.device)
        loc = mask.any(1)
        fused = np.full((n, 2), np.nan)
        cov = np.full((n, 2, 2), np.nan)
        per = np.full((n, self.num_bs, 2), np.nan)
        if self.model in ("mlp", "unet", "ct") and self.fusion == "gaussian_product":
            # each station sampled once: its draws give the per-BS estimate and
            # the Gaussian posterior the fusion multiplies (Eq. 17)
            if not loc.any():
                return Estimates(fused, cov, per, loc, np.tile(np.eye(2), (n, self.num_bs, 1, 1)))
            per, pcov = self._each_station(feats, mask)
            fused[loc], cov[loc] = gaussian_product(per[loc].transpose(1, 0, 2), pcov[loc].transpose(1, 0, 2, 3),
                                                    mask[loc].T)
            return Estimates(fused, cov * self.cov_scale, per, loc, pcov * self.cov_scale)
        if loc.all():  # every request has a link: no rows to pick
            fused[:], cov[:] = self._fuse(feats, mt)
        elif loc.any():
            idx = torch.from_numpy(np.flatnonzero(loc)).to(self.device)
            fused[loc], cov[loc] = self._fuse([f[idx] for f in feats], mt[:, idx])
        if per_bs:
            for b in range(self.num_bs):
                ok = mask[:, b]
                if not ok.any():
                    continue
                idx = torch.from_numpy(np.flatnonzero(ok)).to(self.device)
                only = torch.zeros((self.num_bs, len(idx)), dtype=torch.bool, device=self.device)
                only[b] = True
                per[ok, b] = self._fuse([f[idx] for f in feats], only)[0]
        return Estimates(fused, cov * self.cov_scale, per, loc)
