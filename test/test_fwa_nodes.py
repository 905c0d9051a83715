"""The FWA nodes over real topics: BS encoders send round-1 embeddings,
the fusion centre decides, selects pairs, the encoders answer round 2 and
the centre fuses; a BS that stays silent is left out after the timeout;
malformed CSI is dropped and counted. The numbers equal the in-process
pipeline's."""
import numpy as np
import pytest
from rclpy.parameter import Parameter

from fwa_synthetic import bundle, cfrs, run_nodes

pytestmark = pytest.mark.ros


def test_two_rounds_with_both_bss_equal_the_in_process_pipeline(ros_context):
    from sense_nodes.core.fwa.pipeline import BsEncoder, FusionCentre, Models
    got, encs, centre, nodes = run_nodes(ros_context, (0, 1), [Parameter("threshold", value=0.0)],
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
    got, encs, centre, nodes = run_nodes(ros_context, (0,), [Parameter("threshold", value=0.0),
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
