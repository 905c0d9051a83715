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
fitted to the (normalised) training positions.

Summing scores is exact only as the noise vanishes: at a large noise level
the sum of the per-BS noised marginals' scores is not the score of the noised
product (each per-BS x0 prediction is then near its posterior mean m_b, and
the summed rule returns the prior mean plus the sum of the B displacements
m_b - mu, not their weighted average). Few-step samplers take their first
step there. The third rule, ``gaussian_product``, applies Eq. 17 directly:
each station is sampled alone from several initial noises, its posterior is
approximated by the draws' mean and covariance, and the fused posterior is
the product of these Gaussians (:func:`gaussian_product`). All three rules
are measured.

Shapes: ``eps`` [B, N, 2] per-BS predictions, ``mask`` [B, N] bool (which
BSs measured each sample; a missing station is simply left out).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

RULES = ("sum", "prior_corrected", "gaussian_product")


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


def gaussian_product(means: np.ndarray, covs: np.ndarray, mask: np.ndarray):
    """Eq. 17 for Gaussian per-BS posteriors: ``means`` [B, N, 2], ``covs``
    [B, N, 2, 2], ``mask`` [B, N] -> (mean [N, 2], cov [N, 2, 2]) of the
    normalised product over the masked stations (precisions add)."""
    m = np.asarray(mask, bool)
    prec = np.linalg.inv(np.where(m[..., None, None], covs, np.eye(2)))
    prec = np.where(m[..., None, None], prec, 0.0)
    P = prec.sum(0)
    cov = np.linalg.inv(P)
    mean = np.einsum("nij,nj->ni", cov, np.einsum("bnij,bnj->ni", prec, np.nan_to_num(means)))
    return mean, cov
