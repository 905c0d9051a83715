"""csi_source publishes a ray-traced dataset as CsiBundle messages whose CFRs
are the dataset's, with the sample's truth; a missing dataset is refused."""
import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from conftest import spin_until
from sense_nodes.msg import CsiBundle, GroundTruthArray
from sense_nodes.nodes.base import RESULT_QOS, ParameterError
from sense_nodes.nodes.csi_source import CsiSource

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def tiny_imaging(tmp_path_factory):
    from sense_nodes.data.csi.dataset import load_dataset
    from sense_nodes.data.csi.imaging_channels import generate
    path = generate(tmp_path_factory.mktemp("csi") / "imaging", seed=5, tiny=True, progress=False)
    return path, load_dataset(path)


def test_every_sample_arrives_as_a_bundle_with_its_truth(ros_context, tiny_imaging):
    path, ds = tiny_imaging
    node = CsiSource(context=ros_context, namespace="/csi", parameter_overrides=[
        Parameter("dataset", value=str(path)), Parameter("period_s", value=0.05)])
    probe = Node("probe", context=ros_context)
    bundles, truths = [], []
    probe.create_subscription(CsiBundle, "/csi/csi", bundles.append, RESULT_QOS)
    probe.create_subscription(GroundTruthArray, "/csi/truth", truths.append, RESULT_QOS)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(probe)
    try:
        assert spin_until(ex, lambda: node.finished and len(truths) == ds.num_samples, 30)
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()
    assert [b.sample_index for b in bundles] == list(range(ds.num_samples))
    sample = ds.sample(2)
    frame = bundles[2].frames[0]
    link = sample.links[0]
    H = (np.asarray(frame.real) + 1j * np.asarray(frame.imag)).reshape(
        frame.num_rx_antennas, frame.num_tx_antennas, frame.num_subcarriers)
    assert np.array_equal(H.astype(np.complex64), link.H.astype(np.complex64))
    assert (frame.tx_id, frame.rx_id) == (link.tx_id, link.rx_id)
    assert frame.carrier_frequency == pytest.approx(link.carrier_hz)
    assert len(truths[2].objects) == len(sample.truth["objects"])
    assert bundles[1].header.stamp != bundles[0].header.stamp


def test_missing_dataset_is_refused_naming_the_parameter(ros_context, tmp_path):
    with pytest.raises(ParameterError, match="dataset"):
        CsiSource(context=ros_context, parameter_overrides=[Parameter("dataset", value=str(tmp_path / "none"))])


def test_a_frame_carries_the_links_cfr_row_major_whatever_its_memory_layout():
    from sense_nodes.data.csi.dataset import LinkCsi
    from sense_nodes.nodes import convert
    from sense_nodes.nodes.csi_source import csi_frame
    rng = np.random.default_rng(3)
    full = rng.standard_normal((4, 3, 10)) + 1j * rng.standard_normal((4, 3, 10))  # complex128
    H = full[::2, :, 1:9]                                                          # strided view [2, 3, 8]
    msg = csi_frame(LinkCsi("cpe1", "bs0", 1, H, 2.8e9, 30e3, 12.5), convert.header(0, "map"))
    assert (msg.num_rx_antennas, msg.num_tx_antennas, msg.num_subcarriers) == (2, 3, 8)
    assert msg.real.typecode == "f" and len(msg.real) == len(msg.imag) == 48
    assert np.array_equal(np.asarray(msg.real), H.real.astype(np.float32).ravel())
    assert np.array_equal(np.asarray(msg.imag), H.imag.astype(np.float32).ravel())
    assert msg.imag[1] == np.float32(H[0, 0, 1].imag)  # subcarrier fastest
