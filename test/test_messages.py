"""Every sense_nodes message crosses the real middleware intact: in one
process between two nodes, and between two processes."""
import importlib
import os
import subprocess
import sys
import textwrap

import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from conftest import spin_until
from sense_nodes.nodes.base import RESULT_QOS

pytestmark = pytest.mark.ros

MESSAGES = ["Detection", "DetectionArray", "Track", "TrackArray", "GroundTruth", "GroundTruthArray",
            "CsiFrame", "CsiBundle", "PositionEstimate", "PairFeature", "PairFeatureArray",
            "UavDetection", "VoxelImage"]


def _cls(type_name):
    pkg, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def filled(msg_cls, seed=1):
    """An instance with every field set to a non-default value."""
    msg = msg_cls()
    for i, (field, ftype) in enumerate(msg_cls.get_fields_and_field_types().items()):
        k = seed + i
        base = ftype.split("[")[0].replace("sequence<", "").rstrip(">").split(",")[0]
        is_seq = ftype.startswith("sequence<") or "[" in ftype
        if "/" in base:
            value = filled(_cls(base.replace("/", "/msg/", 1)), seed=k)
            value = [value, filled(_cls(base.replace("/", "/msg/", 1)), seed=k + 7)] if ftype.startswith("sequence<") else value
        elif base in ("float", "double"):
            value = float(k) + 0.5
        elif base == "boolean":
            value = True
        elif base == "string":
            value = f"s{k}"
        elif base == "octet":
            value = k % 256
        else:
            value = k % 100 + 1
        if is_seq and "/" not in base:
            n = int(ftype.split("[")[1].rstrip("]")) if "[" in ftype and not ftype.startswith("sequence") else 3
            value = [value] * n if base != "float" and base != "double" else [value + j for j in range(n)]
            if base == "octet":
                value = bytes([k % 256] * n)
        setattr(msg, field, value)
    return msg


@pytest.mark.parametrize("name", MESSAGES)
def test_message_round_trip_between_two_nodes(ros_context, name):
    cls = _cls(f"sense_nodes/msg/{name}")
    sent = filled(cls)
    pub_node = Node("pub", context=ros_context)
    sub_node = Node("sub", context=ros_context)
    got = []
    sub_node.create_subscription(cls, f"/rt_{name.lower()}", got.append, RESULT_QOS)
    pub = pub_node.create_publisher(cls, f"/rt_{name.lower()}", RESULT_QOS)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(pub_node)
    ex.add_node(sub_node)

    def published_and_received():
        pub.publish(sent)
        return bool(got)

    try:
        assert spin_until(ex, published_and_received, 10.0), f"{name} never arrived"
        assert got[0] == sent
    finally:
        ex.shutdown()
        pub_node.destroy_node()
        sub_node.destroy_node()


def test_message_crosses_processes(ros_context):
    """A TrackArray published by another process arrives here."""
    from sense_nodes.msg import TrackArray

    child = textwrap.dedent("""
        import sys, time, rclpy
        from rclpy.node import Node
        from sense_nodes.msg import TrackArray, Track
        from sense_nodes.nodes.base import RESULT_QOS
        rclpy.init()
        node = Node("other_process")
        pub = node.create_publisher(TrackArray, "/xproc_tracks", RESULT_QOS)
        msg = TrackArray(tracks=[Track(track_id=42, model_names=["cv", "ctrv"], model_probabilities=[0.25, 0.75])])
        t0 = time.time()
        while time.time() - t0 < 15:
            pub.publish(msg)
            rclpy.spin_once(node, timeout_sec=0.1)
        """)
    proc = subprocess.Popen([sys.executable, "-c", child], env=dict(os.environ))
    node = Node("this_process", context=ros_context)
    got = []
    node.create_subscription(TrackArray, "/xproc_tracks", got.append, RESULT_QOS)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    try:
        assert spin_until(ex, lambda: bool(got), 15.0), "nothing arrived from the other process"
        track = got[0].tracks[0]
        assert track.track_id == 42 and list(track.model_names) == ["cv", "ctrv"]
        assert list(track.model_probabilities) == [0.25, 0.75]
    finally:
        proc.kill()
        proc.wait()
        ex.shutdown()
        node.destroy_node()


@pytest.mark.parametrize("srv_name", ["Localize", "RefitNoiseModel"])
def test_service_round_trip(ros_context, srv_name):
    """Our services answer over the middleware with the response intact."""
    srv_cls = getattr(importlib.import_module("sense_nodes.srv"), srv_name)
    response = filled(srv_cls.Response)
    server = Node("server", context=ros_context)
    client_node = Node("client", context=ros_context)
    seen = []

    def handle(request, reply):
        seen.append(request)
        for field in srv_cls.Response.get_fields_and_field_types():
            setattr(reply, field, getattr(response, field))
        return reply

    server.create_service(srv_cls, f"/svc_{srv_name.lower()}", handle)
    client = client_node.create_client(srv_cls, f"/svc_{srv_name.lower()}")
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(server)
    ex.add_node(client_node)
    try:
        assert spin_until(ex, client.service_is_ready, 10)
        request = filled(srv_cls.Request)
        future = client.call_async(request)
        assert spin_until(ex, future.done, 10)
        assert future.result() == response and seen[0] == request
    finally:
        ex.shutdown()
        server.destroy_node()
        client_node.destroy_node()
