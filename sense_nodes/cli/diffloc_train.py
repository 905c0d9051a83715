"""Train DiffLoc per-BS models on a ray-traced uplink SRS dataset
(the DiffLoc paper, Sec. IV-V): the score networks (mlp, unet), the consistency
model (ct) and the baselines (supervised_mlp, cnn, grid).

One network per base station; the checkpoint holds all of them with their
fingerprint normalisation, the position normalisation and the prior. Runs on
CUDA when present, else on the CPU with --threads torch threads.

  sense train diffloc --model ct                      # -> $SENSE_CACHE/models/diffloc/ct.pt
  sense train diffloc --model unet --split user       # unseen-user split -> unet-user.pt
  sense train diffloc --model unet --noise 20         # AWGN at 20 dB -> unet-snr20.pt
  sense train diffloc --model ct --choose-fusion      # no training: re-choose on validation

After training, the fusion rule (generative models) and the covariance
scale are chosen on the validation split and recorded in the checkpoint
(core/diffloc/calibration.py); ``--choose-fusion`` does only that, for a
checkpoint trained before.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from sense_nodes.errors import UserError
from sense_nodes.eval.datasets import add_dataset_arguments, open_dataset, set_threads  # noqa: F401 - shared with `sense eval`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sense_nodes.core.diffloc.networks import UNET_WIDTHS
    from sense_nodes.core.diffloc.training import COMPONENTS, DEFAULT_COMPONENTS, MODELS
    parser.add_argument("--model", required=True, choices=MODELS, help="which model")
    add_dataset_arguments(parser)
    parser.add_argument("--out", metavar="PATH", help="checkpoint (default: the model folder in the cache)")
    parser.add_argument("--split", default="random", choices=("random", "user"),
                        help="split scheme: random samples (Table IV) or whole users held out (Table VI)")
    parser.add_argument("--noise", default="clean",
                        help="training CSI: clean, mixed (AWGN at each sample's drawn SNR, Fig. 11 "
                             "'mixed') or a number: AWGN at that SNR in dB for every sample")
    parser.add_argument("--magnitude", default="linear", choices=("linear", "db", "beam_db"),
                        help="fingerprint: Eq. 4 with the magnitude linear (default) or in dB, or beam_db: "
                             "the beam x delay power map in dB, no phase (both beyond the paper)")
    parser.add_argument("--steps", type=int, help="optimiser steps per BS (default: per model)")
    parser.add_argument("--time-budget-min", type=float, help="stop each BS after this many minutes")
    parser.add_argument("--components", type=int,
                        help="principal components of the fingerprint fed to the networks (0 = all; default: "
                             + ", ".join(f"{v} for {k}" for k, v in DEFAULT_COMPONENTS.items())
                             + f", {COMPONENTS} for the others)")
    parser.add_argument("--unet-widths", metavar="W1,W2,...", type=_widths,
                        help="encoder widths of the UNet of unet and ct (default: "
                             + ",".join(str(w) for w in UNET_WIDTHS) + ")")
    parser.add_argument("--soft-labels", choices=("on", "off"), help="dynamic soft labels (default: on "
                        "for mlp only)")
    parser.add_argument("--grid-spacing", type=float, help="grid: spacing in m (default: tuned on validation)")
    parser.add_argument("--train-fraction", type=float, default=1.0,
                        help="train on this seeded share of the training split, in (0, 1] (learning "
                             "curves; the checkpoint name gets -frac<percent>)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--choose-fusion", action="store_true",
                        help="do not train: choose the fusion rule and covariance scale of the existing "
                             "checkpoint (--out or the default) on the validation split and record them in it")
    parser.add_argument("--choice-draws", type=int,
                        help="initial noises per estimate while choosing (default: 8 for ct, 2 for DDIM, "
                             "as `sense eval diffloc`)")


def _widths(text: str) -> tuple:
    """--unet-widths "128,192,256" -> (128, 192, 256)."""
    from sense_nodes.core.diffloc.training import check_unet_widths
    try:
        return check_unet_widths(text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"at least two comma-separated positive integers expected (got {text!r})") from None


def _device(option: str) -> str:
    """--device -> where the networks train: auto takes CUDA when present."""
    import torch
    if option == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device here")
    return "cuda" if option == "cuda" or (option == "auto" and torch.cuda.is_available()) else "cpu"


def noise_option(value: str):
    """--noise -> (load_positioning's noise argument, checkpoint tag)."""
    if value == "clean":
        return None, ""
    if value == "mixed":
        return "drawn", "mixed"
    try:
        snr = float(value)
    except ValueError:
        raise UserError(f"--noise must be clean, mixed or an SNR in dB (got {value!r})") from None
    if not math.isfinite(snr):
        raise UserError(f"--noise must be a finite SNR in dB (got {value!r})")
    return snr, f"snr{snr:g}"


def main(args: argparse.Namespace) -> dict:
    import torch
    from sense_nodes.core.diffloc.calibration import choose_and_record
    from sense_nodes.core.diffloc.dataset import load_positioning
    from sense_nodes.core.diffloc.models import default_path, fraction_tag
    from sense_nodes.core.diffloc.training import TrainConfig, train

    set_threads(args)
    noise, tag = noise_option(args.noise)
    try:
        cfg = TrainConfig(model=args.model, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                          components=args.components,
                          **({"unet_widths": args.unet_widths} if args.unet_widths else {}),
                          soft_labels=None if args.soft_labels is None else args.soft_labels == "on",
                          grid_spacing_m=args.grid_spacing, scheme=args.split, seed=args.seed,
                          train_fraction=args.train_fraction, device=_device(args.device),
                          time_budget_s=None if args.time_budget_min is None else 60 * args.time_budget_min)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.time_budget_min is not None and not args.time_budget_min > 0:
        raise UserError(f"--time-budget-min must be > 0 (got {args.time_budget_min})")
    if args.unet_widths and args.model not in ("unet", "ct"):
        raise UserError("--unet-widths applies to the UNet models (unet, ct)")
    if args.soft_labels is not None and args.model not in ("mlp", "unet"):
        raise UserError("--soft-labels applies to the DDIM score networks (mlp, unet)")
    ds = open_dataset(args)
    if args.soft_labels is not None and args.soft_labels == "on" and args.model == "unet":
        tag = (tag + "-" if tag else "") + "soft"
    if args.soft_labels == "off" and args.model == "mlp":
        tag = (tag + "-" if tag else "") + "hard"
    if args.magnitude != "linear":
        tag = (tag + "-" if tag else "") + args.magnitude.replace("_", "")
    if args.train_fraction < 1:
        tag = (tag + "-" if tag else "") + fraction_tag(args.train_fraction)
    if args.magnitude == "beam_db" and args.model == "cnn":
        raise UserError("--magnitude beam_db: the CNN reads the Eq. 4 fingerprint as an image (ports x taps)")
    out = Path(args.out) if args.out else default_path(args.model, args.split, tag)
    if args.choice_draws is not None and args.choice_draws < 1:
        raise UserError(f"--choice-draws must be >= 1 (got {args.choice_draws})")
    if args.choose_fusion:
        return choose_only(args, ds, out)
    data = load_positioning(ds, noise=noise, seed=args.seed, progress=not args.no_progress, magnitude=args.magnitude)
    print(f"training {args.model} on {ds.path} ({data.num_bs} BSs, {args.magnitude} fingerprint of "
          f"{data.fp.shape[2]} values ({data.ports} ports, {data.taps} taps), {data.noise} CSI, split {args.split}, "
          f"{cfg.steps} steps per BS, on {cfg.device}, {torch.get_num_threads()} thread(s)) -> {out}")
    summary = train(data, cfg, out, progress=not args.no_progress)
    figures = {"model": args.model, "train_minutes": summary["train_seconds"] / 60,
               "steps_per_bs": max(s["steps"] for s in summary["stations"]),
               "checkpoint_mb": out.stat().st_size / 2**20, "checkpoint": str(out)}
    if summary["grid_spacing_m"]:
        figures["grid_spacing_m"] = summary["grid_spacing_m"]
    figures.update(choice_figures(choose_and_record(out, data, draws=choice_draws(args))))
    return figures


def choice_draws(args) -> int:
    return args.choice_draws or (2 if args.model in ("mlp", "unet") else 8)


def choice_figures(choices: dict) -> dict:
    rule = choices["fusion"]
    errors = choices["fusion_errors_m"]
    out = {"validation_samples": choices["samples"], "cov_scale": choices["cov_scale"][rule]}
    if len(errors) > 1:  # generative models: the rule is a choice
        out["fusion_chosen_on_validation"] = rule
        out.update({f"validation_{r}_fused_error_cm": 100 * e for r, e in errors.items()})
    else:
        out["validation_fused_error_cm"] = 100 * errors[rule]
    return out


def choose_only(args, ds, out: Path) -> dict:
    """--choose-fusion: the validation choices of a trained checkpoint, on
    the CSI it was trained with (its noise and fingerprint magnitude)."""
    from sense_nodes.core.checkpoint import CheckpointError
    from sense_nodes.core.diffloc.calibration import choose_and_record, noise_argument
    from sense_nodes.core.diffloc.dataset import load_positioning
    from sense_nodes.core.diffloc.estimator import Estimator
    try:
        cfg = Estimator.from_checkpoint(out, "cpu").config
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    data = load_positioning(ds, noise=noise_argument(cfg.get("noise")), seed=cfg.get("train", {}).get("seed", 0),
                            progress=not args.no_progress, magnitude=cfg.get("magnitude", "linear"))
    return {"checkpoint": str(out), **choice_figures(choose_and_record(out, data, draws=choice_draws(args)))}
