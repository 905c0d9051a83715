"""rosbag2 files: custom messages written and read back, recorded from live
topics, and a bad bag named in the error."""
import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.serialization import deserialize_message, serialize_message

from conftest import spin_until
from sense_nodes.data.cloud_codec import BS_POINT_DTYPE, decode
from sense_nodes.data import bags
from sense_nodes.nodes.base import RESULT_QOS
from test_messages import MESSAGES, _cls, filled


def test_bag_is_mcap_with_embedded_definitions(tmp_path):
    path = tmp_path / "b"
    with bags.BagWriter(path) as w:
        w.write("/clock", "rosgraph_msgs/msg/Clock", 5, bags.clock(5))
    assert (path / "metadata.yaml").is_file() and list(path.glob("*.mcap"))
    with pytest.raises(bags.BagError, match="already exists"):
        bags.BagWriter(path)


@pytest.mark.parametrize("name", MESSAGES)
def test_custom_message_written_by_rclpy_reads_back_equal(tmp_path, name):
    cls = _cls(f"sense_nodes/msg/{name}")
    sent = filled(cls)
    with bags.BagWriter(tmp_path / "b") as w:
        w.write(f"/{name.lower()}", f"sense_nodes/msg/{name}", 1000, serialize_message(sent))
    (topic, msgtype, stamp, raw), = list(bags.read_raw(tmp_path / "b"))
    assert (topic, msgtype, stamp) == (f"/{name.lower()}", f"sense_nodes/msg/{name}", 1000)
    assert deserialize_message(raw, cls) == sent
    # and rosbags can decode it from the definitions embedded in the bag
    (_, _, _, obj), = list(bags.read(tmp_path / "b"))
    assert obj.__msgtype__ == f"sense_nodes/msg/{name}"


def test_pointcloud_written_with_rosbags_decodes_in_rclpy(tmp_path):
    from sensor_msgs.msg import PointCloud2
    pts = np.zeros(7, BS_POINT_DTYPE)
    pts["doppler"] = np.linspace(-3, 3, 7)
    with bags.BagWriter(tmp_path / "b") as w:
        w.write("/bs/points", "sensor_msgs/msg/PointCloud2", 640, bags.pointcloud2(pts, 640, "bs"))
    (_, _, _, raw), = list(bags.read_raw(tmp_path / "b"))
    msg = deserialize_message(raw, PointCloud2)
    assert msg.header.frame_id == "bs" and msg.header.stamp.nanosec == 640
    assert np.array_equal(decode(msg), pts)


def test_reading_a_missing_or_broken_bag_names_it(tmp_path):
    with pytest.raises(bags.BagError, match="nope"):
        list(bags.read_raw(tmp_path / "nope"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metadata.yaml").write_text("not: a bag\n")
    with pytest.raises(bags.BagError, match="broken"):
        bags.topics(broken)


def test_asking_for_a_topic_the_bag_lacks_lists_what_it_has(tmp_path):
    with bags.BagWriter(tmp_path / "b") as w:
        w.write("/clock", "rosgraph_msgs/msg/Clock", 5, bags.clock(5))
    with pytest.raises(bags.BagError, match=r"/clock"):
        list(bags.read_raw(tmp_path / "b", ["/tracks"]))


@pytest.mark.ros
def test_recorder_writes_live_topics(ros_context, tmp_path):
    """A topic is recorded once a publisher offers it (a subscriber alone
    says nothing of its type or QoS), with the publisher's reliability."""
    from sense_nodes.msg import TrackArray, Track
    from sense_nodes.nodes.recorder import Recorder

    node = Node("talker", context=ros_context)
    rec_node = Node("recorder", context=ros_context)
    node.create_subscription(TrackArray, "/rec_tracks", lambda m: None, RESULT_QOS)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(rec_node)
    rec = Recorder(rec_node, ["/rec_tracks"], str(tmp_path / "rec"))
    spin_until(ex, lambda: False, 0.5)
    assert rec.missing() == ["/rec_tracks"]
    pub = node.create_publisher(TrackArray, "/rec_tracks", RESULT_QOS)
    sent = 0

    def five_recorded():
        nonlocal sent
        if rec.subs and sent < 50:
            pub.publish(TrackArray(tracks=[Track(track_id=sent)]))
            sent += 1
        return rec.counts.get("/rec_tracks", 0) >= 5

    try:
        assert spin_until(ex, five_recorded, 10.0)
    finally:
        rec.close()
        ex.shutdown()
        node.destroy_node()
        rec_node.destroy_node()
    got = [deserialize_message(raw, TrackArray).tracks[0].track_id
           for _, _, _, raw in bags.read_raw(tmp_path / "rec")]
    assert len(got) >= 5 and got == sorted(got)
    assert bags.topics(tmp_path / "rec")[0].msgtype == "sense_nodes/msg/TrackArray"
    from rosbags.interfaces import QosReliability
    from rosbags.rosbag2 import Reader
    with Reader(tmp_path / "rec") as r:
        assert r.connections[0].ext.offered_qos_profiles[0].reliability == QosReliability.RELIABLE


def test_a_killed_recorder_loses_at_most_what_it_had_not_flushed(tmp_path):
    """A writer killed with SIGKILL after flushing: the bag is refused with
    what to do, and `sense record --repair` gives back every flushed message."""
    import signal
    import subprocess
    import sys

    from sense_nodes.cli.main import main as sense
    bag = tmp_path / "killed"
    script = f"""
import time
from sense_nodes.data import bags
w = bags.BagWriter({str(bag)!r}).__enter__()
for k in range(50):
    t = 10**9 + k * 10**8
    w.write("/clock", "rosgraph_msgs/msg/Clock", t, bags.clock(t))
    if k % 10 == 9:
        w.flush()
print("flushed", flush=True)
time.sleep(60)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "flushed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
    with pytest.raises(bags.BagError, match="record --repair"):
        bags.topics(bag)
    assert sense(["record", "--repair", str(bag)]) == 0
    got = [t for _, _, t, _ in bags.read_raw(bag)]
    assert got == [10**9 + k * 10**8 for k in range(50)]


def test_bags_record_the_qos_their_publishers_offer(tmp_path):
    from rosbags.interfaces import QosReliability
    from rosbags.rosbag2 import Reader

    from sense_nodes.data.bs_sim import bag_io, library
    bag_io.write_bag(library.scenario("uav_free_calib"), tmp_path / "b", max_frames=2, overwrite=True)
    with Reader(tmp_path / "b") as r:
        qos = {c.topic: c.ext.offered_qos_profiles for c in r.connections}
    assert qos["/bs/points"][0].reliability == QosReliability.BEST_EFFORT
    assert qos["/bs/truth"][0].reliability == QosReliability.RELIABLE
