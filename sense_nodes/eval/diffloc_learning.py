"""Beyond the paper: DiffLoc's learning curve. Error against the number of
training samples says whether a model is limited by how densely the area
is sampled (error falls steadily with more samples) or by the method
(error flat). The paper trains on a dense AODT grid; our ray-traced set
has a few metres between neighbouring samples, so this is the question
behind the gap to its centimetre figures.

Models come from ``sense train diffloc --train-fraction F`` (checkpoints
``<name>-frac<percent>.pt`` beside the full ``<name>.pt``); the k-NN floor
is refitted here on the same seeded subsets (``training_subset``), so every
point of every curve sees the same training samples. Each point is printed
beside the median distance from a test sample to its nearest training
sample (the sampling spacing at that fraction).

Figures (for each model name and fraction in percent ``p``):
``<name>_frac<p>_fused_error_cm``, ``knn_frac<p>_fused_error_cm``,
``train_spacing_frac<p>_m``, ``train_samples_frac<p>``; per curve the
log-log slope of the mean error against training samples
(``<name>_error_slope``; -0.5 is what 2-D interpolation error gives when
it scales with the spacing) and, where the slope is negative, the training
samples a straight extrapolation of the curve would need for 10 cm
(``<name>_samples_for_10cm``: an extrapolation, not a measurement).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

CURVE_MODELS = ("ct-beamdb",)
TARGET_M = 0.10


def checkpoint_fractions(models: Path, name: str) -> dict[float, Path]:
    """{fraction: checkpoint} of ``name`` trained on shares of the split."""
    found = {}
    if (models / f"{name}.pt").exists():
        found[1.0] = models / f"{name}.pt"
    for path in models.glob(f"{name}-frac*.pt"):
        m = re.fullmatch(re.escape(name) + r"-frac([0-9p]+)\.pt", path.name)
        if m:
            found[float(m.group(1).replace("p", ".")) / 100] = path
    return dict(sorted(found.items()))


def nearest_spacing_m(train_xy: np.ndarray, test_xy: np.ndarray) -> float:
    """Median distance from a test sample to its nearest training sample."""
    from scipy.spatial import cKDTree
    d, _ = cKDTree(train_xy).query(test_xy)
    return float(np.median(d))


def loglog_slope(samples, errors_m) -> tuple[float | None, float | None]:
    """(slope, training samples for TARGET_M) of a least-squares line
    through log(error) against log(samples); None where it cannot say."""
    n = np.asarray(samples, float)
    e = np.asarray(errors_m, float)
    ok = np.isfinite(e) & (e > 0) & (n > 0)
    if ok.sum() < 2 or len(np.unique(n[ok])) < 2:
        return None, None
    slope, icpt = np.polyfit(np.log(n[ok]), np.log(e[ok]), 1)
    need = float(np.exp((np.log(TARGET_M) - icpt) / slope)) if slope < 0 else None
    return float(slope), need


def learning_curve(fig: dict, ds, models: Path, args, device) -> None:
    """Each name of CURVE_MODELS at every fraction it was trained on, and
    the k-NN floor on the same subsets, on the random split's test set."""
    from sense_nodes.core.diffloc.dataset import load_positioning
    from sense_nodes.core.diffloc.models import fraction_tag
    from sense_nodes.core.diffloc.training import training_subset
    from sense_nodes.eval.diffloc_figures import _check_geometry, _load, knn_figures
    for name in CURVE_MODELS:
        ckpts = checkpoint_fractions(models, name)
        if len(ckpts) < 2:
            print(f"learning curve of {name}: needs checkpoints at two or more fractions "
                  f"(sense train diffloc --train-fraction F); found {len(ckpts)}")
            continue
        data = None
        ns, errs, knn_errs = [], [], []
        for frac, path in ckpts.items():
            est = _load(path, device)
            if data is None:
                data = load_positioning(ds, magnitude=est.config.get("magnitude", "linear"), progress=True)
                va, te = data.indices("val"), data.indices("test")
            _check_geometry(est, data, path)
            train_cfg = est.config.get("train", {})
            tr = training_subset(data.indices("train"), frac, train_cfg.get("seed", 0))
            est.configure(draws=args.draws, fusion=args.fusion, projection=args.projection)
            out = est.estimate(data.fp[te], data.valid[te], per_bs=False)
            err = np.linalg.norm(out.fused_xy - data.xy[te], axis=1)
            k = fraction_tag(frac)
            fig[f"{name.replace('-', '_')}_{k}_fused_error_cm"] = float(100 * np.nanmean(err))
            kf, kerr = knn_figures(data, tr, va, te, prefix=f"knn_{k}")
            fig[f"knn_{k}_fused_error_cm"] = kf[f"knn_{k}_fused_error_cm"]
            fig[f"train_samples_{k}"] = int(len(tr))
            fig[f"train_spacing_{k}_m"] = nearest_spacing_m(data.xy[tr], data.xy[te])
            fig[f"{name.replace('-', '_')}_{k}_train_steps"] = max(
                int(s.get("steps", 0)) for s in est.config.get("stations", [{}]))
            ns.append(len(tr))
            errs.append(np.nanmean(err))
            knn_errs.append(np.nanmean(kerr))
            print(f"learning curve {name} at {100 * frac:g} % ({len(tr)} training samples, nearest-sample "
                  f"spacing {fig[f'train_spacing_{k}_m']:.2f} m): fused {100 * errs[-1]:.1f} cm, "
                  f"k-NN {100 * knn_errs[-1]:.1f} cm")
        for label, values in ((name.replace("-", "_"), errs), ("knn", knn_errs)):
            slope, need = loglog_slope(ns, values)
            fig[f"{label}_error_slope"] = slope
            fig[f"{label}_samples_for_10cm"] = need
            if slope is not None:
                print(f"{label}: error ~ samples^{slope:.2f}"
                      + (f"; a straight extrapolation reaches 10 cm at {need:.3g} training samples"
                         if need else "; not falling with more samples"))
        del data
