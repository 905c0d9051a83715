"""Train an off-grid ISAC imaging network (Tables III-IV of offgrid_isac_imaging).

Presets name the paper's networks (net1..net10 of Table IV, dnn_y and dnn_sp
of Table III); any option given overrides the preset. Training data are
simulated on the fly and cached outside git. Runs on CUDA when present.

  sense train imaging --preset net9 --out net9.pt

The shipped checkpoints were trained on one CPU thread (bfloat16 autocast) on
the paper's scene and noise model (exactly 6 UAVs at least 3 voxels apart,
P_n per CSI element), each run about 30 minutes, warm-started from the
previous checkpoints (trained on the earlier, 14 dB noisier model) -- about
0.4 % of the paper's 200 epochs x 90,000 images (run from the folder that
holds the previous checkpoints, so the checkpoint records a bare file name):

  sense train imaging --preset net10 --init net10_prev.pt --lr 5e-4 --out net10.pt \
      --n-train 4000 --n-fresh 4000 --epochs 10 --patience 2 --time-budget-min 30 --threads 1
  sense train imaging --preset net9 --init net10.pt --lr 3e-4 --out net9.pt \
      --n-train 4000 --n-fresh 4000 --epochs 10 --patience 2 --time-budget-min 29 --threads 1

Net-9 (OHEM-1) is warm-started from Net-10 because from a cold start it stays
at the all-zero image within such a budget.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from sense_nodes.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sense_nodes.core.imaging.training import PRESETS
    parser.add_argument("--preset", default="net9", choices=sorted(PRESETS),
                        help="network of Table III/IV (default net9)")
    parser.add_argument("--out", metavar="PATH", help="checkpoint path (default: the package's "
                        "checkpoints/<preset>.pt)")
    parser.add_argument("--arch", help="override: rescnn, cnn, dn-cnn, dn-rescnn, mlp")
    parser.add_argument("--input", help="override: bp (A^H y), sp (SP image), y (raw CSI)")
    parser.add_argument("--loss", help="override: mse, ohem1, ohem2 (Eq. 21)")
    parser.add_argument("--eta", type=float, help="override: OHEM negative ratio eta")
    parser.add_argument("--alpha", type=float, help="override: L1 weight alpha (Eq. 22)")
    parser.add_argument("--n-train", type=int, default=4000, help="training scenes (default 4000)")
    parser.add_argument("--n-val", type=int, default=500, help="validation scenes (default 500)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs (default 10)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3, help="initial RMSprop rate (paper 1e-3)")
    parser.add_argument("--patience", type=int, help="plateau epochs before halving the rate "
                        "(default: the paper's 5 of 200 epochs, scaled)")
    parser.add_argument("--time-budget-min", type=float, help="stop after this many minutes")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    parser.add_argument("--head", choices=("sigmoid", "linear"), help="output activation "
                        "(default sigmoid)")
    parser.add_argument("--init", metavar="PATH", help="warm-start from this checkpoint "
                        "(the layers it shares with this network), e.g. Net-9 from Net-10")
    parser.add_argument("--n-fresh", type=int, help="extra scenes simulated anew every epoch")
    parser.add_argument("--no-bf16", action="store_true", help="train in float32 on the CPU "
                        "(default: bfloat16 autocast of the forward pass)")
    parser.add_argument("--mean-uavs", type=float, help="UAVs per scene (default 6 in 2D, the "
                        "paper's count)")
    parser.add_argument("--pn-dbm", type=float, help="noise per receive antenna (default -110)")


def main(args: argparse.Namespace) -> dict:
    from sense_nodes.core.imaging.geometry import ImagingConfig
    from sense_nodes.core.imaging.imager import CHECKPOINT_DIR, pick_device
    from sense_nodes.core.imaging.training import TrainConfig, train

    overrides = {k: getattr(args, k) for k in ("arch", "input", "loss", "eta", "alpha", "patience",
                                               "time_budget_min", "threads", "head", "init",
                                               "n_fresh")
                 if getattr(args, k) is not None}
    if args.no_bf16:
        overrides["bf16"] = False
    img = {k: v for k, v in (("mean_uavs", args.mean_uavs), ("pn_dbm", args.pn_dbm)) if v is not None}
    try:
        tc = TrainConfig.preset(args.preset, n_train=args.n_train, n_val=args.n_val,
                                epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                seed=args.seed, imaging=ImagingConfig(**img).to_dict(), **overrides)
        device = pick_device(args.device)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    out = Path(args.out) if args.out else CHECKPOINT_DIR / f"{args.preset}.pt"
    print(f"training {tc.name} ({tc.arch}, input {tc.input}, loss {tc.loss}, eta {tc.eta}, "
          f"alpha {tc.alpha}) on {device}: {tc.n_train} scenes x {tc.epochs} epochs -> {out}")
    summary = train(tc, out, device=str(device))
    last = summary["history"][-1]
    return {"train_minutes": summary["train_seconds"] / 60, "epochs_run": summary["epochs_run"],
            "best_val_loss": summary["best_val_loss"], "val_mse": last["val_mse"],
            "final_lr": last["lr"], "checkpoint_mb": out.stat().st_size / 2**20}
