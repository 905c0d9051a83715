"""`sense data`: ray-traced CSI datasets (Sionna RT) for positioning
(``diffloc``), cooperative sensing (``fwa``) and imaging (``imaging``).

    sense data generate --kind {diffloc,fwa,imaging} [--tiny] [--seed N] [--out DIR]
    sense data stats    --kind {diffloc,fwa,imaging} [--tiny] [--seed N] [--dataset DIR] [--json PATH]
    sense data check    DIR

Datasets are cached under the sense_nodes cache (``$SENSE_CACHE/datasets``),
outside git; ``stats`` generates the dataset first when it is missing.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

KINDS = ("diffloc", "fwa", "imaging")


def _add_common(p, with_out=True):
    p.add_argument("--kind", required=True, choices=KINDS, help="which dataset")
    p.add_argument("--tiny", action="store_true", help="a seconds-scale dataset (tests, smoke runs)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--cuda", action="store_true", help="trace on CUDA (default: CPU, LLVM)")
    p.add_argument("--samples", type=int, default=None,
                   help="fwa / imaging: number of samples (fwa: even, half with a UAV)")
    p.add_argument("--users", type=int, default=None, help="diffloc: pedestrian users")
    p.add_argument("--vehicular-users", type=int, default=None, help="diffloc: vehicular users")
    p.add_argument("--snapshots", type=int, default=None, help="diffloc: snapshots per user (1 Hz)")
    p.add_argument("--residual-ratio", type=float, default=None,
                   help="imaging: residual background power ratio (default 0.001)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    g = sub.add_parser("generate", help="generate a dataset (overwrites)", description=(
        "Trace a CSI dataset with Sionna RT on this machine (CPU unless --cuda) and write it as a dataset "
        "folder (arrays.h5 and manifest.json), by default in the cache where training, evaluation and "
        "csi_source look for it. --tiny makes a seconds-scale one for smoke runs."))
    _add_common(g)
    g.add_argument("--out", metavar="DIR", help="dataset folder (default: in the cache)")
    s = sub.add_parser("stats", help="quality checks of a dataset (generated when missing)", description=(
        "Coverage, path counts, SNR and the kind's own checks of a dataset, as figures (--json)."))
    _add_common(s)
    s.add_argument("--dataset", metavar="DIR", help="dataset folder (default: the cached one)")
    s.add_argument("--json", metavar="PATH", help="write the figures to this JSON file")
    s.add_argument("--no-analytic", action="store_true", help="imaging: skip the analytic check")
    c = sub.add_parser("check", help="validate a dataset folder and print its manifest summary",
                       description="Validate a dataset folder (files, manifest, array shapes) and summarise it.")
    c.add_argument("dataset", metavar="DIR")


def _user_error(msg):
    from sense_nodes.errors import UserError
    return UserError(msg)


def _validate(args):
    if args.seed < 0:
        raise _user_error(f"--seed must be >= 0 (got {args.seed})")
    if args.samples is not None:
        if args.kind == "diffloc":
            raise _user_error("--samples applies to fwa and imaging; use --users/--vehicular-users/--snapshots")
        if args.samples < 1 or (args.kind == "fwa" and (args.samples < 2 or args.samples % 2)):
            raise _user_error(f"--samples must be {'an even number >= 2' if args.kind == 'fwa' else '>= 1'} "
                              f"(got {args.samples})")
    for name in ("users", "vehicular_users", "snapshots"):
        v = getattr(args, name)
        if v is not None:
            if args.kind != "diffloc":
                raise _user_error(f"--{name.replace('_', '-')} applies to --kind diffloc only")
            if v < 0 or (name == "snapshots" and v < 1):
                raise _user_error(f"--{name.replace('_', '-')} must be {'>= 1' if name == 'snapshots' else '>= 0'} (got {v})")
    if args.kind == "diffloc" and (args.users == 0 and args.vehicular_users == 0):
        raise _user_error("--users and --vehicular-users are both 0: no samples")
    if args.residual_ratio is not None:
        if args.kind != "imaging":
            raise _user_error("--residual-ratio applies to --kind imaging only")
        if not (args.residual_ratio >= 0 and math.isfinite(args.residual_ratio)):
            raise _user_error(f"--residual-ratio must be a finite number >= 0 (got {args.residual_ratio})")


def _default_dir(args) -> Path:
    """The cached dataset of these settings (sizes other than the default
    get their own folder, so `stats` never reads a dataset of another size)."""
    from sense_nodes.data.csi.dataset import default_dir
    path = default_dir(args.kind, args.tiny, args.seed)
    extra = [f"{k}{getattr(args, a)}" for a, k in (("samples", "n"), ("users", "ped"),
                                                   ("vehicular_users", "veh"), ("snapshots", "t"),
                                                   ("residual_ratio", "r"))
             if getattr(args, a, None) is not None]
    return path.with_name(path.name + "-" + "-".join(extra)) if extra else path


def generate(args, out: Path) -> Path:
    from sense_nodes.data.csi import rt
    progress = not getattr(args, "no_progress", False)
    kw = dict(seed=args.seed, tiny=args.tiny, cuda=args.cuda, progress=progress)
    try:
        if args.kind == "diffloc":
            from sense_nodes.data.csi import srs_positioning as mod
            users = None
            if args.users is not None or args.vehicular_users is not None:
                base = dict(mod.TINY_USERS if args.tiny else mod.DEFAULT_USERS)
                if args.users is not None:
                    base["pedestrian"] = args.users
                if args.vehicular_users is not None:
                    base["vehicular"] = args.vehicular_users
                users = base
            return mod.generate(out, users=users, snapshots=args.snapshots, **kw)
        if args.kind == "fwa":
            from sense_nodes.data.csi import fwa_pairs as mod
            return mod.generate(out, samples=args.samples, **kw)
        from sense_nodes.data.csi import imaging_channels as mod
        extra = {} if args.residual_ratio is None else {"residual_ratio": args.residual_ratio}
        return mod.generate(out, samples=args.samples, **extra, **kw)
    except rt.RTUnavailable as exc:
        raise _user_error(str(exc)) from exc


def run(args) -> int:
    from sense_nodes.data.csi.dataset import DatasetError, load_dataset, read_manifest
    from sense_nodes.eval.report import print_figures, write_json
    if args.action == "check":
        try:
            ds = load_dataset(args.dataset)
        except DatasetError as exc:
            raise _user_error(str(exc)) from exc
        m = ds.manifest
        print_figures({"kind": ds.kind, "samples": ds.num_samples, "links": len(ds.links),
                       "scene": m["scene"], "seed": m["seed"], "code_version": m["code_version"],
                       "dataset_mb": m["arrays_bytes"] / 1e6,
                       "generation_s": m["generation"]["seconds"]}, title=f"dataset {ds.path}")
        return 0
    _validate(args)
    if args.action == "generate":
        out = Path(args.out) if args.out else _default_dir(args)
        path = generate(args, out)
        ds = load_dataset(path)
        m = ds.manifest
        print(f"{ds.kind} dataset: {ds.num_samples} samples, {m['arrays_bytes'] / 1e6:.1f} MB, "
              f"{m['generation']['seconds']:.1f} s -> {path}")
        return 0
    # stats
    path = Path(args.dataset) if args.dataset else _default_dir(args)
    try:
        read_manifest(path)
    except DatasetError:
        if args.dataset:
            raise _user_error(f"{path}: no complete dataset there; run `sense data generate` first")
        print(f"no {args.kind} dataset at {path}: generating it")
        generate(args, path)
    try:
        ds = load_dataset(path)
    except DatasetError as exc:
        raise _user_error(str(exc)) from exc
    if ds.kind != args.kind:
        raise _user_error(f"{path} holds a {ds.kind} dataset, not {args.kind}")
    from sense_nodes.data.csi.stats import dataset_stats
    figures = dataset_stats(ds, analytic=not args.no_analytic)
    print_figures(figures, title=f"sense data stats --kind {args.kind}{' --tiny' if args.tiny else ''}")
    if args.json:
        write_json(args.json, figures)
        print(f"figures written to {args.json}")
    return 0
