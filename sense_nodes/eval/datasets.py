"""Opening the CSI datasets the DiffLoc and FWA commands train and evaluate
on: the dataset options, the folder (the cached default unless named), a
one-line refusal naming the folder and how to make it, and torch's threads.
Shared by `sense train` and `sense eval`, so it sits in the evaluation layer,
below the command line."""
from __future__ import annotations

from sense_nodes.errors import UserError


def add_dataset_arguments(p) -> None:
    p.add_argument("--dataset", metavar="DIR", help="diffloc dataset folder (default: the cached default, "
                   "see `sense data generate --kind diffloc`)")
    p.add_argument("--tiny", action="store_true", help="the cached tiny dataset (smoke runs)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")


def open_dataset(args):
    from sense_nodes.data.csi.dataset import DatasetError, default_dir, load_dataset
    path = args.dataset or str(default_dir("diffloc", args.tiny, 0))
    try:
        ds = load_dataset(path)
    except DatasetError as exc:
        hint = "" if args.dataset else f" (make it with: sense data generate --kind diffloc{' --tiny' if args.tiny else ''})"
        raise UserError(f"{exc}{hint}") from None
    if ds.kind != "diffloc":
        raise UserError(f"{path}: a {ds.kind} dataset; DiffLoc needs a diffloc dataset")
    return ds


def set_threads(args) -> None:
    import torch
    if args.threads < 1:
        raise UserError(f"--threads must be >= 1 (got {args.threads})")
    torch.set_num_threads(args.threads)


def open_features(dataset: str | None, noise: bool, snr_offset_db: float):
    from sense_nodes.core.fwa.features import load_features
    from sense_nodes.data.csi.dataset import DatasetError, default_dir, load_dataset
    path = dataset or str(default_dir("fwa", False, 0))
    try:
        ds = load_dataset(path)
    except DatasetError as exc:
        hint = "" if dataset else " (make it with: sense data generate --kind fwa)"
        raise UserError(f"{exc}{hint}") from None
    if ds.kind != "fwa":
        raise UserError(f"{path} holds a {ds.kind} dataset, not fwa")
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1):  # one BLAS thread, like torch: two fight on two cores
        return ds, load_features(ds, noise=noise, snr_offset_db=snr_offset_db)
