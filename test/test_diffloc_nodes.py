"""The diffloc deployment over real topics: csi_source replays a small
synthetic SRS dataset, diffloc_server publishes fused positions with
covariances and per-BS estimates; a wrong-shaped bundle is dropped and
counted; the Localize service answers; a missing model is refused."""
import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from conftest import spin_until
from sense_nodes.msg import CsiBundle, CsiFrame, PositionEstimate
from sense_nodes.nodes.base import RESULT_QOS, ParameterError
from sense_nodes.nodes.csi_source import CsiSource
from sense_nodes.nodes.diffloc_server import DiffLocServer
from sense_nodes.srv import Localize

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import torch
    torch.set_num_threads(1)
    from diffloc_helpers import trained_models
    ds, models = trained_models(tmp_path_factory.mktemp("dln"), ("ct",), steps=40)
    return ds, models["ct"]


def test_bundles_become_position_estimates_and_bad_ones_are_dropped(ros_context, model):
    from sense_nodes.data.csi.dataset import load_dataset
    ds_path, ck = model
    ds = load_dataset(ds_path)
    n = len(ds.split_indices("test"))
    source = CsiSource(context=ros_context, namespace="/dl", parameter_overrides=[
        Parameter("dataset", value=str(ds_path)), Parameter("split", value="test"),
        Parameter("period_s", value=0.02), Parameter("start_delay_s", value=0.5)])
    server = DiffLocServer(context=ros_context, namespace="/dl", parameter_overrides=[
        Parameter("checkpoint", value=str(ck)), Parameter("draws", value=4)])
    probe = Node("probe", context=ros_context)
    got = []
    probe.create_subscription(PositionEstimate, "/dl/position", got.append, RESULT_QOS)
    bad_pub = probe.create_publisher(CsiBundle, "/dl/csi", RESULT_QOS)
    ex = SingleThreadedExecutor(context=ros_context)
    for nd in (source, server, probe):
        ex.add_node(nd)
    try:
        assert spin_until(ex, lambda: server.count_publishers("/dl/csi") >= 2, 5)
        bad_pub.publish(CsiBundle(frames=[CsiFrame(tx_id="ue0", rx_id="bs0", num_rx_antennas=2, num_tx_antennas=2,
                                                   num_subcarriers=1, real=[0.0] * 4, imag=[0.0] * 4)]))
        assert spin_until(ex, lambda: source.finished and len(got) == n, 60)
        # the service localises one bundle on request
        cli = probe.create_client(Localize, "/dl/localize")
        assert cli.wait_for_service(timeout_sec=5)
        sample = ds.sample(int(ds.split_indices("test")[0]))
        from sense_nodes.nodes.csi_source import csi_frame
        req = Localize.Request(bundle=CsiBundle(frames=[csi_frame(lk, CsiBundle().header) for lk in sample.links]))
        fut = cli.call_async(req)
        assert spin_until(ex, fut.done, 10)
        resp = fut.result()
    finally:
        ex.shutdown()
        for nd in (source, server, probe):
            nd.destroy_node()
    est = got[0]
    assert np.isfinite([est.position.x, est.position.y]).all()
    cov = np.asarray(est.covariance).reshape(3, 3)
    assert np.isfinite(cov).all() and cov[0, 0] > 0 and cov[1, 1] > 0 and np.allclose(cov, cov.T)
    assert est.method.startswith("diffloc-consistency-2step")
    assert len(est.source_ids) == len(est.source_positions) >= 1
    assert est.inference_latency_ms > 0 and est.header.stamp.sec > 0
    assert server.diagnostics.dropped["csi"] == 1
    assert resp.success and np.isfinite(resp.estimate.position.x)
    assert resp.estimate.position.x == pytest.approx(got[0].position.x, abs=1e-3)  # same chain, same seed


def test_missing_model_is_refused_naming_the_parameter(ros_context, tmp_path):
    with pytest.raises(ParameterError, match="checkpoint"):
        DiffLocServer(context=ros_context, parameter_overrides=[Parameter("checkpoint", value=str(tmp_path / "no.pt"))])
