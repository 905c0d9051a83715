"""DDPM forward process and the deterministic DDIM sampler (Eq. 8-13),
kept apart from the networks as diffusers' schedulers are:
``step(model_output, t, sample)``.

Schedule: T = 200 steps, linear betas (Table II). The paper's noise-rate
range is not legible in its Table II; we take beta_1 = 1e-4 and
beta_T = 0.05: DDPM's 0.02 (chosen for T = 1000) leaves alpha_bar_T = 0.13 at
T = 200, so x_T would still hold a third of x_0 while DDIM starts from pure
noise; with 0.05, alpha_bar_T = 0.007.

Symbols: ``betas`` beta_t [T], ``alphas_cumprod`` alpha_bar_t [T],
``sample`` x_t [N, 2], ``model_output`` eps_theta [N, 2],
``pred_original_sample`` x_0 estimate (clamped to [-1, 1]).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

NUM_TRAIN_TIMESTEPS = 200
BETA_START, BETA_END = 1e-4, 0.05


@dataclass
class DDIMStepOutput:
    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


class DDIMScheduler:
    """Linear-beta DDPM schedule with deterministic DDIM steps (eta = 0)."""

    def __init__(self, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS, beta_start: float = BETA_START,
                 beta_end: float = BETA_END, clip_sample: bool = True):
        if num_train_timesteps < 1 or not 0 < beta_start <= beta_end < 1:
            raise ValueError("need num_train_timesteps >= 1 and 0 < beta_start <= beta_end < 1")
        self.num_train_timesteps = int(num_train_timesteps)
        self.betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, 0)
        self.clip_sample = clip_sample
        self.set_timesteps(num_train_timesteps)

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Evenly spaced steps from T-1 down to 0 (``timesteps``)."""
        n = int(num_inference_steps)
        if not 1 <= n <= self.num_train_timesteps:
            raise ValueError(f"num_inference_steps must be in [1, {self.num_train_timesteps}] (got {n})")
        self.num_inference_steps = n
        ts = np.round(np.linspace(self.num_train_timesteps - 1, 0, n)).astype(np.int64)
        self.timesteps = torch.from_numpy(np.unique(ts)[::-1].copy())

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Eq. 9: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps."""
        ab = self.alphas_cumprod.to(x0.device)[t].to(x0.dtype)[:, None]
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def _prev(self, t: int) -> int:
        idx = (self.timesteps == t).nonzero()
        if len(idx) == 0:
            raise ValueError(f"timestep {t} is not in the current schedule")
        i = int(idx[0, 0])
        return int(self.timesteps[i + 1]) if i + 1 < len(self.timesteps) else -1

    def step(self, model_output: torch.Tensor, t: int, sample: torch.Tensor) -> DDIMStepOutput:
        """Eq. 13 with eta = 0: x0 from eps, clamp, then x_{t_prev}."""
        ac = self.alphas_cumprod.to(sample.device)
        ab_t = ac[t].to(sample.dtype)
        prev = self._prev(int(t))
        ab_prev = ac[prev].to(sample.dtype) if prev >= 0 else torch.ones((), dtype=sample.dtype, device=sample.device)
        x0 = (sample - (1 - ab_t).sqrt() * model_output) / ab_t.sqrt()
        if self.clip_sample:
            x0 = x0.clamp(-1.0, 1.0)
            # the noise consistent with the clamped x0 keeps the step on the data side
            model_output = (sample - ab_t.sqrt() * x0) / (1 - ab_t).sqrt()
        prev_sample = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * model_output
        return DDIMStepOutput(prev_sample, x0)
