"""The FWA nodes over real topics: BS encoders send round-1 embeddings,
the fusion centre decides, selects pairs, the encoders answer round 2 and
the centre fuses; a BS that stays silent is left out after the timeout;
malformed CSI is dropped and counted. The numbers equal the in-process
pipeline's."""
import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from conftest import spin_until
from fwa_synthetic import bundle, cfrs
from sense_nodes.msg import CsiBundle, UavDetection
from sense_nodes.nodes.base import RESULT_QOS
from sense_nodes.nodes.fwa_bs_encoder import FwaBsEncoder
from sense_nodes.nodes.fwa_fusion_center import FwaFusionCenter

pytestmark = pytest.mark.ros


def _run(ctx, encoders, centre_params, bundles, want, timeout=30):
    encs = [FwaBsEncoder(context=ctx, namespace=f"/t/bs{b}", parameter_overrides=[
        Parameter("bs_index", value=b), Parameter("csi_topic", value="/t/csi"),
        Parameter("selection_topic", value="/t/selection")]) for b in encoders]
    centre = FwaFusionCenter(context=ctx, namespace="/t", parameter_overrides=[
        Parameter("truth_topic", value=""), *centre_params])
    probe = Node("probe", context=ctx)
    got = []
    probe.create_subscription(UavDetection, "/t/detection", got.append, RESULT_QOS)
    pub = probe.create_publisher(CsiBundle, "/t/csi", RESULT_QOS)
    ex = SingleThreadedExecutor(context=ctx)
    nodes = [*encs, centre, probe]
    for n in nodes:
        ex.add_node(n)
    try:
        assert spin_until(ex, lambda: pub.get_subscription_count() >= len(encs)
                          and all(centre.count_publishers(f"/t/bs{b}/features") for b in encoders), 10)
        for b in bundles:
            pub.publish(b)
        assert spin_until(ex, lambda: len(got) >= want, timeout)
    finally:
        ex.shutdown()
    return got, encs, centre, nodes


def test_two_rounds_with_both_bss_equal_the_in_process_pipeline(ros_context):
    from sense_nodes.core.fwa.pipeline import BsEncoder, FusionCentre, Models
    got, encs, centre, nodes = _run(ros_context, (0, 1), [Parameter("threshold", value=0.0)],
                                    [bundle(3, 10)], 1)
    try:
        [d] = got
        models = Models.load()
        h, answers = {}, {}
        bs = [BsEncoder(models, b) for b in (0, 1)]
        for b in (0, 1):
            h.update(bs[b].round1({b * 16 + c: H for (bb, c), H in cfrs(3).items() if bb == b}))
        ref = FusionCentre(models, threshold=0.0).detect(h)
        for b in (0, 1):
            answers.update(bs[b].round2(ref.selected))
        pos = FusionCentre(models).localize(answers)
        assert d.uav_present and d.position_valid
        assert d.presence_probability == pytest.approx(ref.probability, abs=1e-5)
        assert np.allclose(d.attention, [ref.attention[k] for k in range(32)], atol=1e-5)
        assert sum(d.attention) == pytest.approx(1.0, abs=1e-4)
        assert list(d.selected_pairs) == ref.selected
        assert np.allclose([d.position.x, d.position.y, d.position.z], pos, atol=1e-3)
        assert centre.counts["bs_timeouts"] == 0
    finally:
        for n in nodes:
            n.destroy_node()


def test_a_silent_bs_is_left_out_after_the_timeout_and_bad_csi_is_dropped(ros_context):
    bad = bundle(5, 20)
    bad.frames[0].num_rx_antennas = 8  # no longer matches its values
    got, encs, centre, nodes = _run(ros_context, (0,), [Parameter("threshold", value=0.0),
                                                        Parameter("timeout_s", value=0.3)],
                                    [bad, bundle(4, 21)], 1)
    try:
        [d] = got
        att = np.asarray(d.attention)
        assert att[16:].sum() == 0.0 and att[:16].sum() == pytest.approx(1.0, abs=1e-4)
        assert all(k < 16 for k in d.selected_pairs) and d.position_valid
        assert np.isfinite([d.position.x, d.position.y, d.position.z]).all()
        assert centre.counts["bs_timeouts"] >= 1
        assert encs[0].diagnostics.dropped["csi"] == 1
    finally:
        for n in nodes:
            n.destroy_node()
