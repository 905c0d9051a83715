"""Cooperative UAV sensing on this CPU: per-frame latency of one BS
encoder (both rounds) and of the fusion centre (detection, selection,
fusion), medians over repeats on one torch thread, and the bytes the BSs
send the centre per frame (serialized ROS messages) against sending the
raw CSI (a CsiBundle of every pair). Baseline in the same run: soft
fusion, the centre fusing the selected pairs' CSI itself.

  sense bench fwa --json bench.json [--repeats 30] [--checkpoints DIR|nulled [--calibration FILE]]
"""
from __future__ import annotations

import argparse
import numpy as np

from sense_nodes.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=30, help="timed repeats (default 30)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, as the nodes)")
    parser.add_argument("--checkpoints", metavar="DIR", help="model folder, or a shipped set by name (default "
                        "'bdz', the nodes'; 'nulled': the networks on background-nulled input)")
    parser.add_argument("--calibration", metavar="FILE", help="for models on background-nulled input: their "
                        "subspace calibration (default: the cache's one for the models' training dataset)")
    parser.add_argument("--pairs-selected", type=int, default=10,
                        help="pairs answered in round 2 (default 10 = k, the most the centre asks for)")


def _cfrs(n, rng, n_c=512):
    return {k: (rng.standard_normal((64, 4, n_c)) + 1j * rng.standard_normal((64, 4, n_c))).astype(np.complex64)
            for k in range(n)}


def message_bytes(msg) -> int:
    from rclpy.serialization import serialize_message
    return len(serialize_message(msg))


def main(args: argparse.Namespace) -> dict:
    import torch
    from geometry_msgs.msg import Point

    from sense_nodes.core.checkpoint import CheckpointError
    from sense_nodes.core.fwa import pipeline as pl
    from sense_nodes.eval.timing import median_ms
    from sense_nodes.msg import CsiBundle, CsiFrame, PairFeature, PairFeatureArray

    if args.repeats < 1 or args.threads < 1 or not 1 <= args.pairs_selected <= pl.NUM_PAIRS:
        raise UserError("--repeats, --threads >= 1 and --pairs-selected in [1, 32]")
    torch.set_num_threads(args.threads)
    def nuller(dataset):  # every BS's bases: soft fusion forms every pair's input
        from sense_nodes.core.fwa.calibration import SubspaceCalibration, default_path
        from sense_nodes.core.fwa.nulled import NulledInput
        return NulledInput(SubspaceCalibration.load(args.calibration or default_path(dataset)))

    try:
        models = pl.Models.load(args.checkpoints, nuller=nuller)
    except (CheckpointError, OSError, ValueError) as exc:
        raise UserError(str(exc)) from None
    rng = np.random.default_rng(0)
    csi = _cfrs(pl.NUM_CPE, rng)
    L = args.pairs_selected
    sel = list(range(L // 2)) + list(range(pl.NUM_CPE, pl.NUM_CPE + L - L // 2))
    enc = pl.BsEncoder(models, 0)

    def encoder_frame():
        enc.round1(csi)
        enc.round2(sel[: L // 2])

    encoder_ms = median_ms(encoder_frame, args.repeats)
    h = enc.round1(csi)
    emb = {k + b * pl.NUM_CPE: v for b in range(pl.NUM_BS) for k, v in h.items()}
    ans = enc.round2(list(range(L // 2)))
    answers = {k: next(iter(ans.values())) for k in sel}
    centre = pl.FusionCentre(models)

    def centre_frame():
        centre.detect(emb)
        centre.localize(answers)

    centre_ms = median_ms(centre_frame, args.repeats)
    soft_path = pl.checkpoint_dir(args.checkpoints) / "soft_fusion.pt"
    fig = {"encoder_median_ms": encoder_ms, "centre_median_ms": centre_ms}
    if soft_path.exists():
        soft, _ = pl.load_model(soft_path, "fwa_soft_fusion")
        raw = np.stack([csi[k % pl.NUM_CPE] for k in sel])

        def soft_frame():  # the selected pairs' CSI reaches the centre, which forms their inputs
            centre.detect(emb)
            with torch.no_grad():
                soft(torch.from_numpy(models.inputs(raw, sel))[None], torch.as_tensor(sel)[None])

        fig["soft_fusion_centre_median_ms"] = median_ms(soft_frame, max(3, args.repeats // 3), 1)
    # bytes per frame, serialized as the nodes send them
    n_e = len(next(iter(h.values())))
    r1 = PairFeatureArray(bs_id="bs0", pairs=[PairFeature(pair_index=k, bs_index=0, cpe_index=k,
                                                           embedding=[0.5] * n_e) for k in range(pl.NUM_CPE)])
    n_v = len(next(iter(ans.values()))[1])
    r2 = [PairFeatureArray(bs_id=f"bs{b}", pairs=[PairFeature(pair_index=k, embedding=[0.5] * n_v,
                                                              coarse_position=Point(x=1.0, y=2.0, z=60.0))
                                                  for k in sel if k // pl.NUM_CPE == b])
          for b in range(pl.NUM_BS)]
    round1 = pl.NUM_BS * message_bytes(r1)
    round2 = sum(message_bytes(m) for m in r2)
    frame = CsiFrame(tx_id="cpe0", rx_id="bs0", num_rx_antennas=64, num_tx_antennas=4, num_subcarriers=512)
    import array
    frame.real = array.array("f", np.zeros(64 * 4 * 512, np.float32).tobytes())
    frame.imag = frame.real
    raw_bytes = message_bytes(CsiBundle(frames=[frame])) * pl.NUM_PAIRS
    fig.update({"bytes_per_frame": round1 + round2, "round1_bytes_per_frame": round1,
                "round2_bytes_per_frame": round2, "raw_csi_bytes_per_frame": raw_bytes,
                "compression_ratio": raw_bytes / (round1 + round2), "pairs_selected": L,
                "threads": args.threads, "repeats": args.repeats})
    return fig
