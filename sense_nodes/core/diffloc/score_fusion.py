"""Multi-BS score fusion (Sec. III-B, Eq. 14-19).

Under conditional independence, the fused posterior is the product of the
per-BS posteriors (Eq. 17), whose score is the sum of the per-BS scores
(Eq. 18), i.e. the sum of the per-BS noise predictions (Eq. 19). Each
per-BS posterior p(x | c_b) already contains the prior once, so the product
contains it B times: Eq. 16 divides by p(x)^(B-1). The paper assumes a
uniform prior and drops that factor; our per-BS networks learn the training
positions' distribution as prior, so we also offer the prior-corrected sum

    eps_fused = sum_b eps_b - (B_valid - 1) eps_prior

with eps_prior the exact noise prediction of a Gaussian prior N(mu, diag v)
fitted to the (normalised) training positions. Both rules are measured.

Shapes: ``eps`` [B, N, 2] per-BS predictions, ``mask`` [B, N] bool (which
BSs measured each sample; a missing station is simply left out).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

RULES = ("sum", "prior_corrected")


@dataclass
class GaussianPrior:
    """N(mean, diag var) over normalised positions."""
    mean: torch.Tensor  # [2]
    var: torch.Tensor   # [2]

    @classmethod
    def fit(cls, x0: np.ndarray) -> "GaussianPrior":
        x0 = np.asarray(x0, np.float64)
        return cls(torch.tensor(x0.mean(0), dtype=torch.float32), torch.tensor(x0.var(0) + 1e-6, dtype=torch.float32))

    def eps_ddpm(self, x_t: torch.Tensor, alpha_bar: float) -> torch.Tensor:
        """E[eps | x_t] under x_t = sqrt(ab) x0 + sqrt(1-ab) eps, x0 ~ prior."""
        m, v = self.mean.to(x_t), self.var.to(x_t)
        return (1 - alpha_bar) ** 0.5 * (x_t - alpha_bar ** 0.5 * m) / (alpha_bar * v + 1 - alpha_bar)

    def eps_ve(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """E[eps | x] under x = x0 + sigma eps, x0 ~ prior (consistency models)."""
        m, v = self.mean.to(x), self.var.to(x)
        return sigma * (x - m) / (v + sigma ** 2)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "var": self.var.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "GaussianPrior":
        return cls(torch.tensor(d["mean"], dtype=torch.float32), torch.tensor(d["var"], dtype=torch.float32))


def fuse_noise(eps: torch.Tensor, mask: torch.Tensor, prior_eps: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 19 over the stations in ``mask``; with ``prior_eps`` [N, 2] the
    prior counted (B_valid - 1) extra times is taken out. One station alone
    gives its own prediction under either rule."""
    m = mask.to(eps.dtype)[..., None]
    fused = (eps * m).sum(0)
    if prior_eps is not None:
        extra = (mask.sum(0).to(eps.dtype) - 1).clamp(min=0)[:, None]
        fused = fused - extra * prior_eps
    return fused
