"""End-to-end latency of the BSense deployment through real topics: the
frames published on ``/bs/points`` into its nodes (one process, the real
middleware), timed until each frame's TrackArray comes back (matched by
stamp). It composes the deployment's nodes, so it belongs to the runtime;
`sense bench bsense` calls it."""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import PointCloud2

from sense_nodes.msg import TrackArray
from sense_nodes.nodes import convert
from sense_nodes.nodes.base import RESULT_QOS, SENSOR_QOS
from sense_nodes.runtime import deployment
from sense_nodes.runtime.compose import compose


def ros_latency(frames, model, rate_hz: float = 5.0) -> dict:
    """Median milliseconds from publishing each of ``frames`` (objects with
    ``stamp_ns`` and ``points``) at ``rate_hz`` to receiving its TrackArray,
    and the share of frames answered, with ``model`` as the noise model."""
    dep = deployment.load("bsense")
    # every node but the live source: the probe below is the source
    dep = type(dep)(dep.name, dep.description, dep.params_file, dep.rviz_file,
                    tuple(n for n in dep.nodes if not n.source))
    model_file = tempfile.NamedTemporaryFile(suffix=".npz", delete=False).name
    model.save(model_file)
    comp = compose(dep, extra_params={"/bs/noise_filter": {"model_file": model_file}})
    probe = Node("bench_probe", context=comp.context)
    comp.executor.add_node(probe)
    sent, latency = {}, []

    def on_tracks(msg):
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        if key in sent:
            latency.append((time.perf_counter() - sent.pop(key)) * 1e3)

    probe.create_subscription(TrackArray, "/bs/tracks", on_tracks, RESULT_QOS)
    pub = probe.create_publisher(PointCloud2, "/bs/points", SENSOR_QOS)
    try:
        deadline = time.monotonic() + 10
        while probe.count_subscribers("/bs/points") == 0 and time.monotonic() < deadline:
            comp.executor.spin_once(timeout_sec=0.05)
        for frame in frames:
            hdr = convert.header(frame.stamp_ns, "bs")
            msg = convert.pointcloud2(frame.points, hdr)
            sent[(hdr.stamp.sec, hdr.stamp.nanosec)] = time.perf_counter()
            pub.publish(msg)
            t_next = time.monotonic() + 1.0 / rate_hz
            while time.monotonic() < t_next:
                comp.executor.spin_once(timeout_sec=0.01)
        comp.spin(2.0)
    finally:
        comp.close()
    os.unlink(model_file)
    return {"ros_end_to_end_median_ms": float(np.median(latency)) if latency else float("nan"),
            "ros_frames_received_pct": 100.0 * len(latency) / max(len(frames), 1)}
