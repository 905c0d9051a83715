"""Helpers of `sense eval diffloc` (diffloc_eval): loading and checking
checkpoints, the per-method table rows, the k-NN floor, the subsets of
stations (Fig. 7), the validation choices and the covariance calibration
figures, the fingerprint variants beyond the paper, and the plots."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from sense_nodes.errors import UserError


def _cm(err_m) -> float | None:
    e = np.asarray(err_m, np.float64)
    e = e[np.isfinite(e)]
    return float(100 * e.mean()) if e.size else None


def _errors(est, xy):
    fused = np.linalg.norm(est.fused_xy - xy, axis=1)
    per = np.linalg.norm(est.per_bs_xy - xy[:, None], axis=2)
    return fused, per


def _load(path, device):
    from sense_nodes.core.checkpoint import CheckpointError
    from sense_nodes.core.diffloc.estimator import Estimator
    if not path.exists():
        return None
    try:
        return Estimator.from_checkpoint(path, device)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None


def _check_geometry(est, data, path):
    bs = np.asarray(est.config["bs_pos"])
    if bs.shape != data.bs_pos.shape or not np.allclose(bs, data.bs_pos, atol=0.01):
        raise UserError(f"{path}: trained for base stations at {bs.round(1).tolist()}, the dataset has "
                        f"{data.bs_pos.round(1).tolist()} (same geometry needed)")
    if est.expected_fingerprint_dim != data.fp.shape[2]:
        raise UserError(f"{path}: expects {est.expected_fingerprint_dim}-value fingerprints, the dataset "
                        f"gives {data.fp.shape[2]}")


def table_row(fig, prefix, est_out, xy, paper=None, per_bs=True):
    fused, per = _errors(est_out, xy)
    fig[f"{prefix}_fused_error_cm"] = _cm(fused)
    if paper is not None:
        fig[f"paper_{prefix}_fused_error_cm"] = paper[1]
    if per_bs:
        for b in range(per.shape[1]):
            fig[f"{prefix}_bs{b}_error_cm"] = _cm(per[:, b])
            if paper is not None and paper[0] is not None and b < len(paper[0]):
                fig[f"paper_{prefix}_bs{b}_error_cm"] = paper[0][b]
    return fused


def knn_figures(data, tr, va, te, prefix="knn"):
    from sense_nodes.core.diffloc.knn import fit_knn
    fig = {}
    if not (len(tr) and len(va) and len(te)):
        return {f"{prefix}_fused_error_cm": None}, np.full(len(te), np.nan)
    xy = data.xy
    per = np.full((len(te), data.num_bs), np.nan)
    for b in range(data.num_bs):
        t, v = tr[data.valid[tr, b]], va[data.valid[va, b]]
        ok = data.valid[te, b]
        if len(t) and ok.any():
            m = fit_knn(data.pdp[t, b], xy[t], data.pdp[v, b], xy[v])
            per[ok, b] = np.linalg.norm(m.predict(data.pdp[te[ok], b]) - xy[te[ok]], axis=1)
        fig[f"{prefix}_bs{b}_error_cm"] = _cm(per[:, b])
    flat = lambda idx: data.pdp[idx].reshape(len(idx), -1)  # noqa: E731
    m = fit_knn(flat(tr), xy[tr], flat(va), xy[va])
    loc = data.valid[te].any(1)
    fused = np.full(len(te), np.nan)
    fused[loc] = np.linalg.norm(m.predict(flat(te[loc])) - xy[te[loc]], axis=1)
    fig[f"{prefix}_fused_error_cm"] = _cm(fused)
    return fig, fused


def choice_figures(m, est) -> dict:
    """Which fusion rule the headline figure uses and where it came from."""
    from sense_nodes.core.diffloc.calibration import KEY
    from sense_nodes.core.diffloc.calibration import GENERATIVE
    chosen = est.config.get(KEY)
    out = {f"{m}_cov_scale": est.cov_scale}
    if est.model in GENERATIVE:  # the other models' fusion is fixed (map product, averaging)
        out[f"{m}_fusion"] = est.fusion
        out[f"{m}_fusion_chosen_on"] = "validation split" if chosen else "none recorded (the paper's Eq. 19)"
    return out


def coverage_figures(prefix, est, out, xy) -> dict:
    """Share of test errors inside the 95 % ellipse of the covariance with
    the scale calibrated on validation, and of the raw draws' spread."""
    from sense_nodes.core.diffloc.covariance import coverage95
    ok = np.isfinite(out.fused_xy[:, 0])
    err = out.fused_xy[ok] - xy[ok]
    return {f"{prefix}_cov95_coverage_pct": coverage95(err, out.cov[ok]),
            f"{prefix}_cov95_coverage_uncalibrated_pct": coverage95(err, out.cov[ok] / est.cov_scale)}


