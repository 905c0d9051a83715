"""One side of the cross-host FWA test, run inside a network namespace:

    python fwa_netns_side.py bs OUT SEEDS...      # 2 BS encoders + the CSI
    python fwa_netns_side.py centre OUT N         # the fusion centre

The centre side writes each detection as a JSON line to OUT and exits
after N of them (or 90 s); the BS side publishes one bundle per seed once
it has discovered the centre, and exits when the centre has answered all.
"""
import json
import sys
import time

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from fwa_synthetic import bundle
from sense_nodes.msg import CsiBundle, UavDetection
from sense_nodes.nodes.base import RESULT_QOS
from sense_nodes.nodes.fwa_bs_encoder import FwaBsEncoder
from sense_nodes.nodes.fwa_fusion_center import FwaFusionCenter

DEADLINE_S = 90


def detection_record(d) -> dict:
    return {"stamp": d.header.stamp.sec, "p": d.presence_probability, "present": d.uav_present,
            "attention": list(d.attention), "selected": list(d.selected_pairs),
            "valid": d.position_valid, "position": [d.position.x, d.position.y, d.position.z]}


def main(role, out, *rest):
    ctx = Context()
    rclpy.init(context=ctx)
    probe = Node("probe_" + role, context=ctx)
    got = []
    probe.create_subscription(UavDetection, "/t/detection", got.append, RESULT_QOS)
    if role == "bs":
        nodes = [FwaBsEncoder(context=ctx, namespace=f"/t/bs{b}", parameter_overrides=[
            Parameter("bs_index", value=b), Parameter("csi_topic", value="/t/csi"),
            Parameter("selection_topic", value="/t/selection")]) for b in (0, 1)]
        pub = probe.create_publisher(CsiBundle, "/t/csi", RESULT_QOS)
        seeds = [int(s) for s in rest]
        want = len(seeds)
    else:
        nodes = [FwaFusionCenter(context=ctx, namespace="/t", parameter_overrides=[
            Parameter("truth_topic", value=""), Parameter("threshold", value=0.0),
            Parameter("timeout_s", value=5.0)])]
        want = int(rest[0])
    ex = SingleThreadedExecutor(context=ctx)
    for n in [*nodes, probe]:
        ex.add_node(n)
    t0 = time.monotonic()

    def spin_until(pred):
        while not pred() and time.monotonic() - t0 < DEADLINE_S:
            ex.spin_once(timeout_sec=0.05)
        return pred()

    if role == "bs":
        # the centre (in the other namespace) is discovered: it subscribes our features
        assert spin_until(lambda: all(n.features.get_subscription_count() >= 1 for n in nodes)
                          and pub.get_subscription_count() >= 2), "centre not discovered"
        for i, s in enumerate(seeds):
            pub.publish(bundle(s, 100 + i))
            spin_until(lambda: len(got) > i)
    else:
        spin_until(lambda: len(got) >= want)
        with open(out, "w") as fh:
            for d in got:
                fh.write(json.dumps(detection_record(d)) + "\n")
    ok = len(got) >= want
    ex.shutdown()
    for n in [*nodes, probe]:
        n.destroy_node()
    rclpy.try_shutdown(context=ctx)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
