"""A bag recorded from a live run, replayed through the deployment, gives the
very messages of the live run; replay honours rate and publishes /clock."""
import numpy as np
import pytest
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import PointCloud2

from conftest import spin_until
from sense_nodes.data import bags
from sense_nodes.msg import GroundTruthArray
from sense_nodes.nodes.base import RESULT_QOS, SENSOR_QOS, ParameterError
from sense_nodes.nodes.recorder import Recorder
from sense_nodes.runtime.compose import compose

pytestmark = pytest.mark.ros
FRAMES = 6
SOURCE = "/bs/bs_radar_source"


def _capture(comp):
    probe = Node("capture", context=comp.context)
    comp.executor.add_node(probe)
    got = {"/bs/points": [], "/bs/truth": [], "/clock": []}
    probe.create_subscription(PointCloud2, "/bs/points", got["/bs/points"].append, SENSOR_QOS, raw=True)
    probe.create_subscription(GroundTruthArray, "/bs/truth", got["/bs/truth"].append, RESULT_QOS, raw=True)
    probe.create_subscription(Clock, "/clock", got["/clock"].append, RESULT_QOS)
    return probe, got


def _matched(probe):
    """Whether the probe's frame subscriptions are matched to a publisher
    (a frame published before that is lost to discovery)."""
    return lambda: all(s.get_publisher_count() > 0 for s in probe.subscriptions if s.topic_name in ("/bs/points", "/bs/truth"))


def test_replayed_bag_gives_the_live_messages(tmp_path):
    bag = tmp_path / "live"
    live = compose("bsense", rate=8.0, extra_params={SOURCE: {"max_frames": FRAMES}})
    try:
        probe, got_live = _capture(live)
        rec = Recorder(probe, ["/bs/points", "/bs/truth"], str(bag))
        source = live.nodes[0]
        source.hold_until(rec.ready, 15.0, "the recorder matched")
        assert spin_until(live.executor, lambda: source.finished and len(got_live["/bs/truth"]) >= FRAMES, 30)
        spin_until(live.executor, lambda: False, 0.5)
        rec.close()
    finally:
        live.close()
    assert len(got_live["/bs/points"]) == FRAMES, "live frames were lost before recording"
    assert sorted(t.name for t in bags.topics(bag)) == ["/bs/points", "/bs/truth"]

    replay = compose("bsense", bag=str(bag), rate=8.0)
    try:
        probe, got_replay = _capture(replay)
        source = replay.nodes[0]
        source.hold_until(_matched(probe), 15.0, "the probe matched")
        assert spin_until(replay.executor, lambda: source.finished and len(got_replay["/bs/truth"]) >= FRAMES, 30)
        spin_until(replay.executor, lambda: False, 0.5)
    finally:
        replay.close()
    assert got_replay["/bs/points"] == got_live["/bs/points"]
    assert got_replay["/bs/truth"] == got_live["/bs/truth"]
    assert got_replay["/clock"], "replay published no /clock"


def test_replay_of_a_bag_without_the_source_topics_is_refused(tmp_path):
    with bags.BagWriter(tmp_path / "other") as w:
        w.write("/clock", "rosgraph_msgs/msg/Clock", 1, bags.clock(1))
    with pytest.raises(ParameterError, match="bag"):
        compose("bsense", bag=str(tmp_path / "other"))


def test_unknown_scenario_is_refused_naming_the_parameter():
    with pytest.raises(ParameterError, match="scenario"):
        compose("bsense", extra_params={SOURCE: {"scenario": "no_such_case"}})


def _small_bag(path, frames=4, period_ns=640_000_000):
    from sense_nodes.data.bs_sim import library
    sc = library.scenario("uav_free_calib")
    with bags.BagWriter(path, overwrite=True) as w:
        for k in range(frames):
            t = 1_000_000_000 + k * period_ns
            w.write("/bs/points", "sensor_msgs/msg/PointCloud2", t, bags.pointcloud2(sc.frame(k).points, t, "bs"))
    return path


def test_looped_replay_paces_every_pass(ros_context, tmp_path):
    """Four frames 0.64 s apart at 4x: one pass a 0.64 s of wall time, every
    pass, with /clock rising across passes."""
    import time

    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from sense_nodes.nodes.bs_radar_source import BsRadarSource
    bag = _small_bag(tmp_path / "b")
    src = BsRadarSource(context=ros_context, namespace="/lp", parameter_overrides=[
        Parameter("bag", value=str(bag)), Parameter("loop", value=True), Parameter("rate", value=4.0),
        Parameter("start_delay_s", value=0.0)])
    probe = Node("probe", context=ros_context)
    clock = []
    probe.create_subscription(Clock, "/clock", lambda m: clock.append(m.clock.sec * 10**9 + m.clock.nanosec),
                              RESULT_QOS)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(src)
    ex.add_node(probe)
    try:
        t0 = time.monotonic()
        spin_until(ex, lambda: time.monotonic() - t0 > 3.0, 4.0)
    finally:
        ex.shutdown()
        src.destroy_node()
        probe.destroy_node()
    # 3 s of wall time at 4 frames per 0.64 s: about 19 frames, not thousands
    assert 12 <= src.frames_published <= 24, src.frames_published
    assert all(b > a for a, b in zip(clock, clock[1:])), "/clock went backwards on a loop"


def test_a_held_source_publishes_nothing_until_released(ros_context):
    """A recorded run holds its sources until the recorder is matched; a
    source held past its timeout starts anyway and says so."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from sense_nodes.nodes.bs_radar_source import BsRadarSource
    src = BsRadarSource(context=ros_context, namespace="/hold", parameter_overrides=[
        Parameter("rate", value=8.0), Parameter("start_delay_s", value=0.0)])
    released = {"now": False}
    src.hold_until(lambda: released["now"], 2.0, "the test released it")
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(src)
    try:
        spin_until(ex, lambda: False, 0.8)
        assert src.frames_published == 0, "a held source published"
        released["now"] = True
        assert spin_until(ex, lambda: src.frames_published > 0, 5.0)
    finally:
        ex.shutdown()
        src.destroy_node()
    never = BsRadarSource(context=ros_context, namespace="/never", parameter_overrides=[
        Parameter("rate", value=8.0), Parameter("start_delay_s", value=0.0)])
    never.hold_until(lambda: False, 1.0, "a recorder that never matched")
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(never)
    try:
        assert spin_until(ex, lambda: never.frames_published > 0, 6.0), "a timed-out hold never started"
    finally:
        ex.shutdown()
        never.destroy_node()


def test_damaged_bag_is_refused_naming_it(tmp_path):
    """Damage anywhere in the file: either a clean read or one BagError that
    names the bag, never another exception."""
    bag = _small_bag(tmp_path / "d", frames=60)
    mcap = next(bag.glob("*.mcap"))
    pristine = mcap.read_bytes()
    refused = 0
    for frac in np.linspace(0.1, 0.9, 12):
        data = bytearray(pristine)
        at = int(frac * len(data))
        data[at:at + 65536] = bytes(len(data[at:at + 65536]))
        mcap.write_bytes(bytes(data))
        try:
            for _ in bags.read_raw(bag):
                pass
        except bags.BagError as exc:
            assert str(bag) in str(exc)
            refused += 1
    assert refused > 0
