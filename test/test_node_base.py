"""The shared node pattern: ranged parameters refused at start, malformed
messages dropped and counted without stopping the node, /diagnostics, and
output stamps copied from the input."""
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header, UInt32

from conftest import spin_until
from sense_nodes.data import cloud_codec
from sense_nodes.nodes.base import RESULT_QOS, SENSOR_QOS, Param, ParameterError, SenseNode, stamped_like

pytestmark = pytest.mark.ros


class CountingNode(SenseNode):
    """Decodes base-station clouds and publishes how many points had SNR >= threshold."""

    DEFAULT_NAME = "counting_node"
    PARAMS = (Param("snr_threshold_db", 0.0, "minimum SNR", range=(-50.0, 80.0), runtime=True),
              Param("mode", "count", "what to publish", choices=("count", "none")),
              Param("window", 5, "frames", range=(1, 100)))

    def __init__(self, **kw):
        super().__init__(**kw)
        self.out = self.create_publisher(Header, "counted_header", RESULT_QOS)
        self.count = self.create_publisher(UInt32, "counted", RESULT_QOS)
        self.subscribe(PointCloud2, "points", self.on_points, SENSOR_QOS, kind="points")

    def on_points(self, msg):
        pts = cloud_codec.decode(msg)
        self.count.publish(UInt32(data=int(np.count_nonzero(pts["snr"] >= self.p.snr_threshold_db))))
        self.out.publish(stamped_like(msg.header))


def _cloud(n, stamp_sec=7, fields=cloud_codec.BS_POINT_DTYPE):
    pts = np.zeros(n, fields)
    if "snr" in pts.dtype.names:
        pts["snr"] = np.arange(n)
    h = Header(frame_id="bs")
    h.stamp.sec = stamp_sec
    return cloud_codec.encode(pts, PointCloud2, PointField, h)


@pytest.mark.parametrize("override, match", [
    (Parameter("snr_threshold_db", value=120.0), "snr_threshold_db"),
    (Parameter("window", value=0), "window"),
    (Parameter("mode", value="everything"), "mode"),
    (Parameter("window", value="five"), "window"),
])
def test_bad_parameter_is_refused_at_start_naming_it(ros_context, override, match):
    with pytest.raises(ParameterError, match=match):
        CountingNode(context=ros_context, parameter_overrides=[override])


def test_out_of_range_update_is_refused_at_run_time(ros_context):
    node = CountingNode(context=ros_context)
    try:
        result = node.set_parameters([Parameter("snr_threshold_db", value=-99.0)])[0]
        assert not result.successful and "snr_threshold_db" in result.reason
        assert node.p.snr_threshold_db == 0.0
        assert node.set_parameters([Parameter("snr_threshold_db", value=3.0)])[0].successful
        assert node.p.snr_threshold_db == 3.0
        result = node.set_parameters([Parameter("window", value=7)])[0]
        assert not result.successful and "window" in result.reason and node.p.window == 5
    finally:
        node.destroy_node()


def test_malformed_cloud_is_dropped_counted_and_node_keeps_working(ros_context):
    node = CountingNode(context=ros_context, namespace="/t1")
    probe = Node("probe", context=ros_context)
    counts, headers, diags = [], [], []
    probe.create_subscription(UInt32, "/t1/counted", lambda m: counts.append(m.data), RESULT_QOS)
    probe.create_subscription(Header, "/t1/counted_header", headers.append, RESULT_QOS)
    probe.create_subscription(DiagnosticArray, "/diagnostics", diags.append, RESULT_QOS)
    pub = probe.create_publisher(PointCloud2, "/t1/points", SENSOR_QOS)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(probe)
    bad_fields = np.dtype([("x", "<f4"), ("y", "<f4")])
    truncated = _cloud(10)
    truncated.data = truncated.data[:-3]
    try:
        assert spin_until(ex, lambda: probe.count_subscribers("/t1/points") > 0, 5)
        assert spin_until(ex, lambda: node.count_publishers("/t1/points") > 0, 5)
        for bad in (_cloud(4, fields=bad_fields), truncated, _cloud(4, fields=bad_fields)):
            pub.publish(bad)
        pub.publish(_cloud(10, stamp_sec=42))
        assert spin_until(ex, lambda: counts and headers, 10), "the node stopped answering after bad input"
        assert counts[0] == 10
        assert headers[0].stamp.sec == 42 and headers[0].frame_id == "bs"
        assert node.diagnostics.dropped["points"] == 3

        def reported():
            for d in diags:
                for s in d.status:
                    vals = {kv.key: kv.value for kv in s.values}
                    if s.name == "/t1/counting_node" and vals.get("dropped") == "3":
                        return vals
            return None
        assert spin_until(ex, reported, 5), "/diagnostics never reported the drops"
        vals = reported()
        assert float(vals["latency_ms"]) >= 0 and int(vals["processed"]) == 1
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()


