"""BSense nodes over real topics: the noise filter removes fingerprinted noise
and refits on request; the object filter gives a moving object a stable id."""
import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import PointCloud2

from conftest import spin_until
from sense_nodes.data import cloud_codec
from sense_nodes.core.bsense.noise_model import NoiseModel
from sense_nodes.data.bs_sim import library
from sense_nodes.msg import DetectionArray
from sense_nodes.nodes import convert
from sense_nodes.nodes.base import RESULT_QOS, SENSOR_QOS, ParameterError
from sense_nodes.nodes.noise_filter import NoiseFilter
from sense_nodes.nodes.object_filter import ObjectFilterNode
from sense_nodes.srv import RefitNoiseModel

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def calib_frames():
    sc = library.scenario("uav_free_calib")
    return [sc.frame(k).points for k in range(150)]


@pytest.fixture
def model_file(tmp_path, calib_frames):
    path = tmp_path / "model.npz"
    NoiseModel().fit(calib_frames).save(path)
    return path


def _run(ex, nodes):
    for n in nodes:
        ex.add_node(n)


def test_noise_filter_removes_noise_and_refits_on_request(ros_context, model_file, calib_frames):
    node = NoiseFilter(context=ros_context, namespace="/nf", parameter_overrides=[
        Parameter("model_file", value=str(model_file))])
    probe = Node("probe", context=ros_context)
    got = []
    probe.create_subscription(PointCloud2, "/nf/points_filtered", got.append, SENSOR_QOS)
    pub = probe.create_publisher(PointCloud2, "/nf/points", SENSOR_QOS)
    client = probe.create_client(RefitNoiseModel, "/nf/refit")
    ex = SingleThreadedExecutor(context=ros_context)
    _run(ex, [node, probe])
    try:
        assert spin_until(ex, lambda: node.count_publishers("/nf/points") > 0, 5)
        frames = calib_frames[:80]
        for k, pts in enumerate(frames):
            pub.publish(convert.pointcloud2(pts, convert.header(1_000_000_000 + k, "bs")))
            spin_until(ex, lambda: len(got) > k, 2)
        assert len(got) >= 60
        model = NoiseModel.load(model_file)
        expected = [int(model.filter(f).sum()) for f in frames[:len(got)]]
        published = [len(cloud_codec.decode(m)) for m in got]
        assert published == expected, "the node did not apply the fitted fingerprints"
        assert sum(published) < sum(len(f) for f in frames[:len(got)])
        assert spin_until(ex, client.service_is_ready, 5)
        future = client.call_async(RefitNoiseModel.Request(num_frames=1))
        assert spin_until(ex, future.done, 30)
        assert not future.result().success, "one frame cannot model a cube"
        assert NoiseModel.load(model_file).n_frames == 150, "a failed refit replaced the model"
        future = client.call_async(RefitNoiseModel.Request(num_frames=len(got)))
        assert spin_until(ex, future.done, 30)
        res = future.result()
        assert res.success and res.frames_used == len(got) and res.cubes_fitted > 0
        assert NoiseModel.load(model_file).n_frames == len(got)
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()


def test_unreadable_model_file_is_refused_naming_it(ros_context, tmp_path):
    bad = tmp_path / "corrupt.npz"
    bad.write_bytes(b"not a model")
    with pytest.raises(ParameterError, match="model_file.*corrupt.npz"):
        NoiseFilter(context=ros_context, parameter_overrides=[Parameter("model_file", value=str(bad))])


def _blob(centre, doppler, n=4, rng=None):
    rng = rng or np.random.default_rng(0)
    pts = np.zeros(n, cloud_codec.BS_POINT_DTYPE)
    for i, axis in enumerate("xyz"):
        pts[axis] = centre[i] + rng.normal(0, 0.5, n)
    pts["doppler"] = doppler
    pts["snr"] = 20.0
    return pts


def test_object_filter_keeps_a_consistent_mover_with_one_id(ros_context):
    node = ObjectFilterNode(context=ros_context, namespace="/of")
    probe = Node("probe", context=ros_context)
    got = []
    probe.create_subscription(DetectionArray, "/of/detections", got.append, RESULT_QOS)
    pub = probe.create_publisher(PointCloud2, "/of/points_filtered", SENSOR_QOS)
    ex = SingleThreadedExecutor(context=ros_context)
    _run(ex, [node, probe])
    rng = np.random.default_rng(3)
    try:
        assert spin_until(ex, lambda: node.count_publishers("/of/points_filtered") > 0, 5)
        # radial mover: 10 m/s away from the base station along x, Doppler consistent
        for k in range(12):
            pts = _blob((400.0 + 6.4 * k, 0.0, 100.0), 10.0, rng=rng)
            stamp = 2_000_000_000 + int(k * 0.64e9)
            pub.publish(convert.pointcloud2(pts, convert.header(stamp, "bs")))
            assert spin_until(ex, lambda: len(got) > k, 3)
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()
    late = [d for msg in got[6:] for d in msg.detections]
    assert late, "a spatially and Doppler-consistent object was filtered out"
    assert len({d.id for d in late}) == 1
    assert late[-1].spatial_confidence > 0.4 and late[-1].velocity_confidence > 0.4


def test_uav_tracker_keeps_one_track_through_a_turn(ros_context):
    from geometry_msgs.msg import Point
    from sense_nodes.msg import Detection, Track, TrackArray
    from sense_nodes.nodes.uav_tracker import UavTracker

    node = UavTracker(context=ros_context, namespace="/tr",
                      parameter_overrides=[Parameter("use_classifier", value=False)])
    probe = Node("probe", context=ros_context)
    got = []
    probe.create_subscription(TrackArray, "/tr/tracks", got.append, RESULT_QOS)
    pub = probe.create_publisher(DetectionArray, "/tr/detections", RESULT_QOS)
    ex = SingleThreadedExecutor(context=ros_context)
    _run(ex, [node, probe])
    origin = np.array([0.0, 0.0, 23.0])
    try:
        assert spin_until(ex, lambda: node.count_publishers("/tr/detections") > 0, 5)
        # a UAV at 10 m/s turning through 180 degrees on a 150 m circle
        for k in range(40):
            a = 0.066 * k
            p = np.array([500 + 150 * np.sin(a), 150 - 150 * np.cos(a), 80.0])
            v = 10.0 * np.array([np.cos(a), np.sin(a), 0.0])
            los = (p - origin) / np.linalg.norm(p - origin)
            det = Detection(id=1, centroid=Point(x=p[0], y=p[1], z=p[2]), doppler=float(v @ los), snr=15.0,
                            point_count=2, spatial_confidence=1.0, velocity_confidence=1.0)
            msg = DetectionArray(header=convert.header(3_000_000_000 + int(k * 0.64e9), "bs"), detections=[det])
            pub.publish(msg)
            assert spin_until(ex, lambda: len(got) > k, 3)
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()
    confirmed = [t for msg in got[5:] for t in msg.tracks if t.confirmed]
    assert confirmed and len({t.track_id for t in confirmed}) == 1, "the turn broke the track"
    last = confirmed[-1]
    assert last.classification == Track.UAV
    assert list(last.model_names) == ["cv", "ctrv"] and abs(sum(last.model_probabilities) - 1) < 1e-5
    cov = np.asarray(last.position_covariance).reshape(3, 3)
    assert cov[0, 0] > 0 and cov[1, 1] > 0 and np.allclose(cov, cov.T)
    assert got[-1].header.stamp.sec == 3 + int(39 * 0.64)
    assert len({tuple(t.uuid.uuid) for t in confirmed}) == 1
