"""Run a deployment for a number of frames and collect its results by
stamp: how the demo judges a system through its nodes and topics, the way
a user would see it."""
from __future__ import annotations

import time

from sense_nodes.runtime.compose import compose
from sense_nodes.runtime.deployment import load


def run_and_collect(deployment: str, topics: dict, convert: dict, frames: int, rate: float,
            extra_params: dict | None = None, timeout_s: float = 240.0) -> dict:
    """Run ``deployment`` at ``rate`` until its source has published
    ``frames`` frames and the results of the last one came back; returns
    {name: {stamp_ns: convert[name](msg)}} for ``topics`` = {name: topic}."""
    from rclpy.node import Node

    from sense_nodes.data.bags import stamp_ns_of
    from sense_nodes.nodes.base import RESULT_QOS

    params = {k: dict(v) for k, v in (extra_params or {}).items()}
    for spec in load(deployment).nodes:
        if spec.source:
            params.setdefault(spec.fqn, {})["max_frames"] = frames
    comp = compose(deployment, rate=rate, extra_params=params)
    try:
        probe = Node(f"demo_probe_{deployment}", context=comp.context)
        comp.executor.add_node(probe)
        got = {name: {} for name in topics}
        types = {p.topic_name: p.msg_type for n in comp.nodes for p in n.publishers}
        last = [time.monotonic()]

        def keep(name, msg):
            got[name][stamp_ns_of(msg)] = convert[name](msg)
            last[0] = time.monotonic()

        for name, topic in topics.items():
            probe.create_subscription(types[topic], topic, lambda m, k=name: keep(k, m), RESULT_QOS)
        sources = [n for n in comp.nodes if hasattr(n, "finished")]
        result = next(iter(topics))
        # done: every frame answered, or the sources ended and nothing came for
        # a while (a node may leave a frame unanswered: not localised)
        comp.spin(timeout_s, until=lambda: all(s.finished for s in sources) and (
            len(got[result]) >= sum(s.frames_published for s in sources) or time.monotonic() - last[0] > 5.0))
        comp.spin(1.0)  # the last truth and markers
        print_nodes(comp)
        return got
    finally:
        comp.close()


def print_nodes(comp) -> None:
    """What each node did: frames processed, median latency, inputs dropped
    (malformed, non-finite) or lost (its queue overflowed)."""
    print(f"{'node':<40} {'processed':>9} {'latency_ms':>10} {'dropped':>7} {'lost':>6}")
    for node in comp.nodes:
        d = node.diagnostics
        print(f"{node.get_fully_qualified_name():<40} {getattr(node, 'frames_published', d.processed):>9} "
              f"{d.latency_ms():>10.2f} {sum(d.dropped.values()) + sum(d.nonfinite.values()):>7} "
              f"{sum(d.lost.values()):>6}")
