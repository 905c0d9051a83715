"""`sense record`: write any set of topics (custom messages included) to a
rosbag2 file (MCAP by default) while something else publishes them."""
from __future__ import annotations

import sys
import time

from sense_nodes.errors import UserError
from sense_nodes.cli.validate import check_output_path, check_positive


def add_arguments(parser):
    parser.add_argument("topics", nargs="*", help="topics to record (/clock is added when it is published)")
    parser.add_argument("-o", "--out", help="output bag directory")
    parser.add_argument("--repair", metavar="BAG", help="make a bag readable whose recorder was killed "
                        "(keeps every message flushed, i.e. all but the last second) and exit")
    parser.add_argument("--duration", type=float, default=None, help="stop after S seconds (default: Ctrl-C)")
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bag")
    parser.add_argument("--use-sim-time", action="store_true", help="stamp with /clock time")


def run(args):
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from sense_nodes.data.bags import BagError
    from sense_nodes.nodes.recorder import Recorder

    if args.repair:
        from sense_nodes.data.bags import BagError, repair
        try:
            n = repair(args.repair)
        except (BagError, OSError) as exc:
            raise UserError(f"--repair: {exc}") from None
        print(f"repaired {args.repair}: {n} messages kept")
        return 0
    if not args.topics or not args.out:
        raise UserError("give the topics to record and -o/--out (or --repair BAG)")
    check_positive(args.duration, "--duration")
    check_output_path(args.out, "--out", directory=True)
    ctx = Context()
    rclpy.init(context=ctx)
    node = Node("sense_record", context=ctx, parameter_overrides=[
        Parameter("use_sim_time", value=bool(args.use_sim_time))])
    try:
        topics = list(args.topics) + ([] if "/clock" in args.topics else ["/clock"])
        try:
            rec = Recorder(node, topics, args.out, storage=args.storage, overwrite=args.overwrite)
        except BagError as exc:
            raise UserError(str(exc)) from None
        from rclpy.executors import SingleThreadedExecutor
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        t_end = None if args.duration is None else time.monotonic() + args.duration
        try:
            while ctx.ok() and (t_end is None or time.monotonic() < t_end):
                ex.spin_once(timeout_sec=0.1)
        except KeyboardInterrupt:
            pass
        rec.close()
        for topic, n in rec.counts.items():
            print(f"{topic}: {n} messages")
        missing = [t for t in rec.missing() if t in args.topics]  # /clock was only added in case
        if missing:
            print(f"warning: never seen: {', '.join(missing)} (nothing published them; record "
                  f"alongside a running deployment, e.g. `sense run bsense --record BAG`)", file=sys.stderr)
        total = sum(rec.counts.values())
        if total == 0:
            print(f"sense record: error: nothing was recorded to {args.out}", file=sys.stderr)
            return 1
        print(f"bag written to {args.out}")
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    return 0
