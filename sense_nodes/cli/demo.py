"""`sense demo` (what `make demo` runs): the richest deployment that exists on
its built-in scenario, through real ROS topics, recorded to a bag, then a
summary and a picture of what it published."""
from __future__ import annotations

from pathlib import Path

from sense_nodes.cli.main import UserError

DEPLOYMENT = "bsense"  # the richest deployment that exists today
TOPICS = ["/bs/points", "/bs/truth"]


def add_arguments(parser):
    parser.add_argument("--frames", type=int, default=120, help="frames to run (0.64 s each)")
    parser.add_argument("--rate", type=float, default=10.0, help="speed, x real time")
    parser.add_argument("--out", default="out/demo", help="folder for the bag and the picture")


def run(args):
    from sense_nodes.eval.bag_plots import topview
    from sense_nodes.nodes.recorder import Recorder
    from sense_nodes.runtime.compose import compose

    if args.frames < 1:
        raise UserError(f"--frames must be >= 1, got {args.frames}")
    if args.rate <= 0:
        raise UserError(f"--rate must be positive, got {args.rate}")
    out = Path(args.out)
    bag = out / "bag"
    comp = compose(DEPLOYMENT, rate=args.rate,
                   extra_params={"/bs/bs_radar_source": {"max_frames": args.frames}})
    try:
        print(f"deployment '{DEPLOYMENT}': {comp.deployment.description}")
        for node in comp.nodes:
            print(f"  {node.get_fully_qualified_name()}")
        rec = Recorder(comp.nodes[0], TOPICS, str(bag), overwrite=True)
        sources = [n for n in comp.nodes if hasattr(n, "finished")]
        print(f"running {args.frames} frames at {args.rate:g}x real time ...")
        comp.spin(until=lambda: all(s.finished for s in sources))
        comp.spin(1.0)
        rec.close()
        from sense_nodes.cli.run import _summary
        _summary(comp)
    finally:
        comp.close()
    print("recorded:")
    for topic, n in rec.counts.items():
        print(f"  {topic}: {n} messages")
    png = out / "demo.png"
    counts = topview(bag, png, title=f"sense demo: {DEPLOYMENT}, {args.frames} frames (raw points and truth)")
    print(f"{counts['points']} points in {counts['frames']} frames, {counts['objects']} true objects")
    print(f"bag: {bag}   (replay: sense run {DEPLOYMENT} --bag {bag})")
    print(f"picture: {png}")
    return 0
