"""Consistency training and few-step sampling: DiffLoc-CT (Sec. IV-D,
Eq. 20-22, Algorithms 3-4), after Song et al.'s consistency models [22].

Noise levels sigma in [sigma_min, sigma_max] map to a normalised time
(Eq. 20) ``t = (sigma^(1/rho) - sigma_min^(1/rho)) / (sigma_max^(1/rho) -
sigma_min^(1/rho))``: t = 1 at the maximum noise, t = 0 at the minimum.
The consistency function is parameterised (EDM / [22])

    f_theta(x, sigma) = c_skip(sigma) x + c_out(sigma) F_theta(c_in(sigma) x, t(sigma), c)

with c_skip = s_d^2 / ((sigma - sigma_min)^2 + s_d^2) and
c_out = s_d (sigma - sigma_min) / sqrt(s_d^2 + sigma^2), so the boundary
condition f(x, sigma_min) = x holds exactly for any network.

Values the paper leaves out, chosen here: positions are normalised to
[-1, 1], so sigma_data = 0.5, sigma_max = 10 (well above the data range;
the 80 of image models would only waste steps), sigma_min = 0.002, rho = 7,
N = 40 discretisation levels for training.

Few-step inference (Alg. 4) evaluates f at a decreasing list of sigmas,
re-noising the estimate between calls. The paper's two calls are "max then
min noise"; under the boundary condition a call at exactly sigma_min returns
its input, so our last level is ``sigma_last`` = 0.02 (ten times sigma_min);
:func:`sigmas` spaces n levels from sigma_max to it as Karras et al.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

SIGMA_MIN, SIGMA_MAX, SIGMA_DATA, RHO = 0.002, 10.0, 0.5, 7.0
SIGMA_LAST = 0.02
TRAIN_LEVELS = 40
EMA_DECAY = 0.99


@dataclass(frozen=True)
class ConsistencyConfig:
    sigma_min: float = SIGMA_MIN
    sigma_max: float = SIGMA_MAX
    sigma_data: float = SIGMA_DATA
    rho: float = RHO
    sigma_last: float = SIGMA_LAST
    train_levels: int = TRAIN_LEVELS

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def karras_sigmas(n: int, lo: float, hi: float, rho: float = RHO) -> torch.Tensor:
    """n levels from ``hi`` down to ``lo`` spaced uniformly in sigma^(1/rho)."""
    if n < 1:
        raise ValueError("need at least one noise level")
    if n == 1:
        return torch.tensor([hi], dtype=torch.float64)
    r = torch.linspace(0, 1, n, dtype=torch.float64)
    return (hi ** (1 / rho) + r * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho


class ConsistencyModel:
    """Wraps a score-network backbone ``F(x, t, cond)`` (e.g. ScoreUNet)
    into the consistency function f(x, sigma, cond) with the boundary
    condition; owns the EMA target network used in training."""

    def __init__(self, net: nn.Module, cfg: ConsistencyConfig = ConsistencyConfig()):
        self.net = net
        self.cfg = cfg
        self.target: nn.Module | None = None

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Eq. 20: monotone bijection sigma -> t in [0, 1]."""
        c, r = self.cfg, 1.0 / self.cfg.rho
        return (sigma ** r - c.sigma_min ** r) / (c.sigma_max ** r - c.sigma_min ** r)

    def coefficients(self, sigma: float) -> tuple[float, float, float, float]:
        """(c_skip, c_out, c_in, t) at one noise level, as numbers: the
        sampler's levels are the same for every row, and four scalars cost
        nothing where the tensor form is a dozen small operations a step."""
        c, r = self.cfg, 1.0 / self.cfg.rho
        c_skip = c.sigma_data ** 2 / ((sigma - c.sigma_min) ** 2 + c.sigma_data ** 2)
        c_out = c.sigma_data * (sigma - c.sigma_min) / (c.sigma_data ** 2 + sigma ** 2) ** 0.5
        c_in = 1.0 / (sigma ** 2 + c.sigma_data ** 2) ** 0.5
        t = (sigma ** r - c.sigma_min ** r) / (c.sigma_max ** r - c.sigma_min ** r)
        return c_skip, c_out, c_in, t

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor | float, cond: torch.Tensor,
                net: nn.Module | None = None):
        """f_theta(x, sigma, c) -> x0 estimate [N, 2]; ``sigma`` [N], or one
        number for every row (the network then gets that number as its time:
        ScoreUNet and StackedUNet take a float)."""
        if not torch.is_tensor(sigma):
            c_skip, c_out, c_in, t = self.coefficients(float(sigma))
            return c_skip * x + c_out * (net or self.net)(c_in * x, t, cond)
        c = self.cfg
        s = sigma.to(x.dtype)[:, None]
        c_skip = c.sigma_data ** 2 / ((s - c.sigma_min) ** 2 + c.sigma_data ** 2)
        c_out = c.sigma_data * (s - c.sigma_min) / torch.sqrt(c.sigma_data ** 2 + s ** 2)
        c_in = 1.0 / torch.sqrt(s ** 2 + c.sigma_data ** 2)
        out = (net or self.net)(c_in * x, self.sigma_to_t(sigma).to(x.dtype), cond)
        return c_skip * x + c_out * out

    # --- training (Alg. 3) ---------------------------------------------------
    def init_target(self) -> None:
        self.target = copy.deepcopy(self.net).eval()
        for p in self.target.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update_target(self, decay: float = EMA_DECAY) -> None:
        for pt, p in zip(self.target.parameters(), self.net.parameters()):
            pt.mul_(decay).add_(p.detach(), alpha=1 - decay)
        for bt, b in zip(self.target.buffers(), self.net.buffers()):
            bt.copy_(b)

    def loss(self, x0: torch.Tensor, cond: torch.Tensor, generator: torch.Generator | None = None):
        """Eq. 22 for one mini-batch: two noise levels per sample drawn
        independently from the N-level discretisation, one shared noise draw
        z for both views (Eq. 21); the lower-noise view goes through the EMA
        target without gradient. Returns (total, consistency, anchor)."""
        if self.target is None:
            self.init_target()
        c = self.cfg
        levels = karras_sigmas(c.train_levels, c.sigma_min, c.sigma_max, c.rho).to(x0.device)
        n = len(x0)
        # drawn by the (CPU) generator and moved: one seed, one draw on any device
        i = torch.randint(0, c.train_levels, (n,), generator=generator).to(x0.device)
        j = torch.randint(0, c.train_levels, (n,), generator=generator).to(x0.device)
        j = torch.where(i == j, (j + 1) % c.train_levels, j)
        s_hi = torch.maximum(levels[i], levels[j]).to(x0.dtype)
        s_lo = torch.minimum(levels[i], levels[j]).to(x0.dtype)
        z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        x_hi, x_lo = x0 + s_hi[:, None] * z, x0 + s_lo[:, None] * z
        f_hi = self.denoise(x_hi, s_hi, cond)
        f_lo = self.denoise(x_lo, s_lo, cond)
        with torch.no_grad():
            f_lo_target = self.denoise(x_lo, s_lo, cond, net=self.target)
        cons = ((f_hi - f_lo_target) ** 2).sum(1).mean()
        anchor = ((f_hi - x0) ** 2).sum(1).mean() + ((f_lo - x0) ** 2).sum(1).mean()
        return cons + anchor, cons.detach(), anchor.detach()

    # --- inference (Alg. 4) --------------------------------------------------
    def sigmas(self, steps: int) -> torch.Tensor:
        """The decreasing noise levels of an n-step sampler (sigma_max first)."""
        return karras_sigmas(steps, self.cfg.sigma_last, self.cfg.sigma_max, self.cfg.rho)


