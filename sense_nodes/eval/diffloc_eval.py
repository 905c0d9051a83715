"""DiffLoc: the paper's Tables IV-VI and Figures 7-9, 11 measured on our
ray-traced uplink SRS dataset, beside the DiffLoc paper's values.

Reads the checkpoints `sense train diffloc` wrote into the model folder
(``--models``; a model without a checkpoint is reported as not trained) and
evaluates them on the test split of the dataset (``--dataset`` another
dataset of the same geometry, e.g. one drawn with another seed; ``--samples
all`` evaluates every sample of it). Every sample is evaluated; a sample with
no usable link at any BS is not localised and counted
(``samples_not_localised_pct``), never dropped silently. Every error is
printed beside the Cramer-Rao bound (``crb_median_cm``) of the same samples.

Figures: ``<method>_fused_error_cm`` and ``<method>_bs<k>_error_cm`` (mean
error, cm; BS k of ours beside BS k+1 of the paper) for mlp, unet, ct,
supervised_mlp, cnn, grid, knn (Table IV); ``<method>_vehicular_fused_error_cm``
(Table V, the vehicular users' test samples); ``<method>_unseen_user_*``
(Table VI, models trained with ``--split user``); ``<m>_fused<k>bs_*`` over
all subsets of k stations (Fig. 7); ``<m>_steps<n>_fused_error_cm`` (Fig. 8;
the same model sampled with n steps, not retrained per n as in the paper);
``mlp_hard_*`` / ``unet_soft_*`` (Fig. 9, models trained with
``--soft-labels off/on``); ``unet_<clean|mixed|snr>_snr<s>_*`` (Fig. 11);
``ct_db_*`` / ``ct_user_db_*`` / ``ct_beamdb_*`` / ``ct_user_beamdb_*``
(beyond the paper: models trained with ``--magnitude db``, the
fingerprint's magnitude in dB, or ``beam_db``, the beam x delay map in dB); ``<m>_sum_fused_error_cm`` and ``<m>_prior_corrected_fused_error_cm`` (the
plain sum of Eq. 19, the prior-corrected sum and the product of the
per-BS Gaussian posteriors, Eq. 17; see score_fusion; the headline rule
``<m>_fusion`` is the one chosen on the validation split, never on these
figures); ``ct_cov95_coverage_pct`` (share of test errors inside the 95 %
ellipse of the estimate's covariance, its scale calibrated on the
validation split; ``_uncalibrated_`` the raw spread of the draws); a CDF plot of the fused errors (PNG).
"""
from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

from sense_nodes.cli.main import UserError

METHODS = ("mlp", "unet", "ct", "supervised_mlp", "cnn", "grid", "knn")
# Table IV (random split), BS1..BS4 of the paper's seven and the fusion
PAPER_T4 = {"supervised_mlp": (None, 3328.7), "cnn": (None, 1040.1),
            "grid": ((2115.1, 2219.0, 1915.2, 1703.7), 306.0),
            "mlp": ((124.0, 149.5, 159.3, 114.6), 113.2),
            "unet": ((49.3, 52.0, 52.5, 56.0), 11.4),
            "ct": ((1.6, 1.7, 1.6, 2.0), 0.5)}
PAPER_T5 = {"supervised_mlp": 8032.2, "cnn": 7650.1, "grid": 8019.0, "unet": 21.3, "ct": 0.9}
PAPER_T6 = {"grid": ((2699.5, 2640.2, 2490.3, 2099.2), 501.9), "unet": ((52.2, 52.5, 54.6, 57.4), 11.6),
            "ct": ((1.4, 1.2, 1.4, 1.6), 0.6)}
