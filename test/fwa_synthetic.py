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