def test_messages_a_busy_node_never_took_are_counted_as_lost(ros_context):
    import time
    node = CountingNode(context=ros_context, namespace="/t9")
    probe = Node("probe", context=ros_context)
    pub = probe.create_publisher(PointCloud2, "/t9/points", SENSOR_QOS)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(probe)
    try:
        assert spin_until(ex, lambda: node.count_publishers("/t9/points") > 0, 5)
        pub.publish(_cloud(3))
        assert spin_until(ex, lambda: node.diagnostics.processed == 1, 5)
        for _ in range(40):  # faster than the node spins: its queue (depth 10) overflows
            pub.publish(_cloud(3))
        time.sleep(0.3)
        spin_until(ex, lambda: False, 1.0)
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()
    d = node.diagnostics
    assert d.processed < 41
    assert d.processed - 1 + d.lost["points"] == 40
    assert "lost" in d.status("x").message


def test_an_integer_is_taken_for_a_float_parameter(ros_context):
    node = CountingNode(context=ros_context, parameter_overrides=[Parameter("snr_threshold_db", value=3)])
    try:
        assert node.p.snr_threshold_db == 3.0 and isinstance(node.p.snr_threshold_db, float)
        [r] = node.set_parameters([Parameter("snr_threshold_db", value=7)])
        assert r.successful and node.p.snr_threshold_db == 7.0
    finally:
        node.destroy_node()


class BuggyNode(CountingNode):
    """A node whose processing has a bug on some frames: a numpy shape error
    (a ValueError, like much bad input) on clouds stamped 13."""

    DEFAULT_NAME = "buggy_node"

    def on_points(self, msg):
        if msg.header.stamp.sec == 13:
            np.zeros(3) + np.zeros(4)
        super().on_points(msg)


def test_a_bug_is_logged_as_an_error_not_dropped_as_malformed(ros_context):
    """A ValueError from the node's own computation is not malformed input:
    it is counted under ``errors`` (its own key in /diagnostics), never as a
    dropped message, and the node keeps processing."""
    node = BuggyNode(context=ros_context, namespace="/t10")
    probe = Node("probe", context=ros_context)
    counts = []
    probe.create_subscription(UInt32, "/t10/counted", lambda m: counts.append(m.data), RESULT_QOS)
    pub = probe.create_publisher(PointCloud2, "/t10/points", SENSOR_QOS)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(probe)
    try:
        assert spin_until(ex, lambda: node.count_publishers("/t10/points") > 0, 5)
        pub.publish(_cloud(4, stamp_sec=13))
        assert spin_until(ex, lambda: sum(node.diagnostics.errors.values()) == 1, 5)
        pub.publish(_cloud(6, stamp_sec=14))
        assert spin_until(ex, lambda: counts == [6], 5), "the node stopped after the bug"
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()
    d = node.diagnostics
    assert dict(d.errors) == {"points:ValueError": 1} and sum(d.dropped.values()) == 0
    status = d.status("/t10/buggy_node")
    vals = {kv.key: kv.value for kv in status.values}
    assert vals["errors"] == "1" and vals["errors[points:ValueError]"] == "1" and vals["dropped"] == "0"
    assert "callback errors" in status.message
