"""`sense sim`: base-station point-cloud scenarios (BSense).

  sense sim list [--family F]                     the scenario library
  sense sim stats [NAME ...] [--family F] [--json PATH]
                                                  difficulty figures, measured
  sense sim plot NAME --out PNG                   raw points and the UAV path over the site (Figure 3)
  sense sim write [NAME ...] [--family F] --out DIR
                                                  rosbag2 (MCAP): /bs/points, /bs/truth, /clock
  sense sim folds [--k 5] [--json PATH]           case-level cross-validation split

Every command takes --seed N (draw targets, ghosts and birds afresh) and
--site-seed N (draw a new site clutter map).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from sense_nodes.errors import UserError
from sense_nodes.eval.report import print_figures, write_json

# stats by default: one case of every trajectory type, multi-UAV, cross-site,
# and the UAV-free evaluation recording
DEFAULT_STATS = ("straight_45_r1", "circle_1_r1", "square_1_r1", "triangle_1_r1", "S_1_r1", "M_1_r1",
                 "star_1_r1", "zigzag_1_r1", "multi_uav", "cross_site", "uav_free_eval")


def _seeds(p):
    p.add_argument("--seed", type=int, default=None, help="draw targets, ghosts and birds afresh with this seed")
    p.add_argument("--site-seed", type=int, default=None, help="draw a new site clutter map with this seed")


def add_arguments(parser):
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__
    sub = parser.add_subparsers(dest="sim_command", metavar="COMMAND", required=True)
    p = sub.add_parser("list", help="the scenario library")
    p.add_argument("--family", default=None, help="only this family")
    p = sub.add_parser("stats", help="difficulty figures of scenarios, measured")
    p.add_argument("names", nargs="*", metavar="NAME", help=f"scenarios (default: {', '.join(DEFAULT_STATS)})")
    p.add_argument("--family", default=None, help="every case of this family instead")
    p.add_argument("--max-frames", type=int, default=400, help="frames per scenario (default 400; 0 = all)")
    p.add_argument("--no-cubes", action="store_true", help="skip the Henze-Zirkler test of the UAV-free recording")
    p.add_argument("--json", metavar="PATH", help="write the figures to this JSON file")
    _seeds(p)
    p = sub.add_parser("plot", help="raw points and the true UAV path over the site map (Figure 3)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--out", required=True, help="PNG file")
    p.add_argument("--frames", default=None, metavar="A:B", help="frame range (default: the first 200 frames)")
    p.add_argument("--color", choices=("source", "snr"), default="source", help="colour points by truth source or SNR")
    _seeds(p)
    p = sub.add_parser("write", help="write scenarios as rosbag2 (MCAP) files")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--family", default=None, help="every case of this family")
    p.add_argument("--all", action="store_true", help="every case of the library")
    p.add_argument("--out", required=True, help="directory; each scenario becomes the bag OUT/NAME")
    p.add_argument("--max-frames", type=int, default=0, help="stop each bag after this many frames (0 = all)")
    p.add_argument("--overwrite", action="store_true", help="replace existing bags")
    _seeds(p)
    p = sub.add_parser("folds", help="case-level k-fold split (no trajectory type in train and test)")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--json", metavar="PATH", help="write the folds to this JSON file")


def _check(args):
    for key in ("seed", "site_seed"):
        v = getattr(args, key, None)
        if v is not None and not 0 <= v < 2**31:
            raise UserError(f"--{key.replace('_', '-')} must be in 0..2^31-1, got {v}")
    mf = getattr(args, "max_frames", None)
    if mf is not None and mf < 0:
        raise UserError(f"--max-frames must be >= 0, got {mf}")


def _names(args, default=()):
    from sense_nodes.data.bs_sim import library
    names = list(getattr(args, "names", []) or [])
    if getattr(args, "all", False):
        names += [c.name for c in library.cases()]
    if getattr(args, "family", None):
        try:
            names += [c.name for c in library.cases(args.family)]
        except KeyError as exc:
            raise UserError(f"--family: {exc.args[0]}") from None
    if not names:
        names = list(default)
    if not names:
        raise UserError("name at least one scenario (or --family F / --all); see `sense sim list`")
    for n in names:
        try:
            library.spec(n)
        except KeyError as exc:
            raise UserError(exc.args[0]) from None
    return names


def _progress(total, desc):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="frame", leave=False)


def run(args):
    _check(args)
    return {"list": _list, "stats": _stats, "plot": _plot, "write": _write, "folds": _folds}[args.sim_command](args)


def _list(args):
    from sense_nodes.data.bs_sim import library
    try:
        cases = library.cases(args.family)
    except KeyError as exc:
        raise UserError(f"--family: {exc.args[0]}") from None
    print(f"{'name':<18} {'family':<11} {'type':<9} {'frames':>6}  {'UAVs':>4}")
    for c in cases:
        sp = library.spec(c.name)
        from sense_nodes.data.bs_sim.scenario import Scenario
        n = sp.n_frames if sp.n_frames is not None else len(Scenario(sp))
        print(f"{c.name:<18} {c.family:<11} {c.traj_type:<9} {n:>6}  {len(sp.uavs):>4}")
    return 0


def _stats(args):
    from sense_nodes.data.bs_sim import library, stats
    names = _names(args, DEFAULT_STATS)
    mf = None if args.max_frames == 0 else args.max_frames
    scenarios = [library.scenario(n, args.seed, args.site_seed) for n in names]
    total = sum(len(s) if mf is None else min(len(s), mf) for s in scenarios)
    counts = []
    with _progress(total, "simulating") as bar:
        for s in scenarios:
            counts.append(stats.count(s, mf, progress=bar))
    figs = stats.measure(counts)
    if not args.no_cubes:
        calib = library.scenario("uav_free_calib", args.seed, args.site_seed)
        with _progress(len(calib), "Henze-Zirkler cubes") as bar:
            cubes = stats.gaussian_cubes(calib, progress=bar)
        figs["clutter_cubes_gaussian_pct"] = cubes["gaussian_pct"]
        figs["clutter_cubes_tested"] = cubes["cubes_tested"]
        figs["paper_clutter_cubes_gaussian_pct"] = stats.PAPER["clutter_cubes_gaussian_pct"]
    figs["scenarios"] = len(names)
    print_figures(figs, title="sense sim stats (" + ", ".join(names if len(names) <= 4 else names[:4] + ["..."]) + ")")
    if args.json:
        write_json(args.json, figs)
        print(f"figures written to {args.json}")
    return 0


def _plot(args):
    from sense_nodes.data.bs_sim import library, plot
    name = args.name
    try:
        sc = library.scenario(name, args.seed, args.site_seed)
    except KeyError as exc:
        raise UserError(exc.args[0]) from None
    frames = None
    if args.frames:
        try:
            a, b = (int(x) for x in args.frames.split(":"))
        except ValueError:
            raise UserError(f"--frames must be A:B (two integers), got '{args.frames}'") from None
        if not 0 <= a < b:
            raise UserError(f"--frames A:B needs 0 <= A < B, got '{args.frames}'")
        frames = (a, b)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    info = plot.plot_scenario(sc, out, frames, color=args.color)
    print(f"{name}: {info['frames']} frames, {info['points']} points drawn to {out}")
    return 0


def _write(args):
    from sense_nodes.data import bags
    from sense_nodes.data.bs_sim import bag_io, library
    names = _names(args)
    mf = None if args.max_frames == 0 else args.max_frames
    out = Path(args.out)
    scenarios = [library.scenario(n, args.seed, args.site_seed) for n in names]
    if not args.overwrite:
        exist = [str(out / s.name) for s in scenarios if (out / s.name).exists()]
        if exist:
            raise UserError(f"bags already exist (use --overwrite): {', '.join(exist)}")
    total = sum(len(s) if mf is None else min(len(s), mf) for s in scenarios)
    with _progress(total, "writing bags") as bar:
        for s in scenarios:
            try:
                n = bag_io.write_bag(s, out / s.name, mf, overwrite=args.overwrite, progress=bar)
            except bags.BagError as exc:
                raise UserError(str(exc)) from None
            bar.write(f"{out / s.name}: {n} frames (seed {s.spec.seed}, site seed {s.spec.site_seed})")
    return 0


def _folds(args):
    from sense_nodes.data.bs_sim import library
    try:
        folds = library.folds(args.k)
    except ValueError as exc:
        raise UserError(f"--k: {exc}") from None
    for i, f in enumerate(folds):
        print(f"fold {i}: test {len(f.test):>2} cases ({', '.join(f.test_types)}), train {len(f.train)}")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([{"train": list(f.train), "test": list(f.test), "test_types": list(f.test_types)}
                                    for f in folds], indent=2) + "\n")
        print(f"folds written to {path}")
    return 0
