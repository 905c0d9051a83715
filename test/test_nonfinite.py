"""Non-finite input never becomes a published output: each node drops the
spoiled item at its converter (a point, a detection, a CSI frame), counts it
in /diagnostics, keeps the rest, and refuses to publish a NaN it made itself."""
import numpy as np
import pytest
from geometry_msgs.msg import Point
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import PointCloud2
from visualization_msgs.msg import Marker, MarkerArray

from conftest import spin_until
from sense_nodes.data import cloud_codec
from sense_nodes.data.bs_sim import library
from sense_nodes.msg import CsiBundle, Detection, DetectionArray, TrackArray, VoxelImage
from sense_nodes.nodes import convert
from sense_nodes.nodes.base import RESULT_QOS, SENSOR_QOS
from sense_nodes.nodes.finite import first_nonfinite

pytestmark = pytest.mark.ros


def test_first_nonfinite_finds_nan_anywhere_in_a_message():
    ok = MarkerArray(markers=[Marker(points=[Point(x=1.0)])])
    assert first_nonfinite(ok) is None
    bad = MarkerArray(markers=[Marker(points=[Point(x=1.0), Point(y=float("inf"))])])
    assert first_nonfinite(bad) == "markers[0].points[1].y"
    img = VoxelImage(values=[0.0, float("nan")])
    assert first_nonfinite(img) == "values[1]"
    pts = library.scenario("uav_free_calib").frame(0).points.copy()
    assert first_nonfinite(convert.pointcloud2(pts, convert.header(1, "bs"))) is None
    pts["snr"][3] = np.nan
    assert first_nonfinite(convert.pointcloud2(pts, convert.header(1, "bs"))) == "data[point 3]"


def _spin(ctx, nodes):
    ex = SingleThreadedExecutor(context=ctx)
    for n in nodes:
        ex.add_node(n)
    return ex


def _detection(i, x, y=100.0, z=100.0):
    return Detection(id=i, centroid=Point(x=x, y=y, z=z), doppler=3.0, snr=20.0, scr=10.0, noise=-90.0,
                     signal_power=-60.0, rx_power=-70.0, point_count=5, spatial_confidence=0.9,
                     velocity_confidence=0.9)


def test_tracker_drops_a_nan_detection_and_tracks_the_rest(ros_context):
    from sense_nodes.nodes.uav_tracker import UavTracker
    node = UavTracker(context=ros_context, namespace="/nf1",
                      parameter_overrides=[Parameter("use_classifier", value=False)])
    probe = Node("probe", context=ros_context)
    got = []
    probe.create_subscription(TrackArray, "/nf1/tracks", got.append, RESULT_QOS)
    pub = probe.create_publisher(DetectionArray, "/nf1/detections", RESULT_QOS)
    ex = _spin(ros_context, [node, probe])
    try:
        assert spin_until(ex, lambda: node.count_publishers("/nf1/detections") > 0, 5)
        for k in range(6):
            msg = DetectionArray(header=convert.header(1_000_000_000 + k * 640_000_000, "bs"),
                                 detections=[_detection(1, 50.0 + 3 * k), _detection(2, float("nan"))])
            pub.publish(msg)
            assert spin_until(ex, lambda: len(got) > k, 5)
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()
    assert all(first_nonfinite(m) is None for m in got)
    assert all(len(m.tracks) == 1 for m in got), "the finite detection must still be tracked"
    assert node.diagnostics.nonfinite["detections"] == 6
    assert got[-1].tracks[0].position.x == pytest.approx(65.0, abs=3.0)


def test_noise_filter_drops_nan_points_alone(ros_context, tmp_path):
    from sense_nodes.core.bsense.noise_model import NoiseModel
    from sense_nodes.nodes.noise_filter import NoiseFilter
    frames = [library.scenario("uav_free_calib").frame(k).points for k in range(60)]
    NoiseModel().fit(frames).save(tmp_path / "m.npz")
    node = NoiseFilter(context=ros_context, namespace="/nf2",
                       parameter_overrides=[Parameter("model_file", value=str(tmp_path / "m.npz"))])
    probe = Node("probe", context=ros_context)
    got = []
    probe.create_subscription(PointCloud2, "/nf2/points_filtered", got.append, SENSOR_QOS)
    pub = probe.create_publisher(PointCloud2, "/nf2/points", SENSOR_QOS)
    ex = _spin(ros_context, [node, probe])
    pts = frames[0].copy()
    clean = pts.copy()
    pts["x"][:5] = np.nan
    pts["rx_power"][5] = np.inf
    try:
        assert spin_until(ex, lambda: node.count_publishers("/nf2/points") > 0, 5)
        pub.publish(convert.pointcloud2(pts, convert.header(1_000_000_000, "bs")))
        assert spin_until(ex, lambda: len(got) == 1, 5)
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()
    out = cloud_codec.decode(got[0])
    assert cloud_codec.finite_mask(out).all()
    expected = int(NoiseModel.load(tmp_path / "m.npz").filter(clean[6:]).sum())
    assert len(out) == expected, "the finite points of the frame must be filtered as usual"
    assert node.diagnostics.nonfinite["points"] == 6