def subsets_figures(est, data, te, prefix, draws=1):
    """Fig. 7: fused error over every subset of stations, by subset size."""
    fig = {}
    xy = data.xy[te]
    old = est.draws
    est.configure(draws=draws)
    by_size = {}
    base = est.estimate(data.fp[te], data.valid[te]) if est.fusion == "gaussian_product" else None
    for k in range(1, data.num_bs + 1):
        errs = []
        for sub in itertools.combinations(range(data.num_bs), k):
            if base is not None and base.per_bs_cov is not None:  # the product over the subset
                from sense_nodes.core.diffloc.score_fusion import gaussian_product
                m = data.valid[te] & np.isin(np.arange(data.num_bs), sub)[None]
                ok = m.any(1)
                fx = np.full((len(te), 2), np.nan)
                if ok.any():
                    fx[ok] = gaussian_product(np.nan_to_num(base.per_bs_xy[ok]).transpose(1, 0, 2),
                                              base.per_bs_cov[ok].transpose(1, 0, 2, 3), m[ok].T)[0]
                e = np.linalg.norm(fx - xy, axis=1)
            else:
                out = est.estimate(data.fp[te], data.valid[te], stations=sub, per_bs=False)
                e = np.linalg.norm(out.fused_xy - xy, axis=1)
            errs.append(_cm(e))
        errs = [e for e in errs if e is not None]
        by_size[k] = errs
        if errs:
            fig[f"{prefix}_fused{k}bs_median_error_cm"] = float(np.median(errs))
            fig[f"{prefix}_fused{k}bs_min_error_cm"] = float(np.min(errs))
            fig[f"{prefix}_fused{k}bs_max_error_cm"] = float(np.max(errs))
    meds = [fig.get(f"{prefix}_fused{k}bs_median_error_cm") for k in range(1, data.num_bs + 1)]
    meds = [m for m in meds if m is not None]
    fig[f"{prefix}_fusion_monotonic"] = bool(all(a > b for a, b in zip(meds[:-1], meds[1:])))
    est.configure(draws=old)
    return fig, by_size


def _plot_cdf(curves: dict, crb_m, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, e in curves.items():
        e = np.sort(np.asarray(e)[np.isfinite(e)]) * 100
        if e.size:
            ax.plot(e, np.arange(1, e.size + 1) / e.size, label=name)
    if crb_m is not None:
        c = np.sort(crb_m[np.isfinite(crb_m)]) * 100
        if c.size:
            ax.plot(c, np.arange(1, c.size + 1) / c.size, "k--", label="Cramer-Rao bound")
    ax.set_xscale("log")
    ax.set_xlim(left=1e-3)  # an exact k-NN match (a user standing still) would stretch the axis
    ax.set_xlabel("fused position error (cm)")
    ax.set_ylabel("CDF")
    ax.set_title("DiffLoc fused error, test split")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_subsets(by_size: dict, name: str, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    ks = sorted(by_size)
    ax.boxplot([by_size[k] for k in ks], positions=ks)
    ax.set_yscale("log")
    ax.set_xlabel("number of fused BSs")
    ax.set_ylabel("mean error over the test split (cm)")
    ax.set_title(f"{name}: error vs BSs, every subset (Fig. 7)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


VARIANTS = {"db": ("ct-db", "unet-db", "ct-user-db"), "beam_db": ("ct-beamdb", "ct-user-beamdb")}


def fingerprint_variants(fig, curves, ds, models, args, te, skip, device) -> None:
    """Models trained with ``--magnitude db`` (Eq. 4's magnitude in dB) or
    ``--magnitude beam_db`` (the beam x delay map in dB), on the same test
    samples, each on its own fingerprints."""
    from sense_nodes.core.diffloc.dataset import load_positioning
    for magnitude, names in VARIANTS.items():
        present = [n for n in names if (models / f"{n}.pt").exists()]
        if not present:
            continue
        data = load_positioning(ds, magnitude=magnitude, progress=True)
        for name in present:
            scheme = "user" if "-user" in name else "random"
            est = _load(models / f"{name}.pt", device)
            _check_geometry(est, data, models / f"{name}.pt")
            gen = est.model in ("mlp", "unet")
            est.configure(draws=args.ddim_draws if gen else args.draws, fusion=args.fusion, projection=args.projection,
                          steps=args.ddim_steps if gen else None)
            idx = data.indices("test", scheme) if args.samples == "test" or scheme == "user" else te
            out = est.estimate(data.fp[idx], data.valid[idx])
            pref = name.replace("-", "_")
            curves[f"{name} ({magnitude} fingerprint)"] = table_row(fig, pref, out, data.xy[idx])
            fig[f"{pref}_train_minutes"] = float(est.config.get("train_seconds", 0) / 60)
            fig.update(choice_figures(pref, est))
            if est.model == "ct":
                fig.update(coverage_figures(pref, est, out, data.xy[idx]))
            if scheme == "random" and "table5" not in skip:
                veh = data.variant[idx] == 1
                if veh.any():
                    fig[f"{pref}_vehicular_fused_error_cm"] = _cm(
                        np.linalg.norm(out.fused_xy[veh] - data.xy[idx][veh], axis=1))
        del data
