"""Train TrajFormer (BSense Section 3.4.2) on the training cases of one
case-level fold, with a progress bar; saves a checkpoint with its config.

`--ship` writes the checkpoint the package uses by default (the uav_tracker
node and the demo); it is trained on fold 0's training cases, so fold 0's
test cases (see `sense sim folds`) are unseen by it. `--verifier boosted`
trains the boosted-tree verifier on the same windows instead (its shipped
file sits beside TrajFormer's)."""
from __future__ import annotations

from pathlib import Path


def add_arguments(parser):
    parser.add_argument("--fold", type=int, default=0, help="test fold left out of training (0..k-1)")
    parser.add_argument("--k", type=int, default=5, help="number of case-level folds")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--max-frames", type=int, default=None, help="cap frames per training case")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--out", default=None, help="checkpoint path (default: the cache)")
    parser.add_argument("--ship", action="store_true", help="write the package's default checkpoint")
    parser.add_argument("--verifier", choices=("trajformer", "boosted"), default="trajformer",
                        help="the paper's TrajFormer, or boosted trees on the same windows")


def main(args):
    from sense_nodes.errors import UserError
    from sense_nodes.core.bsense.training import TrainConfig, train
    from sense_nodes.data.paths import cache_dir
    from sense_nodes.core.bsense.trajformer import DEFAULT_CHECKPOINT

    if not 0 <= args.fold < args.k:
        raise UserError(f"--fold must be in 0..{args.k - 1}, got {args.fold}")
    if args.epochs < 1:
        raise UserError(f"--epochs must be >= 1, got {args.epochs}")
    boosted = args.verifier == "boosted"
    if boosted:
        from sense_nodes.core.bsense.boosted import BOOSTED_CHECKPOINT
    shipped = BOOSTED_CHECKPOINT if boosted else DEFAULT_CHECKPOINT
    out = Path(args.out) if args.out else (shipped if args.ship else
                                           cache_dir("bsense") / f"{args.verifier}_fold{args.fold}.pt")
    cfg = TrainConfig(fold=args.fold, k=args.k, epochs=args.epochs, max_frames=args.max_frames,
                      device=args.device, seed=args.seed)
    if boosted:
        from sense_nodes.core.bsense.training import train_boosted
        _, extra = train_boosted(cfg, out)
        print(f"checkpoint: {out}")
        return {"fold": args.fold, "verifier": "boosted", "train_windows": extra["n_samples"],
                "positive_share_pct": 100.0 * extra["positive_share"], "trees": extra["trees"],
                "train_s": extra["seconds"]}
    _, hist = train(cfg, out)
    from sense_nodes.core.bsense.trajformer import load_checkpoint
    extra = load_checkpoint(out).checkpoint_extra
    print(f"checkpoint: {out}")
    return {"fold": args.fold, "epochs": args.epochs, "train_windows": extra["n_samples"],
            "positive_share_pct": 100.0 * extra["positive_share"], "first_loss": hist["loss"][0],
            "final_loss": hist["loss"][-1], "train_s": extra["seconds"]}
