"""Synthetic FWA CSI bundles for the node tests (random CFRs of the
deployment's shape with 64 subcarriers; the nodes' arithmetic does not
depend on realism)."""
import array

import numpy as np

from sense_nodes.msg import CsiBundle, CsiFrame

N_SUB = 64


def cfrs(seed: int, n_bs: int = 2, n_cpe: int = 16) -> dict:
    """(bs, cpe) -> H [64, 4, N_SUB] complex64."""
    rng = np.random.default_rng(seed)
    return {(b, c): (rng.standard_normal((64, 4, N_SUB)) + 1j * rng.standard_normal((64, 4, N_SUB))
                     ).astype(np.complex64) for b in range(n_bs) for c in range(n_cpe)}


def bundle(seed: int, stamp_s: int, skip_bs=()) -> CsiBundle:
    msg = CsiBundle(sample_index=seed)
    msg.header.stamp.sec = int(stamp_s)
    msg.header.frame_id = "map"
    for (b, c), h in cfrs(seed).items():
        if b in skip_bs:
            continue
        f = CsiFrame(tx_id=f"cpe{c}", rx_id=f"bs{b}", link_index=b * 16 + c, num_rx_antennas=64,
                     num_tx_antennas=4, num_subcarriers=N_SUB, snr_db=30.0)
        f.header = msg.header
        f.real = array.array("f", np.ascontiguousarray(h.real).tobytes())
        f.imag = array.array("f", np.ascontiguousarray(h.imag).tobytes())
        msg.frames.append(f)
    return msg


def run_nodes(ctx, encoders, centre_params, bundles, want, timeout=30, ns="/t", encoder_params=()):
    """BS encoders ``encoders`` and a fusion centre under namespace ``ns``
    on real topics: publish ``bundles`` on ``<ns>/csi`` and spin until
    ``want`` detections arrive. Returns (detections, encoders, centre,
    nodes); the caller destroys the nodes."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from conftest import spin_until
    from sense_nodes.msg import UavDetection
    from sense_nodes.nodes.base import RESULT_QOS
    from sense_nodes.nodes.fwa_bs_encoder import FwaBsEncoder
    from sense_nodes.nodes.fwa_fusion_center import FwaFusionCenter

    encs = [FwaBsEncoder(context=ctx, namespace=f"{ns}/bs{b}", parameter_overrides=[
        Parameter("bs_index", value=b), Parameter("csi_topic", value=f"{ns}/csi"),
        Parameter("selection_topic", value=f"{ns}/selection"), *encoder_params]) for b in encoders]
    centre = FwaFusionCenter(context=ctx, namespace=ns, parameter_overrides=[
        Parameter("truth_topic", value=""), *centre_params])
    probe = Node("probe", context=ctx)
    got = []
    probe.create_subscription(UavDetection, f"{ns}/detection", got.append, RESULT_QOS)
    pub = probe.create_publisher(CsiBundle, f"{ns}/csi", RESULT_QOS)
    ex = SingleThreadedExecutor(context=ctx)
    nodes = [*encs, centre, probe]
    for n in nodes:
        ex.add_node(n)
    try:
        assert spin_until(ex, lambda: pub.get_subscription_count() >= len(encs)
                          and all(centre.count_publishers(f"{ns}/bs{b}/features") for b in encoders), 10)
        for b in bundles:
            pub.publish(b)
        assert spin_until(ex, lambda: len(got) >= want, timeout)
    finally:
        ex.shutdown()
    return got, encs, centre, nodes
