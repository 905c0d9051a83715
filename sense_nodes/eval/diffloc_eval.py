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
fingerprint's magnitude in dB, or ``beam_db``, the beam x delay map in
dB); ``<m>_sum_fused_error_cm`` and ``<m>_prior_corrected_fused_error_cm``
(the plain sum of Eq. 19, the prior-corrected sum and the product of the
per-BS Gaussian posteriors, Eq. 17; see score_fusion; the headline rule
``<m>_fusion`` is the one chosen on the validation split, never on these
figures); ``ct_cov95_coverage_pct`` (share of test errors inside the 95 %
ellipse of the estimate's covariance, its scale calibrated on the
validation split; ``_uncalibrated_`` the raw spread of the draws); the
learning curve (``*_frac<p>_*``, error against training samples, see
diffloc_learning); a CDF plot of the fused errors (PNG).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from sense_nodes.errors import UserError
from sense_nodes.eval.diffloc_figures import (_check_geometry, _cm, _load, _plot_cdf, _plot_subsets, choice_figures,
                                              coverage_figures, fingerprint_variants, knn_figures, subsets_figures,
                                              table_row)

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
    from sense_nodes.core.diffloc.estimator import DEFAULT_PROJECTION, PROJECTIONS
    from sense_nodes.eval.datasets import add_dataset_arguments
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
                        "fig7,fig8,fig9,fig11,table5,table6,fusion,db,curve")
    parser.add_argument("--snrs", default=",".join(f"{s:g}" for s in SNRS),
                        help="Fig. 11: SNRs (dB) of the noisy test CSI (default 50,40,30,20,10)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma list of Table IV methods to evaluate ('none': only the other studies)")
    parser.add_argument("--figures", metavar="DIR", default="out/diffloc", help="where the PNGs go")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--projection", default=DEFAULT_PROJECTION, choices=tuple(PROJECTIONS),
                        help="dtype of the fingerprint projection (default %(default)s, the deployment's)")


def main(args: argparse.Namespace) -> dict:
    from sense_nodes.eval.datasets import open_dataset, set_threads
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
                      steps=args.ddim_steps if ddim else None, projection=args.projection)
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
            est.configure(draws=1, fusion=args.fusion, projection=args.projection, steps=args.ddim_steps)
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
            est.configure(draws=args.draws if m == "ct" else 1, fusion=args.fusion, projection=args.projection,
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
    if "curve" not in skip:
        from sense_nodes.eval.diffloc_learning import learning_curve
        learning_curve(fig, ds, models, args, device)
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
                    est.configure(draws=1, fusion=args.fusion, projection=args.projection, steps=args.ddim_steps)
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
