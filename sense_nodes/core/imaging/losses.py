"""Loss functions of Sec. IV-C: MSE, OHEM-1 and OHEM-2 (Eq. 21), plus the
sparse L1 term (Eq. 22)."""
from __future__ import annotations

import torch

LOSSES = ("mse", "ohem1", "ohem2")


def ohem_select(sq_err: torch.Tensor, target: torch.Tensor, eta: float):
    """Per image: positives = non-zero label voxels (M of them), negatives = the
    eta*M zero voxels with the largest squared error (Sec. IV-C).

    Returns (pos_sum, n_pos, neg_sum, n_neg), each of shape (batch,). An image
    with no UAV has no positives; it still contributes its ceil(eta) hardest
    negatives (as if M were 1) so empty airspace is pushed to zero instead of
    dividing by zero."""
    flat_err = sq_err.reshape(len(sq_err), -1)
    pos = target.reshape(len(target), -1) != 0
    n_pos = pos.sum(dim=1)
    pos_sum = (flat_err * pos).sum(dim=1)
    n_neg_avail = (~pos).sum(dim=1)
    n_neg = torch.minimum(torch.ceil(eta * n_pos.clamp(min=1).float()).long(), n_neg_avail)
    neg_err = flat_err.masked_fill(pos, -1.0)          # positives never rank as negatives
    k_max = int(n_neg.max().item()) if len(n_neg) else 0
    if k_max == 0:
        return pos_sum, n_pos, torch.zeros_like(pos_sum), n_neg
    top = torch.topk(neg_err, k_max, dim=1).values     # sorted descending
    keep = torch.arange(k_max, device=top.device)[None, :] < n_neg[:, None]
    neg_sum = (top.clamp(min=0) * keep).sum(dim=1)
    return pos_sum, n_pos, neg_sum, n_neg


def imaging_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "ohem1",
                 eta: float = 10.0, alpha: float = 0.0):
    """L = L_kind + alpha * ||sigma_hat||_1 (Eq. 21-22), averaged over the batch.

    The L1 norm is taken as the mean |sigma_hat| over voxels (the paper does
    not say how it is scaled; summed over 1600 voxels with alpha = 1 it would
    swamp any per-voxel term). Returns (loss, plain per-voxel MSE) so the MSE
    can be logged beside the OHEM loss."""
    if kind not in LOSSES:
        raise ValueError(f"loss kind={kind!r} must be one of {LOSSES}")
    if eta <= 0:
        raise ValueError(f"eta={eta} must be positive")
    sq = (pred - target) ** 2
    mse = sq.mean()
    if kind == "mse":
        data = mse
    else:
        pos_sum, n_pos, neg_sum, n_neg = ohem_select(sq, target, eta)
        if kind == "ohem1":
            data = (pos_sum + neg_sum) / (n_pos + n_neg).clamp(min=1)
        else:
            data = pos_sum / n_pos.clamp(min=1) + neg_sum / n_neg.clamp(min=1)
        data = data.mean()
    return data + alpha * pred.abs().mean(), mse.detach()
