"""One host of the suite's cross-host test, run inside a network namespace
(or, with host 'all', the whole suite in one process for reference):

    python suite_netns_side.py HOST OUT FRAMES

Every source publishes FRAMES frames. The centre (and 'all') writes, per
system, a summary of each result by stamp to OUT as JSON, then creates
OUT.done; a site keeps running until OUT.done exists, so that the FWA
centre's second round reaches its encoders. 'all' also writes the
serialized bytes per second of sim time of the topics a site would send.
"""
import json
import sys
import time
from pathlib import Path

from rclpy.node import Node

from sense_nodes.data.bags import stamp_ns_of
from sense_nodes.nodes.base import RESULT_QOS, SENSOR_QOS
from sense_nodes.runtime.compose import compose
from sense_nodes.runtime.deployment import load

DEADLINE_S = 150
RESULTS = {"/bs/tracks": lambda m: sorted([t.track_id, round(t.position.x, 4), round(t.position.y, 4),
                                           round(t.position.z, 4), t.classification] for t in m.tracks),
           "/isac/image": lambda m: [[round(p.x, 4), round(p.y, 4), round(p.z, 4)] for p in m.detections]
           + [[round(float(sum(m.values)), 3)]],
           "/diffloc/position": lambda m: [[round(m.position.x, 4), round(m.position.y, 4)]],
           "/fwa/detection": lambda m: [[round(m.presence_probability, 5), int(m.uav_present),
                                         round(m.position.x, 3), round(m.position.y, 3), round(m.position.z, 3)]]}
# what a site sends in the split, and what it would send shipping its raw input
SENT = ("/bs/detections", "/fwa/bs0/features", "/fwa/bs0/estimates", "/diffloc/csi", "/isac/csi")
RAW = ("/bs/points", "/fwa/csi")


def overrides(dep, frames):
    out = {"/diffloc/diffloc_server": {"max_batch": 1},  # the noise draws of a batch depend on its size
           "/fwa/fwa_fusion_center": {"timeout_s": 10.0}}
    for spec in dep.nodes:
        if spec.source:
            out.setdefault(spec.fqn, {}).update({"max_frames": frames, "start_delay_s": 2.0})
            if spec.executable == "csi_source":
                out[spec.fqn]["split"] = ""
    return out


def _wait_for_graph(comp, names, timeout_s=90.0):
    """Spin until every node in ``names`` (fully qualified) is in the graph."""
    probe = comp.nodes[0]
    comp.spin(timeout_s, until=lambda: names <= {(ns.rstrip("/") + "/" + n)
                                                 for n, ns in probe.get_node_names_and_namespaces()})


def main(host, out, frames):
    frames = int(frames)
    if host == "all":
        dep, extra, everyone = load("all"), {}, set()
    else:
        from sense_nodes.runtime.sites import host_deployment, hosts
        dep, extra = host_deployment("all", host)
        everyone = {n.spec.fqn for nodes in hosts("all").values() for n in nodes if not n.spec.source}
    params = {k: dict(v) for k, v in extra.items()}
    for k, v in overrides(dep, frames).items():
        params.setdefault(k, {}).update(v)
    # the processing nodes of every host first; the sources once all of them
    # are in the graph (the hosts start at different speeds)
    part = lambda src: type(dep)(dep.name, dep.description, dep.params_file, dep.rviz_file,  # noqa: E731
                                 tuple(s for s in dep.nodes if s.source == src))
    comp = compose(part(False), extra_params={k: v for k, v in params.items()
                                              if k in {s.fqn for s in part(False).nodes}})
    _wait_for_graph(comp, everyone)
    srcs = compose(part(True), context=comp.context,
                   extra_params={k: v for k, v in params.items() if k in {s.fqn for s in part(True).nodes}})
    for n in srcs.nodes:
        comp.executor.add_node(n)
        comp.nodes.append(n)
    probe = Node(f"probe_{host}", context=comp.context)
    comp.executor.add_node(probe)
    got = {t: {} for t in RESULTS}
    sizes = {t: [] for t in SENT + RAW}
    if host in ("centre", "all"):
        from sense_nodes.msg import PositionEstimate, TrackArray, UavDetection, VoxelImage
        types = {"/bs/tracks": TrackArray, "/isac/image": VoxelImage, "/diffloc/position": PositionEstimate,
                 "/fwa/detection": UavDetection}
        for topic, summary in RESULTS.items():
            probe.create_subscription(types[topic], topic, lambda m, t=topic, f=summary: got[t].__setitem__(
                str(stamp_ns_of(m)), f(m)), RESULT_QOS)
    if host == "all":
        from rclpy.serialization import deserialize_message  # noqa: F401 (raw bytes are counted, not decoded)
        types = {p.topic_name: (p.msg_type, p.qos_profile) for n in comp.nodes for p in n.publishers}
        for topic in sizes:
            msg_type, qos = types[topic]
            probe.create_subscription(msg_type, topic, lambda raw, t=topic: sizes[t].append(len(raw)),
                                      SENSOR_QOS if topic == "/bs/points" else RESULT_QOS, raw=True)
    done = Path(out + ".done")
    t0 = time.monotonic()
    if host in ("centre", "all"):
        comp.spin(DEADLINE_S, until=lambda: all(len(v) >= frames for v in got.values()))
        Path(out).write_text(json.dumps({"results": got, "sizes": sizes}))
        done.touch()
    else:
        comp.spin(DEADLINE_S, until=done.exists)
    print(f"{host}: ran {time.monotonic() - t0:.1f} s; results {[len(v) for v in got.values()]}", flush=True)
    from sense_nodes.cli.run import _summary
    _summary(comp)
    comp.close()
    return 0 if host not in ("centre", "all") or all(len(v) >= frames for v in got.values()) else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
