"""The imaging nodes over real topics: simulated multi-static CSI in, a voxel
image of the paper's 40 x 40 grid out; CSI of the wrong shape is dropped and
counted, and the node keeps imaging."""
import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from conftest import spin_until
from sense_nodes.msg import CsiBundle, CsiFrame, VoxelImage
from sense_nodes.nodes.base import RESULT_QOS
from sense_nodes.nodes.isac_imager import IsacImager
from sense_nodes.nodes.isac_scene_source import IsacSceneSource

pytestmark = pytest.mark.ros


def test_scenes_become_voxel_images_and_bad_csi_is_dropped(ros_context):
    source = IsacSceneSource(context=ros_context, namespace="/im", parameter_overrides=[
        Parameter("scenes", value=3), Parameter("period_s", value=0.2), Parameter("start_delay_s", value=0.5)])
    imager = IsacImager(context=ros_context, namespace="/im")
    probe = Node("probe", context=ros_context)
    images = []
    probe.create_subscription(VoxelImage, "/im/image", images.append, RESULT_QOS)
    bad_pub = probe.create_publisher(CsiBundle, "/im/csi", RESULT_QOS)
    ex = SingleThreadedExecutor(context=ros_context)
    for n in (source, imager, probe):
        ex.add_node(n)
    try:
        assert spin_until(ex, lambda: imager.count_publishers("/im/csi") >= 2, 5)
        bad = CsiBundle(frames=[CsiFrame(tx_id="bs0", rx_id="bs0", num_rx_antennas=2, num_tx_antennas=2,
                                         num_subcarriers=1, real=[0.0] * 4, imag=[0.0] * 4)])
        bad_pub.publish(bad)
        assert spin_until(ex, lambda: source.finished and len(images) == 3, 60)
    finally:
        ex.shutdown()
        for n in (source, imager, probe):
            n.destroy_node()
    img = images[-1]
    assert list(img.dimensions) == [40, 40, 1] and len(img.values) == 1600
    assert img.voxel_size[0] == pytest.approx(3.0)
    assert np.isfinite(np.asarray(img.values)).all()
    assert len(img.detections) == len(img.detection_scores)
    assert imager.diagnostics.dropped["csi"] == 1
    assert img.header.stamp.sec > 0


@pytest.mark.parametrize("solver", ["learned", "gridless", "sp"])
def test_each_solver_images_scenes_over_real_topics(ros_context, solver):
    source = IsacSceneSource(context=ros_context, namespace="/sv", parameter_overrides=[
        Parameter("scenes", value=2), Parameter("period_s", value=0.2), Parameter("start_delay_s", value=0.5)])
    imager = IsacImager(context=ros_context, namespace="/sv",
                        parameter_overrides=[Parameter("solver", value=solver)])
    probe = Node("probe", context=ros_context)
    images = []
    probe.create_subscription(VoxelImage, "/sv/image", images.append, RESULT_QOS)
    ex = SingleThreadedExecutor(context=ros_context)
    for n in (source, imager, probe):
        ex.add_node(n)
    try:
        assert spin_until(ex, lambda: source.finished and len(images) == 2, 90)
    finally:
        ex.shutdown()
        for n in (source, imager, probe):
            n.destroy_node()
    img = images[-1]
    assert len(img.values) == 1600 and np.isfinite(np.asarray(img.values)).all()
    assert solver.split()[0] in img.solver or (solver == "learned" and "CNN" in img.solver)
    assert len(img.detections) == len(img.detection_scores)
    if solver == "gridless":
        # six UAVs per scene, reported at continuous positions (not voxel centres)
        assert len(img.detections) >= 5
        xs = np.array([[p.x, p.y] for p in img.detections])
        assert np.abs((xs + 58.5) / 3.0 - np.round((xs + 58.5) / 3.0)).max() > 1e-3
