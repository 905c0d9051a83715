"""Train the cooperative UAV sensing networks (fwa_cooperative_sensing).

On the cached, noisy features of an ``fwa`` dataset (made on first use):
the detector (I-UDetNet + C-UDetNet, scene labels only, random pair
sampling), its decision threshold (chosen on the validation split), the
pair-supervised baseline (SL with sigma_d), I-ULocNet, then C-ULocNet and
the soft-fusion baseline on the pairs the trained detector selects.

  sense train fwa                      # all models -> the package's checkpoints/
  sense train fwa --models culocnet,soft --out-dir DIR
  sense train fwa --models validation --out-dir DIR    # a trained set's validation figures

Sets are compared on the validation split only: training C-ULocNet or
soft fusion, and ``--models validation``, report the set's validation APE
(C-ULocNet, hard and soft fusion, perfect pair labels) as ``sense eval
fwa`` measures it on the test split.

The network input is ``bdz`` by default (core/fwa/background.py says why);
``--input paper`` trains on the paper's P(H). The shipped checkpoints were
trained on one CPU thread, each model within its time budget, on the
default dataset (``sense data generate --kind fwa``, seed 0, with receiver
noise), in this order:

  sense train fwa --models sl --epochs 30 --minutes 4
  sense train fwa --models ulocnet --epochs 150 --minutes 4 --batch-size 32 --loc-min-peak 0.34 --stop-patience 15
  sense train fwa --models detector --epochs 40 --minutes 10 --lr 5e-4 --stop-patience 10
  sense train fwa --models culocnet,soft --epochs 80 --minutes 1.5 --batch-size 32 --stop-patience 12

The networks on background-nulled input (``--input nulled``,
core/fwa/nulled.py, shipped as the set named "nulled") were trained on a
dataset of 10,000 scenes of the same site (the paper's Table I has 25,200;
on the default 2,000 the localiser overfits), with the subspace
calibration of that dataset first; D is the folder the first command
prints:

  sense data generate --kind fwa --samples 10000
  sense train fwa --subspace --dataset D
  sense train fwa --dataset D --input nulled --out-dir nulled --models detector --epochs 40 --minutes 16 --lr 5e-4 \
      --stop-patience 10
  sense train fwa --dataset D --input nulled --out-dir nulled --models ulocnet --epochs 150 --minutes 12 \
      --batch-size 32 --loc-min-peak 0.67 --stop-patience 15
  sense train fwa --dataset D --input nulled --out-dir nulled --models culocnet,soft --epochs 80 --minutes 3 \
      --batch-size 32 --stop-patience 12
  sense train fwa --dataset D --input nulled --out-dir nulled --models thresholds
  sense train fwa --dataset D --input nulled --out-dir nulled --models sl --epochs 30 --minutes 5

The models record their dataset: ``sense eval fwa --checkpoints nulled``
evaluates them on its test split, with its calibration.

The default set's detector got its per-silent-BS thresholds with
``sense train fwa --models thresholds``.

(``--loc-min-peak 0.67``: the 95th percentile of the UAV-free training
pairs' peaks, so I-ULocNet learns from pairs whose echo stands out of the
noise.)

(I-ULocNets trained longer, ``--minutes 26`` and ``--minutes 30``, reached
a lower validation RMSE, but the C-ULocNets trained on them by the command
above had a higher validation APE, mean and 95 %: the 12-minute one stays,
chosen on ``--models validation`` alone. C-ULocNet stops on its patience
well within its 3 minutes, so a longer budget changes nothing.)

The training-free alternative (core/fwa/calibration.py) is calibrated,
not trained: ``sense train fwa --subspace`` fits the background bases on
UAV-free training scenes, chooses its thresholds and the localiser's pair
count on the validation split, and writes the file the fwa nodes load
under ``detector: subspace`` (default: the cache's models/fwa/subspace.npz, or
subspace-DATASET.npz for another ``--dataset``).

(A first detector, ``--epochs 30 --minutes 12`` at the default rate and
patience, stopped early at a higher validation loss; the one above
replaced it on validation loss alone.)
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from sense_nodes.errors import UserError
from sense_nodes.eval.datasets import open_features  # noqa: F401 - shared with `sense eval`
from sense_nodes.eval.fwa_subspace_stats import CALIBRATION_SCENES

MODELS = ("detector", "sl", "ulocnet", "culocnet", "soft")
# not a model: the decision thresholds of a trained detector, chosen again on validation
THRESHOLDS = "thresholds"
# not a model: the validation figures of the trained set in --out-dir, nothing trained
VALIDATION = "validation"
PSEUDO = (THRESHOLDS, VALIDATION)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", metavar="DIR", help="fwa dataset folder (default: the cached "
                        "default, `sense data generate --kind fwa`)")
    parser.add_argument("--out-dir", metavar="DIR", help="checkpoint folder (default: the package's "
                        "core/fwa/checkpoints; 'nulled': its nulled/ set)")
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated subset of {','.join(MODELS)} (later ones load the "
                        "earlier ones from --out-dir); or 'thresholds': choose the trained detector's decision "
                        "thresholds again on validation; or 'validation': only the validation figures of the "
                        "set in --out-dir (I-ULocNet RMSE on the pairs of --loc-min-peak, APE of C-ULocNet, "
                        "hard and soft fusion)")
    parser.add_argument("--input", default="bdz", choices=("bdz", "paper", "nulled"),
                        help="network input: bdz (default: Blackman beam x delay map z-scored per pair "
                        "against UAV-free training scenes, core/fwa/background.py), paper (P(H) of "
                        "Section III-B1) or nulled (the beam x delay map of the background-nulled residual, "
                        "core/fwa/nulled.py; needs the calibration of `sense train fwa --subspace`)")
    parser.add_argument("--snr-offset-db", type=float, default=0.0,
                        help="shift of every pair's link SNR, dB (default 0)")
    parser.add_argument("--no-noise", action="store_true", help="train without receiver noise")
    parser.add_argument("--epochs", type=int, default=12, help="epochs per model (default 12)")
    parser.add_argument("--minutes", type=float, default=8.0, help="time budget per model (default 8)")
    parser.add_argument("--lr", type=float, default=1e-3, help="initial Adam rate (default 1e-3)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--k", type=int, default=10, help="top-k of the pair selection (default 10)")
    parser.add_argument("--sigma-att", type=float, default=0.1,
                        help="attention threshold of the pair selection (default 0.1)")
    parser.add_argument("--n-feature", type=int, default=64, choices=(32, 64, 128),
                        help="N_v, length of the I-ULocNet feature (default 64)")
    parser.add_argument("--loc-min-peak", type=float, default=0.0,
                        help="train I-ULocNet on the UAV-affected pairs whose input peak reaches this "
                        "(bdz units: (z - 3) / 3; nulled units: (dB over the noise - 3) / 10; default 0 = every affected pair)")
    parser.add_argument("--stop-patience", type=int, default=4,
                        help="epochs without a better validation loss before stopping (default 4)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subspace", action="store_true",
                        help="instead of the networks: calibrate the background-nulling detector for the "
                        "nodes' 'detector: subspace' (writes --calibration-out)")
    parser.add_argument("--subspace-calibration", type=int, default=CALIBRATION_SCENES, metavar="N",
                        help=f"with --subspace: UAV-free training scenes to fit on (default {CALIBRATION_SCENES})")
    parser.add_argument("--calibration", metavar="FILE",
                        help="with --input nulled: the subspace calibration to null with (default: the cache's "
                        "one for --dataset, models/fwa/subspace[-DATASET].npz); the models remember which one")
    parser.add_argument("--calibration-out", metavar="FILE",
                        help="with --subspace: calibration file (default: the cache's one for --dataset, "
                        "models/fwa/subspace[-DATASET].npz, where the nodes and evaluations look)")


def _check(args):
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in MODELS + PSEUDO]
    if bad or not models:
        raise UserError(f"--models: unknown {bad} (choose from {', '.join(MODELS + PSEUDO)})")
    for name, lo in (("epochs", 1), ("batch_size", 2), ("threads", 1), ("k", 1)):
        if getattr(args, name) < lo:
            raise UserError(f"--{name.replace('_', '-')} must be >= {lo} (got {getattr(args, name)})")
    for name in ("minutes", "lr", "snr_offset_db", "sigma_att"):
        v = getattr(args, name)
        if v != v or v in (float("inf"), float("-inf")):
            raise UserError(f"--{name.replace('_', '-')} must be finite (got {v})")
    if args.minutes <= 0 or args.lr <= 0 or not 0 <= args.sigma_att <= 1:
        raise UserError("--minutes and --lr must be > 0 and --sigma-att in [0, 1]")
    return models


def calibrate_subspace(args: argparse.Namespace) -> dict:
    """`sense train fwa --subspace`: the calibration file of the
    background-nulling detector."""
    from sense_nodes.core.fwa.calibration import default_path
    from sense_nodes.eval.fwa_subspace import deployment_calibration
    if args.subspace_calibration < 2:
        raise UserError(f"--subspace-calibration must be >= 2 (got {args.subspace_calibration})")
    if args.snr_offset_db != args.snr_offset_db or abs(args.snr_offset_db) == float("inf"):
        raise UserError(f"--snr-offset-db must be finite (got {args.snr_offset_db})")
    t0 = time.perf_counter()
    ds, feat = open_features(args.dataset, not args.no_noise, args.snr_offset_db)
    out = Path(args.calibration_out) if args.calibration_out else default_path(ds.path.name)
    try:
        cal = deployment_calibration(ds, feat, not args.no_noise, args.snr_offset_db, args.subspace_calibration)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    cal.save(out)
    print(f"subspace calibration -> {out}: threshold {cal.threshold:.2f} (one BS silent: "
          f"{', '.join(f'{t:.2f}' for t in cal.threshold_missing)}), k {cal.k_pairs}, "
          f"{cal.info['calibration_scenes']} UAV-free scenes")
    return {"subspace_threshold": cal.threshold, "subspace_pairs_k": cal.k_pairs,
            "subspace_calibration_scenes": cal.info["calibration_scenes"],
            "subspace_calibration_mb": out.stat().st_size / 2**20,
            "subspace_calibration_minutes": (time.perf_counter() - t0) / 60, "subspace_calibration_file": str(out)}


def rethreshold(path: Path, feat, va, input_name: str) -> dict:
    """``--models thresholds``: the trained detector at ``path`` keeps its
    weights and gets its decision thresholds chosen again on validation
    (with every BS and with each BS silent)."""
    from sense_nodes.core.checkpoint import CheckpointError
    from sense_nodes.core.fwa import pipeline as pl
    from sense_nodes.core.fwa import training as tr
    try:
        det, ck = pl.load_model(path, "fwa_detector")
    except (CheckpointError, FileNotFoundError) as exc:
        raise UserError(f"--models thresholds needs a trained detector: {exc}") from None
    if ck.config.get("input", "paper") != input_name:
        raise UserError(f"{path}: a detector on {ck.config.get('input', 'paper')} input; pass --input "
                        f"{ck.config.get('input', 'paper')}")
    thr, missing = tr.decision_thresholds(det, feat, va, pl.NUM_BS, pl.NUM_CPE)
    pl.save_model(path, "fwa_detector", det, ck.config, {**ck.extra, "threshold": thr, "threshold_missing": missing})
    print(f"{path}: threshold {thr:.4f}, one BS silent: {', '.join(f'{t:.4f}' for t in missing)} (validation)")
    return {"detector_threshold": thr, **{f"detector_threshold_bs{b}_silent": t for b, t in enumerate(missing)}}


def fusion_validation(out: Path, feat, idx, attention, k: int, sigma_att: float) -> dict:
    """APE (Section IV-C: the distance between estimate and truth), mean
    and 95th percentile, of the set in ``out`` on the UAV-present
    validation scenes ``idx`` with the detector's ``attention``: C-ULocNet
    over the selected pairs (Eq. 16), hard and soft fusion over the same
    pairs and C-ULocNet with perfect pair labels, as ``sense eval fwa``
    measures them on the test split (and the root mean squared errors the
    training minimises). Sets are compared on these, never on test
    figures."""
    from types import SimpleNamespace

    import numpy as np

    from sense_nodes.core.fwa import pipeline as pl
    from sense_nodes.core.fwa.metrics import ape_figures
    from sense_nodes.eval.fwa_eval import localization
    models = SimpleNamespace(ulocnet=pl.load_model(out / "ulocnet.pt", "fwa_ulocnet")[0],
                             culocnet=pl.load_model(out / "culocnet.pt", "fwa_culocnet")[0])
    e = localization(models, feat, idx, attention, np.ones(attention.shape, bool), k, sigma_att, out)
    fig = {**ape_figures(e["proposed"], "culocnet_val_"), **ape_figures(e["hard"], "hard_fusion_val_"),
           **ape_figures(e["perfect"], "perfect_labels_val_"),
           "culocnet_val_rmse_m": float(np.sqrt(np.mean(e["proposed"] ** 2)))}
    if "soft" in e:
        fig.update(ape_figures(e["soft"], "soft_fusion_val_"), soft_val_rmse_m=float(np.sqrt(np.mean(e["soft"] ** 2))))
    return fig


def main(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    from sense_nodes.core.fwa import pipeline as pl
    from sense_nodes.core.fwa import training as tr
    from sense_nodes.core.fwa.metrics import pick_threshold

    if args.subspace:
        return calibrate_subspace(args)
    models = _check(args)
    torch.set_num_threads(args.threads)
    out = pl.checkpoint_dir(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_feat = time.perf_counter()
    ds, feat = open_features(args.dataset, not args.no_noise, args.snr_offset_db)
    print(f"features of {ds.path}: {feat.x.shape[0]} scenes x {feat.x.shape[1]} pairs "
          f"({time.perf_counter() - t_feat:.0f} s); train {len(feat.indices('train'))}, "
          f"val {len(feat.indices('val'))}, test {len(feat.indices('test'))}")
    bg_extra = {}
    if args.input == "bdz":
        from sense_nodes.core.fwa.background import fit_on_training, with_bdz_inputs
        bg = fit_on_training(feat)
        feat = with_bdz_inputs(feat, bg)
        bg_extra = bg.tensors()
    elif args.input == "nulled":
        from sense_nodes.core.fwa.nulled import calibration_digest
        from sense_nodes.eval.fwa_nulled import load_calibration, with_nulled_inputs
        cal = load_calibration(args.calibration, ds, not args.no_noise, args.snr_offset_db)
        feat = with_nulled_inputs(ds, feat, cal, not args.no_noise, args.snr_offset_db)
        bg_extra = {"calibration_digest": calibration_digest(cal)}
    cfg = tr.TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         minutes=args.minutes, seed=args.seed, stop_patience=args.stop_patience)
    data = {"dataset": ds.path.name, "dataset_seed": int(ds.manifest["seed"]),
            "noise": not args.no_noise, "snr_offset_db": args.snr_offset_db, "train": cfg.to_dict(),
            "input": args.input}
    figures = {}
    va = feat.indices("val")

    if "detector" in models:
        torch.manual_seed(args.seed)
        det = pl.Detector(input=args.input)
        s = tr.train_detector(det, feat, cfg)
        thr, missing = tr.decision_thresholds(det, feat, va, pl.NUM_BS, pl.NUM_CPE)
        pl.save_model(out / "detector.pt", "fwa_detector", det, {"n_embed": 32, "width": 8, "input": args.input},
                      {"threshold": thr, "threshold_missing": missing, **data, "best_val_loss": s["best_val_loss"],
                       **bg_extra})
        figures.update(detector_train_minutes=s["train_seconds"] / 60, detector_epochs=s["epochs_run"],
                       detector_threshold=thr)
        print(f"detector: threshold {thr:.4f} (validation; one BS silent: "
              f"{', '.join(f'{t:.4f}' for t in missing)}), {s['train_seconds'] / 60:.1f} min")
    elif THRESHOLDS in models:
        figures.update(rethreshold(out / "detector.pt", feat, va, args.input))
    if "sl" in models:
        torch.manual_seed(args.seed)
        net = pl.PairSupervisedNet(input=args.input)
        s = tr.train_pair_sl(net, feat, cfg)
        with torch.no_grad():
            top = np.array([float(torch.sigmoid(net(torch.from_numpy(np.asarray(feat.x[i], np.float32)))).max())
                            for i in va])
        thr = pick_threshold(top, feat.present[va] == 1)
        pl.save_model(out / "pair_sl.pt", "fwa_pair_sl", net, {"n_embed": 32, "width": 8, "input": args.input},
                      {"sigma_d": thr, **data})
        figures.update(sl_train_minutes=s["train_seconds"] / 60, sl_sigma_d=thr)
    if "ulocnet" in models:
        torch.manual_seed(args.seed)
        loc = pl.IULocNet(n_feature=args.n_feature, input=args.input)
        s = tr.train_ulocnet(loc, feat, cfg, min_peak=args.loc_min_peak)
        pl.save_model(out / "ulocnet.pt", "fwa_ulocnet", loc,
                      {"n_feature": args.n_feature, "width": 8, "input": args.input}, data)
        figures.update(ulocnet_train_minutes=s["train_seconds"] / 60,
                       ulocnet_val_rmse_m=float(np.sqrt(s["best_val_loss"])) * pl.POS_SCALE)
    if "culocnet" in models or "soft" in models or VALIDATION in models:
        det, _ = pl.load_model(out / "detector.pt", "fwa_detector")
        loc, _ = pl.load_model(out / "ulocnet.pt", "fwa_ulocnet")
        if VALIDATION in models:
            rmse = float(np.sqrt(tr.ulocnet_val_loss(loc, feat, args.loc_min_peak))) * pl.POS_SCALE
            figures["ulocnet_val_rmse_m"] = rmse
        sets, att = {}, {}
        for split in ("train", "val") if "culocnet" in models or "soft" in models else ("val",):
            idx = feat.indices(split)
            idx = idx[feat.present[idx] == 1]
            if idx.size == 0:
                raise UserError(f"{ds.path}: no UAV-present scenes in its {split} split")
            _, att[split] = pl.detect(det, torch.stack([pl.encode(det, feat.x[i]) for i in idx]))
            sets[split] = (idx, tr.selections(att[split], np.ones_like(att[split], bool), args.k, args.sigma_att))
        (itr, str_), (iva, sva) = sets.get("train", (None, None)), sets["val"]
        if "culocnet" in models:
            both = np.concatenate([itr, iva])
            row = {int(i): r for r, i in enumerate(both)}
            p, v = zip(*[pl.locate(loc, feat.x[i]) for i in both])
            p, v = torch.from_numpy(np.stack(p)), torch.from_numpy(np.stack(v))

            def tokens(scenes, e):
                r = torch.as_tensor([row[int(i)] for i in scenes])
                return p[r[:, None], e], v[r[:, None], e]

            torch.manual_seed(args.seed)
            cloc = pl.CULocNet(n_feature=loc.n_feature)
            s = tr.train_fusion(cloc, itr, str_, iva, sva, tokens, feat, cfg, "C-ULocNet")
            pl.save_model(out / "culocnet.pt", "fwa_culocnet", cloc, {"n_feature": loc.n_feature},
                          {"k": args.k, "sigma_att": args.sigma_att, **data})
            figures.update(culocnet_train_minutes=s["train_seconds"] / 60,
                           culocnet_val_rmse_m=float(np.sqrt(s["best_val_loss"])) * pl.POS_SCALE)
        if "soft" in models:
            torch.manual_seed(args.seed)
            soft = pl.SoftFusionNet(input=args.input)

            def raw(sc, e):
                return (torch.stack([torch.from_numpy(np.asarray(feat.x[int(i)][ee.numpy()], np.float32))
                                     for i, ee in zip(sc, e)]),)
            s = tr.train_fusion(soft, itr, str_, iva, sva, raw, feat, cfg, "soft fusion")
            pl.save_model(out / "soft_fusion.pt", "fwa_soft_fusion", soft, {"input": args.input},
                          {"k": args.k, "sigma_att": args.sigma_att, **data})
            figures.update(soft_train_minutes=s["train_seconds"] / 60,
                           soft_val_rmse_m=float(np.sqrt(s["best_val_loss"])) * pl.POS_SCALE)
        figures.update(fusion_validation(out, feat, iva, att["val"], args.k, args.sigma_att))
    for f in sorted(out.glob("*.pt")):
        figures[f"{f.stem}_checkpoint_mb"] = f.stat().st_size / 2**20
    return figures
