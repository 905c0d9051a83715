"""The noise filter's refits cannot be hijacked by input: a stamp that jumps
decides nothing, junk frames never replace a good model, the refit buffer
is bounded in bytes, and a damaged model file is refused."""
import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import PointCloud2

from conftest import spin_until
from sense_nodes.core.bsense.noise_model import NoiseModel, NoiseModelConfig, NoiseModelFileError
from sense_nodes.core.bsense.refit import RefitBuffer, StampGuard
from sense_nodes.data.bs_sim import library
from sense_nodes.nodes import convert
from sense_nodes.nodes.base import SENSOR_QOS
from sense_nodes.srv import RefitNoiseModel

S = 1_000_000_000


@pytest.fixture(scope="module")
def calib_frames():
    sc = library.scenario("uav_free_calib")
    return [sc.frame(k).points for k in range(100)]


def _junk(n, rng, like):
    pts = np.zeros(n, like.dtype)
    for name in like.dtype.names:
        pts[name] = rng.uniform(-500, 500, n)
    pts["z"] = rng.uniform(0, 300, n)
    return pts


def test_stamp_guard_refuses_jumps_and_follows_a_real_restart():
    g = StampGuard(max_jump_s=10.0, resync_frames=3)
    assert g.accept(100 * S) and g.accept(101 * S)
    assert not g.accept((2**31 - 1) * S) and g.jumps == 1
    assert g.accept(102 * S), "one far-future frame must not move the timeline"
    assert not g.accept(50 * S) and g.backwards == 1
    # a stream that really restarted is followed after three agreeing frames
    assert not g.accept(5 * S) and not g.accept(6 * S) and g.accept(7 * S)
    assert g.accept(8 * S)


def test_refit_buffer_is_bounded_in_bytes(calib_frames):
    buf = RefitBuffer(n_frames=20, max_points=500)
    big = np.concatenate([calib_frames[0]] * 700)  # ~100k points
    for k in range(50):
        buf.add(k, big)
    assert len(buf) == 20 and buf.thinned == 50
    assert buf.nbytes() <= 20 * 500 * big.dtype.itemsize


def test_damaged_model_files_are_refused(tmp_path, calib_frames):
    m = NoiseModel().fit(calib_frames)
    m.mu[0, 0] = np.nan
    m.save(tmp_path / "nan.npz")
    with pytest.raises(NoiseModelFileError, match="non-finite"):
        NoiseModel.load(tmp_path / "nan.npz")
    huge = NoiseModel(NoiseModelConfig(cube_m=1e30))
    huge.save(tmp_path / "huge.npz")
    with pytest.raises(NoiseModelFileError, match="implausible config"):
        NoiseModel.load(tmp_path / "huge.npz")


@pytest.mark.ros
def test_far_future_stamp_and_junk_never_replace_the_model(ros_context, tmp_path, calib_frames):
    from sense_nodes.nodes.noise_filter import NoiseFilter
    path = tmp_path / "model.npz"
    NoiseModel().fit(calib_frames).save(path)
    good = path.read_bytes()
    node = NoiseFilter(context=ros_context, namespace="/rf", parameter_overrides=[
        Parameter("model_file", value=str(path)), Parameter("update_interval_s", value=3600.0),
        Parameter("refit_frames", value=10)])
    probe = Node("probe", context=ros_context)
    got = []
    probe.create_subscription(PointCloud2, "/rf/points_filtered", got.append, SENSOR_QOS)
    pub = probe.create_publisher(PointCloud2, "/rf/points", SENSOR_QOS)
    client = probe.create_client(RefitNoiseModel, "/rf/refit")
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(probe)
    rng = np.random.default_rng(0)
    try:
        assert spin_until(ex, lambda: node.count_publishers("/rf/points") > 0, 5)
        stamps = [S + k * 640_000_000 for k in range(12)]
        frames = [_junk(400, rng, calib_frames[0]) for _ in range(12)]
        stamps.insert(6, (2**31 - 1) * S)
        frames.insert(6, _junk(400, rng, calib_frames[0]))
        for k, (t, pts) in enumerate(zip(stamps, frames)):
            pub.publish(convert.pointcloud2(pts, convert.header(t, "bs")))
            assert spin_until(ex, lambda: len(got) > k, 3)
        assert path.read_bytes() == good, "a stamp far ahead triggered a refit"
        assert node.stamps.jumps == 1 and len(node.history) == 12
        assert spin_until(ex, client.service_is_ready, 5)
        future = client.call_async(RefitNoiseModel.Request(num_frames=12))
        assert spin_until(ex, future.done, 30)
        res = future.result()
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()
    assert not res.success and "keeping the current model" in res.message
    assert path.read_bytes() == good, "a refit on junk frames replaced the model"
    assert node.refits_refused == 1


def test_refit_schedule_needs_time_and_new_frames_and_truth_keeps_uav_frames_out():
    from sense_nodes.core.bsense.refit import BufferedFrame, RefitSchedule, UavTruth
    sched = RefitSchedule()
    assert not sched.due(0, 10.0, 3)            # the clock starts at the first look
    for _ in range(3):
        sched.frame_added()
    assert not sched.due(5 * S, 10.0, 3) and sched.due(10 * S, 10.0, 3)
    sched.done(10 * S)
    assert not sched.due(30 * S, 10.0, 3), "no new frames since the refit"
    frames = [BufferedFrame(k, None) for k in range(4)]
    truth = UavTruth(max_frames=10)
    assert truth.free(frames) == frames and not truth.known   # no truth: every frame counts
    truth.record(0, False)
    truth.record(1, True)
    truth.record(2, False)
    assert [f.stamp_ns for f in truth.free(frames)] == [0, 2] and truth.excluded == 2
    assert truth.count_free(frames) == 2