@pytest.mark.parametrize("value", [float("nan"), 3e38])
def test_imager_drops_a_spoiled_csi_frame_and_images_the_next(ros_context, value):
    from sense_nodes.nodes.isac_imager import IsacImager
    from sense_nodes.nodes.isac_scene_source import IsacSceneSource
    source = IsacSceneSource(context=ros_context, namespace="/nf3", parameter_overrides=[
        Parameter("scenes", value=1), Parameter("period_s", value=0.2), Parameter("start_delay_s", value=0.3)])
    imager = IsacImager(context=ros_context, namespace="/nf3")
    probe = Node("probe", context=ros_context)
    bundles, images = [], []
    probe.create_subscription(CsiBundle, "/nf3/csi", bundles.append, RESULT_QOS)
    probe.create_subscription(VoxelImage, "/nf3/image", images.append, RESULT_QOS)
    pub = probe.create_publisher(CsiBundle, "/nf3/csi", RESULT_QOS)
    ex = _spin(ros_context, [source, imager, probe])
    try:
        assert spin_until(ex, lambda: len(images) == 1 and len(bundles) == 1, 30)
        spoiled = bundles[0]
        real = list(spoiled.frames[0].real)
        real[7] = value
        spoiled.frames[0].real = real
        pub.publish(spoiled)
        assert spin_until(ex, lambda: imager.diagnostics.nonfinite["csi frames"] == 1, 10)
    finally:
        ex.shutdown()
        for n in (source, imager, probe):
            n.destroy_node()
    assert len(images) == 1, "a spoiled frame must not become an image"
    assert all(first_nonfinite(m) is None for m in images)


def test_a_node_never_publishes_a_nan_it_made(ros_context):
    from sense_nodes.nodes.object_filter import ObjectFilterNode
    node = ObjectFilterNode(context=ros_context, namespace="/nf4")
    probe = Node("probe", context=ros_context)
    got = []
    probe.create_subscription(DetectionArray, "/nf4/detections", got.append, RESULT_QOS)
    ex = _spin(ros_context, [node, probe])
    try:
        assert spin_until(ex, lambda: node.count_subscribers("/nf4/detections") > 0, 5)
        assert node.publish(node.pub, DetectionArray(detections=[_detection(1, float("nan"))])) is False
        assert node.publish(node.pub, DetectionArray(detections=[_detection(1, 1.0)])) is True
        assert spin_until(ex, lambda: len(got) == 1, 5)
        spin_until(ex, lambda: False, 0.3)
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()
    assert len(got) == 1 and got[0].detections[0].centroid.x == 1.0
    assert node.diagnostics.suppressed["/nf4/detections"] == 1
    status = node.diagnostics.status("x")
    assert "non-finite" in status.message


def test_an_overloaded_frame_is_thinned_not_slowed(ros_context):
    """4,000 detections a frame: the tracker keeps the most confident
    max_detections and says so, instead of slowing quadratically."""
    from sense_nodes.nodes.uav_tracker import UavTracker
    node = UavTracker(context=ros_context, namespace="/nf5", parameter_overrides=[
        Parameter("use_classifier", value=False), Parameter("max_detections", value=50)])
    probe = Node("probe", context=ros_context)
    got = []
    probe.create_subscription(TrackArray, "/nf5/tracks", got.append, RESULT_QOS)
    pub = probe.create_publisher(DetectionArray, "/nf5/detections", RESULT_QOS)
    ex = _spin(ros_context, [node, probe])
    rng = np.random.default_rng(0)
    try:
        assert spin_until(ex, lambda: node.count_publishers("/nf5/detections") > 0, 5)
        dets = [_detection(i, float(x), float(y), 100.0) for i, (x, y) in
                enumerate(rng.uniform(-2000, 2000, (4000, 2)))]
        dets[17].spatial_confidence = dets[17].velocity_confidence = 1.0
        for d in dets[:17] + dets[18:]:
            d.spatial_confidence = d.velocity_confidence = 0.5
        pub.publish(DetectionArray(header=convert.header(1_000_000_000, "bs"), detections=dets))
        assert spin_until(ex, lambda: len(got) == 1, 30)
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()
    assert len(got[0].tracks) == 50 and node.frames_thinned == 1
    assert any(abs(t.position.x - dets[17].centroid.x) < 1e-3 for t in got[0].tracks), \
        "the most confident detection must be kept"