PAPER_FIG8 = {("unet", 200): 11.8, ("unet", 50): 7.8, ("unet", 2): 1470.5}
PAPER_FIG11 = {("snr", 50.0): 7.6, ("snr", 10.0): 9.0}
PAPER_FIG7_UNET = {1: 50.0}
SNRS = (50.0, 40.0, 30.0, 20.0, 10.0)
UNET_STEPS = (200, 100, 50, 20, 10, 5, 2)
CT_STEPS = (1, 2, 4, 8, 16)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sense_nodes.cli.diffloc_train import add_dataset_arguments
    add_dataset_arguments(parser)
    parser.add_argument("--models", metavar="DIR", help="checkpoint folder (default: the cache's)")
    parser.add_argument("--samples", default="test", choices=("test", "all"),
                        help="evaluate the test split (default) or every sample (another dataset)")
    parser.add_argument("--draws", type=int, default=8, help="initial noises per estimate (covariance)")
    parser.add_argument("--ddim-steps", type=int, default=200, help="DDIM steps of mlp/unet (paper 200)")
    parser.add_argument("--ddim-draws", type=int, default=2, help="initial noises per DDIM estimate "
                        "(200 steps each; default 2)")
    parser.add_argument("--fusion", default="auto", choices=("auto", "gaussian_product", "prior_corrected", "sum"),
                        help="fusion rule of the headline figures (auto: the one chosen on the validation split "
                             "and recorded in the checkpoint by `sense train diffloc`; the others are "
                             "reported beside, on test, for information only)")
    parser.add_argument("--skip", default="", help="comma list of studies to skip: "
                        "fig7,fig8,fig9,fig11,table5,table6,fusion,db")
    parser.add_argument("--snrs", default=",".join(f"{s:g}" for s in SNRS),
                        help="Fig. 11: SNRs (dB) of the noisy test CSI (default 50,40,30,20,10)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma list of Table IV methods to evaluate ('none': only the other studies)")
    parser.add_argument("--figures", metavar="DIR", default="out/diffloc", help="where the PNGs go")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))


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
    chosen = est.config.get(KEY)
    return {f"{m}_fusion": est.fusion,
            f"{m}_fusion_chosen_on": "validation split" if chosen else "none recorded (the paper's Eq. 19)",
            f"{m}_cov_scale": est.cov_scale}


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
            est.configure(draws=args.ddim_draws if gen else args.draws, fusion=args.fusion,
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


def main(args: argparse.Namespace) -> dict:
    from sense_nodes.cli.diffloc_train import open_dataset, set_threads
    from sense_nodes.core.diffloc.crb import crb_samples_m
    from sense_nodes.core.diffloc.dataset import load_positioning
    from sense_nodes.core.diffloc.models import model_dir

    set_threads(args)
    if args.draws < 1 or args.ddim_draws < 1 or not 1 <= args.ddim_steps <= 200:
        raise UserError("--draws and --ddim-draws must be >= 1 and --ddim-steps in [1, 200]")
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    methods = [] if args.methods == "none" else [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UserError(f"--methods: unknown {', '.join(unknown)} (known: {', '.join(METHODS)}, or none)")
    device = None if args.device == "auto" else args.device
    models = Path(args.models) if args.models else model_dir()
    ds = open_dataset(args)
    t_start = time.perf_counter()
    data = load_positioning(ds, progress=True)
    tr, va = data.indices("train"), data.indices("val")
    te = data.indices("test") if args.samples == "test" else np.arange(len(data.xy))
    xy = data.xy[te]
    fig = {"draws": args.draws, "ddim_draws": args.ddim_draws, "ddim_steps": args.ddim_steps,
           "dataset_samples": int(len(data.xy)), "eval_samples": int(len(te)), "num_bs": data.num_bs,
           "fingerprint_taps": data.taps, "fingerprint_values": int(data.fp.shape[2])}
    loc = data.valid[te].any(1)
    fig["samples_not_localised"] = int((~loc).sum())
    fig["samples_not_localised_pct"] = float(100 * np.mean(~loc))
    fig["links_without_path_pct"] = float(100 * np.mean(~data.valid[te]))
    crb = None
    if data.crb_fim is not None:
        crb = crb_samples_m(data.crb_fim[te], data.power[te], data.snr_db[te], data.valid[te])
        fig["crb_median_cm"] = float(100 * np.median(crb[np.isfinite(crb)])) if np.isfinite(crb).any() else None
        fig["crb_snr"] = "each sample's drawn SNR (10-50 dB)"
    else:
        fig["crb_median_cm"] = None
    curves = {}
    ests = {}
    # --- Table IV --------------------------------------------------------------
    for m in [m for m in METHODS[:-1] if m in methods]:
        path = models / f"{m}.pt"
        est = _load(path, device)
        if est is None:
            fig[f"{m}_fused_error_cm"] = None
            fig[f"{m}_trained"] = False
            print(f"{m}: no checkpoint at {path} (sense train diffloc --model {m})")
            continue
        _check_geometry(est, data, path)
        ddim = m in ("mlp", "unet")
        est.configure(draws=args.ddim_draws if ddim else args.draws, fusion=args.fusion,
                      steps=args.ddim_steps if ddim else None)
        t0 = time.perf_counter()
        out = est.estimate(data.fp[te], data.valid[te])
        curves[m] = table_row(fig, m, out, xy, PAPER_T4.get(m))
        fig[f"{m}_train_minutes"] = float(est.config.get("train_seconds", 0) / 60)
        fig[f"{m}_eval_s"] = time.perf_counter() - t0
        ests[m] = est
        fig.update(choice_figures(m, est))
        if m == "ct":
            fig.update(coverage_figures("ct", est, out, xy))
            fig["paper_ct_cov95_coverage_pct"] = None
        if "table5" not in skip:
            veh = data.variant[te] == 1
            if veh.any():
                e = np.linalg.norm(out.fused_xy[veh] - xy[veh], axis=1)
                fig[f"{m}_vehicular_fused_error_cm"] = _cm(e)
                if m in PAPER_T5:
                    fig[f"paper_{m}_vehicular_fused_error_cm"] = PAPER_T5[m]
        print(f"{m}: fused {fig[f'{m}_fused_error_cm']} cm in {fig[f'{m}_eval_s']:.1f} s")
    if "knn" in methods:
        kf, curves["knn"] = knn_figures(data, tr, va, te)
        fig.update(kf)
    if "table5" not in skip and "knn" in curves:
        veh = data.variant[te] == 1
        if veh.any():
            fig["knn_vehicular_fused_error_cm"] = _cm(curves["knn"][veh])
    # --- fusion rule ---------------------------------------------------------------
    if "fusion" not in skip:
        for other in ("gaussian_product", "prior_corrected", "sum"):
            for m in ("ct", "unet", "mlp"):
                if m in ests and ests[m].fusion != other:
                    ests[m].configure(fusion=other)
                    out = ests[m].estimate(data.fp[te], data.valid[te], per_bs=False)
                    fig[f"{m}_{other}_fused_error_cm"] = _cm(np.linalg.norm(out.fused_xy - xy, axis=1))
                    ests[m].configure(fusion=args.fusion)
                    fig[f"{m}_fusion"] = ests[m].fusion
    # --- Fig. 7 ------------------------------------------------------------------------
    fig_dir = Path(args.figures)
    if "fig7" not in skip:
        for m in ("ct", "unet"):
            if m in ests:
                f7, by_size = subsets_figures(ests[m], data, te, m)
                fig.update(f7)
                if m == "unet":
                    fig["paper_unet_fused1bs_median_error_cm"] = PAPER_FIG7_UNET[1]
                fig_dir.mkdir(parents=True, exist_ok=True)
                _plot_subsets(by_size, m, fig_dir / f"diffloc_{m}_subsets.png")
    # --- Fig. 8 ------------------------------------------------------------------------
    if "fig8" not in skip:
        for m, steps in (("unet", UNET_STEPS), ("ct", CT_STEPS)):
            if m not in ests:
                continue
            old = ests[m].steps
            for n in steps:
                ests[m].configure(steps=n, draws=1)
                out = ests[m].estimate(data.fp[te], data.valid[te], per_bs=False)
                fig[f"{m}_steps{n}_fused_error_cm"] = _cm(np.linalg.norm(out.fused_xy - xy, axis=1))
                if (m, n) in PAPER_FIG8:
                    fig[f"paper_{m}_steps{n}_fused_error_cm"] = PAPER_FIG8[(m, n)]
            ests[m].configure(steps=old, draws=args.draws if m == "ct" else args.ddim_draws)
            vals = {n: fig[f"{m}_steps{n}_fused_error_cm"] for n in steps if fig[f"{m}_steps{n}_fused_error_cm"] is not None}
            if m == "ct" and vals and 2 in vals:
                fig["ct_2step_vs_best_pct"] = float(100 * (vals[2] / min(vals.values()) - 1))
    # --- Fig. 9 ------------------------------------------------------------------------
    if "fig9" not in skip:
        for m, name in (("mlp", "mlp-hard"), ("unet", "unet-soft")):
            est = _load(models / f"{name}.pt", device)
            if est is None:
                continue
            _check_geometry(est, data, models / f"{name}.pt")
            est.configure(draws=1, fusion=args.fusion, steps=args.ddim_steps)
            out = est.estimate(data.fp[te], data.valid[te])
            table_row(fig, name.replace("-", "_"), out, xy)
    # --- Table VI ------------------------------------------------------------------------
    if "table6" not in skip:
        tr_u, va_u, te_u = (data.indices(s, "user") for s in ("train", "val", "test"))
        for m in ("grid", "unet", "ct", "mlp", "supervised_mlp", "cnn"):
            est = _load(models / f"{m}-user.pt", device)
            if est is None:
                continue
            _check_geometry(est, data, models / f"{m}-user.pt")
            est.configure(draws=args.draws if m == "ct" else 1, fusion=args.fusion,
                          steps=args.ddim_steps if m in ("mlp", "unet") else None)
            out = est.estimate(data.fp[te_u], data.valid[te_u])
            e = table_row(fig, f"{m}_unseen_user", out, data.xy[te_u], PAPER_T6.get(m))
            curves[f"{m} (unseen users)"] = e
        kf, e = knn_figures(data, tr_u, va_u, te_u, prefix="knn_unseen_user")
        fig.update(kf)
        if crb is not None and data.crb_fim is not None:
            cu = crb_samples_m(data.crb_fim[te_u], data.power[te_u], data.snr_db[te_u], data.valid[te_u])
            fig["crb_unseen_user_median_cm"] = float(100 * np.median(cu[np.isfinite(cu)]))
    # --- beyond the paper: other fingerprints ------------------------------------------
    if "db" not in skip:
        fingerprint_variants(fig, curves, ds, models, args, te, skip, device)
    # --- Fig. 11 ------------------------------------------------------------------------
    if "fig11" not in skip:
        regimes = {"clean": _load(models / "unet.pt", device), "mixed": _load(models / "unet-mixed.pt", device)}
        for snr in SNRS:
            regimes[f"snr{snr:g}"] = _load(models / f"unet-snr{snr:g}.pt", device)
        try:
            snrs = [float(v) for v in args.snrs.split(",") if v.strip()]
        except ValueError:
            raise UserError(f"--snrs: not a list of numbers ({args.snrs!r})") from None
        if any(v is not None for v in regimes.values()):
            for snr in snrs:
                noisy = load_positioning(ds, noise=snr, seed=1)
                for name, est in regimes.items():
                    if est is None or (name.startswith("snr") and name != f"snr{snr:g}"):
                        continue
                    est.configure(draws=1, fusion=args.fusion, steps=args.ddim_steps)
                    out = est.estimate(noisy.fp[te], noisy.valid[te], per_bs=False)
                    key = f"unet_{'per_snr' if name.startswith('snr') else name}_snr{snr:g}_fused_error_cm"
                    fig[key] = _cm(np.linalg.norm(out.fused_xy - xy, axis=1))
                    if name.startswith("snr") and ("snr", snr) in PAPER_FIG11:
                        fig[f"paper_{key}"] = PAPER_FIG11[("snr", snr)]
    # --- targets ---------------------------------------------------------------------------
    ct, grid = fig.get("ct_fused_error_cm"), fig.get("grid_fused_error_cm")
    if ct is not None and grid is not None:
        fig["ct_vs_grid_ratio"] = grid / ct
        fig["paper_ct_vs_grid_ratio"] = 306.0 / 0.5
    if ct is not None and fig.get("crb_median_cm"):
        fig["ct_over_crb_ratio"] = ct / fig["crb_median_cm"]
    fig_dir.mkdir(parents=True, exist_ok=True)
    _plot_cdf(curves, crb, fig_dir / "diffloc_cdf.png")
    fig["cdf_png"] = str(fig_dir / "diffloc_cdf.png")
    fig["eval_minutes"] = (time.perf_counter() - t_start) / 60
    return fig