class ConsistencySampler:
    """Few-step sampling (Alg. 4) around any x0 predictor ``f(x, sigma)``
    (one network, or the fusion of several): start from sigma_max z, call f,
    re-noise to the next level with fresh noise, call f again, ..."""

    def __init__(self, cfg: ConsistencyConfig = ConsistencyConfig(), steps: int = 2):
        self.cfg = cfg
        self.set_steps(steps)

    def set_steps(self, steps: int) -> None:
        if steps < 1:
            raise ValueError(f"steps must be >= 1 (got {steps})")
        self.sigma_list = karras_sigmas(int(steps), self.cfg.sigma_last, self.cfg.sigma_max, self.cfg.rho)

    def initial(self, noise: torch.Tensor) -> torch.Tensor:
        return self.cfg.sigma_max * noise

    def step(self, model_output: torch.Tensor, i: int, sample: torch.Tensor,
             noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``model_output``: the (fused) x0 estimate at level i, clamped to
        [-1, 1]; returns (next sample, x0). The next sample re-noises x0 to
        level i+1 (or is x0 itself after the last level)."""
        x0 = model_output.clamp(-1.0, 1.0)
        if i + 1 >= len(self.sigma_list):
            return x0, x0
        s_next = float(self.sigma_list[i + 1])
        if noise is None:
            noise = torch.randn_like(x0)
        return x0 + (s_next ** 2 - self.cfg.sigma_min ** 2) ** 0.5 * noise, x0
