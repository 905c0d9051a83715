"""Choices made on the validation split, never on the test split: the
fusion rule of a generative model and the scale of its covariance.

- **Fusion rule.** The three rules of :mod:`score_fusion` (the paper's plain
  sum, Eq. 19; the prior-corrected sum; the product of the per-BS Gaussian
  posteriors, Eq. 17) are measured on the validation samples of the split
  scheme the model was trained with; the one with the lowest mean fused
  error becomes the model's default.
- **Covariance scale** (beyond the paper). The spread of a few sampler
  draws is not the posterior's spread (the draws of a consistency model
  collapse onto a few modes; a handful of draws under-estimates a variance),
  so the 95 % ellipse of the raw covariance holds far fewer than 95 % of
  the errors. One scalar ``s`` per fusion rule is chosen so that exactly
  95 % of the validation errors lie inside the ellipse of ``s * cov``:
  ``s`` = the 95th percentile of the squared Mahalanobis distances over
  chi2_2(0.95). A scalar keeps the shape of each sample's covariance and
  only fixes its overall confidence.

Both are stored in the checkpoint's config under :data:`KEY` (with the
validation errors, the draws used and the number of validation samples) by
:func:`record`; :class:`Estimator` reads them back.
"""
from __future__ import annotations

import numpy as np

from sense_nodes.core.diffloc.covariance import CHI2_2DOF_95
from sense_nodes.core.diffloc.score_fusion import RULES

KEY = "validation"
COVERAGE = 0.95
GENERATIVE = ("mlp", "unet", "ct")


def mahalanobis2(err_xy: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distances of errors [N, 2] under covariances [N, 2, 2]."""
    e = np.asarray(err_xy, np.float64)
    return np.einsum("ni,nij,nj->n", e, np.linalg.inv(cov), e)


def cov_scale(err_xy: np.ndarray, cov: np.ndarray, coverage: float = COVERAGE) -> float:
    """The scalar s with ``coverage`` of the errors inside the 95 % ellipse of s * cov."""
    m2 = mahalanobis2(err_xy, cov)
    m2 = m2[np.isfinite(m2)]
    if not m2.size:
        return 1.0
    # "higher": the smallest scale that covers at least ``coverage`` of them
    return float(max(np.quantile(m2, coverage, method="higher") / CHI2_2DOF_95 * (1 + 1e-9), 1e-12))


def noise_argument(label: str):
    """A checkpoint's ``noise`` label -> load_positioning's noise argument."""
    if label in (None, "clean"):
        return None
    if label == "drawn":
        return "drawn"
    return float(str(label).split()[0])


def choose(est, fp: np.ndarray, valid: np.ndarray, xy: np.ndarray, log=print) -> dict:
    """Measure every fusion rule (generative models) on validation samples
    and the covariance scale of each; returns the record for the config."""
    rules = RULES if est.model in GENERATIVE else (est.fusion,)
    ok = valid.any(1)
    errors, scales = {}, {}
    for rule in rules:
        est.configure(fusion=rule, cov_scale=1.0)
        out = est.estimate(fp[ok], valid[ok], per_bs=False)
        err = out.fused_xy - xy[ok]
        errors[rule] = float(np.mean(np.linalg.norm(err, axis=1)))
        scales[rule] = cov_scale(err, out.cov)
        log(f"{est.model} validation: fusion {rule}: mean error {100 * errors[rule]:.1f} cm, "
            f"covariance scale {scales[rule]:.3g}")
    best = min(errors, key=errors.get)
    return {"fusion": best, "fusion_errors_m": errors, "cov_scale": scales, "draws": int(est.draws),
            "steps": int(est.steps), "samples": int(ok.sum())}


def record(path, choices: dict) -> None:
    """Write ``choices`` into the checkpoint's config (the file is verified
    on load and rewritten atomically by the one safe checkpoint module)."""
    from sense_nodes.core.checkpoint import load_checkpoint, save_checkpoint
    from sense_nodes.core.diffloc.training import CHECKPOINT_KIND, CHECKPOINT_VERSION
    ck = load_checkpoint(path, kind=CHECKPOINT_KIND, version=CHECKPOINT_VERSION)
    config = dict(ck.config)
    config[KEY] = choices
    save_checkpoint(path, kind=CHECKPOINT_KIND, version=CHECKPOINT_VERSION, config=config,
                    state_dict=ck.state_dict, extra=ck.extra)


def choose_and_record(path, data, log=print, draws: int | None = None) -> dict:
    """Load the checkpoint at ``path``, choose on the validation split of
    its training scheme in ``data`` (a PositioningData of the same kind of
    CSI it was trained on), and record the choices in it."""
    from sense_nodes.core.diffloc.estimator import Estimator
    est = Estimator.from_checkpoint(path, "cpu")
    if draws is not None:
        est.configure(draws=draws)
    va = data.indices("val", est.config.get("train", {}).get("scheme", "random"))
    choices = choose(est, data.fp[va], data.valid[va], data.xy[va], log)
    record(path, choices)
    log(f"{path}: fusion {choices['fusion']} and covariance scale "
        f"{choices['cov_scale'][choices['fusion']]:.3g} chosen on {choices['samples']} validation samples")
    return choices
