"""Frames through the BSense deployment over real topics: its nodes (all but
the live source) composed in this process on the real middleware, a probe
node publishing each frame on ``/bs/points`` and collecting the TrackArray
the deployment answers it with (matched by stamp). `sense bench bsense`
times the answers (:func:`ros_latency`); the test suite compares them with
the core pipeline on the same frames (:func:`replay_in_step`). It composes
the deployment's nodes, so it belongs to the runtime."""
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


class DeploymentProbe:
    """``with DeploymentProbe(model) as probe:`` the bsense deployment with
    ``model`` as its noise model (written to a temporary file);
    ``probe.send(frame)`` publishes one frame (``stamp_ns``, ``points``) and
    returns its key; ``probe.answers`` maps keys to (TrackArray, seconds
    from publishing to receiving)."""

    def __init__(self, model, extra_params: dict | None = None):
        self.model, self.extra_params = model, dict(extra_params or {})
        self.answers: dict = {}
        self._sent: dict = {}

    def __enter__(self) -> "DeploymentProbe":
        dep = deployment.load("bsense")
        dep = type(dep)(dep.name, dep.description, dep.params_file, dep.rviz_file,
                        tuple(n for n in dep.nodes if not n.source))
        self._model_file = tempfile.NamedTemporaryFile(suffix=".npz", delete=False).name
        self.model.save(self._model_file)
        params = {"/bs/noise_filter": {"model_file": self._model_file}, **self.extra_params}
        self.comp = compose(dep, extra_params=params)
        self.node = Node("deployment_probe", context=self.comp.context)
        self.comp.executor.add_node(self.node)
        self.node.create_subscription(TrackArray, "/bs/tracks", self._on_tracks, RESULT_QOS)
        self.pub = self.node.create_publisher(PointCloud2, "/bs/points", SENSOR_QOS)
        deadline = time.monotonic() + 10
        while self.node.count_subscribers("/bs/points") == 0 and time.monotonic() < deadline:
            self.spin(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.comp.close()
        os.unlink(self._model_file)

    def _on_tracks(self, msg: TrackArray) -> None:
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        if key in self._sent:
            self.answers[key] = (msg, time.perf_counter() - self._sent.pop(key))

    def send(self, frame) -> tuple[int, int]:
        hdr = convert.header(frame.stamp_ns, "bs")
        msg = convert.pointcloud2(frame.points, hdr)
        key = (hdr.stamp.sec, hdr.stamp.nanosec)
        self._sent[key] = time.perf_counter()
        self.pub.publish(msg)
        return key

    def spin(self, seconds: float, until=None) -> bool:
        """Spin up to ``seconds`` or until ``until()``; whether it came true."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if until is not None and until():
                return True
            self.comp.executor.spin_once(timeout_sec=0.01)
        return until is not None and until()


def ros_latency(frames, model, rate_hz: float = 5.0) -> dict:
    """Median milliseconds from publishing each of ``frames`` (objects with
    ``stamp_ns`` and ``points``) at ``rate_hz`` to receiving its TrackArray,
    and the share of frames answered, with ``model`` as the noise model."""
    with DeploymentProbe(model) as probe:
        for frame in frames:
            probe.send(frame)
            probe.spin(1.0 / rate_hz)
        probe.spin(2.0)
    latency = [dt * 1e3 for _, dt in probe.answers.values()]
    return {"ros_end_to_end_median_ms": float(np.median(latency)) if latency else float("nan"),
            "ros_frames_received_pct": 100.0 * len(latency) / max(len(frames), 1)}


def replay_in_step(frames, model, timeout_s: float = 30.0) -> list:
    """Each frame published once the deployment answered the one before (no
    frame lost to a queue); the TrackArray of each frame, None where none
    came within ``timeout_s``."""
    out = []
    with DeploymentProbe(model) as probe:
        for frame in frames:
            key = probe.send(frame)
            probe.spin(timeout_s, until=lambda: key in probe.answers)
            out.append(probe.answers[key][0] if key in probe.answers else None)
    return out
