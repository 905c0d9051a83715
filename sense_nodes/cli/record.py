"""`sense record`: write any set of topics (custom messages included) to a
rosbag2 file (MCAP by default) while something else publishes them."""
from __future__ import annotations

import time

from sense_nodes.cli.main import UserError
from sense_nodes.cli.validate import check_output_path, check_positive


def add_arguments(parser):
    parser.add_argument("topics", nargs="+", help="topics to record")
    parser.add_argument("-o", "--out", required=True, help="output bag directory")
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

    check_positive(args.duration, "--duration")
    check_output_path(args.out, "--out", directory=True)
    ctx = Context()
    rclpy.init(context=ctx)
    node = Node("sense_record", context=ctx, parameter_overrides=[
        Parameter("use_sim_time", value=bool(args.use_sim_time))])
    try:
        try:
            rec = Recorder(node, args.topics, args.out, storage=args.storage, overwrite=args.overwrite)
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
        if rec.missing():
            print(f"never seen: {', '.join(rec.missing())}")
        print(f"bag written to {args.out}")
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    return 0
