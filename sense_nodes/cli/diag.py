"""`sense diag`: a table of /diagnostics, one row per node (rate, latency,
processed, dropped, lost and what each node adds), refreshed as reports
arrive; for installs without the ros2 command line."""
from __future__ import annotations

import time

from sense_nodes.cli.validate import check_positive


def add_arguments(parser):
    parser.add_argument("--duration", type=float, default=3.0,
                        help="listen this long, then print the table (default 3 s)")
    parser.add_argument("--watch", action="store_true", help="print the table again every --duration seconds")


LEVELS = {0: "OK", 1: "WARN", 2: "ERROR", 3: "STALE"}


def table(statuses: dict) -> str:
    rows = [f"{'node':<36} {'level':<5} {'rate_hz':>8} {'latency_ms':>10} {'processed':>9} {'dropped':>7} "
            f"{'lost':>5}  message / details"]
    for name in sorted(statuses):
        st = statuses[name]
        v = {kv.key: kv.value for kv in st.values}
        level = LEVELS.get(int.from_bytes(st.level, "little") if isinstance(st.level, bytes) else int(st.level), "?")
        extra = ", ".join(f"{k}={val}" for k, val in v.items() if k not in (
            "rate_hz", "latency_ms", "processed", "dropped", "lost", "errors", "nonfinite_dropped",
            "outputs_suppressed") and "[" not in k)
        rows.append(f"{name:<36} {level:<5} {v.get('rate_hz', '-'):>8} {v.get('latency_ms', '-'):>10} "
                    f"{v.get('processed', '-'):>9} {v.get('dropped', '-'):>7} {v.get('lost', '-'):>5}  "
                    f"{st.message}" + (f"; {extra}" if extra else ""))
    return "\n".join(rows)


def run(args):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    from sense_nodes.nodes.base import RESULT_QOS

    check_positive(args.duration, "--duration")
    ctx = Context()
    rclpy.init(context=ctx)
    node = Node("sense_diag", context=ctx)
    statuses: dict = {}
    node.create_subscription(DiagnosticArray, "/diagnostics",
                             lambda m: statuses.update({s.name: s for s in m.status}), RESULT_QOS)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    try:
        while True:
            end = time.monotonic() + args.duration
            while time.monotonic() < end:
                ex.spin_once(timeout_sec=0.1)
            print(table(statuses) if statuses else "no /diagnostics received (is a deployment running?)",
                  flush=True)
            if not args.watch:
                break
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    return 0 if statuses else 1
