"""DiffLoc latency on this machine (the paper's Sec. VI-A3): one fused
estimate from 3 BSs' CSI with the consistency model's 2 steps and with 200
DDIM steps, batched throughput, and FLOPs per network forward pass (the
paper reports 6.36 MFLOPs and estimates 0.2-0.4 ms for 2 steps on a GPU from
FLOPs; it measured nothing).

``ct_beamdb_*``: the consistency model on the beam x delay fingerprint
(``--magnitude beam_db``, beyond the paper), when trained.

``ct_fused3_<dtype>_latency_ms``: the same with the fingerprint projection
in float32, bfloat16 and int8 (``--projection`` picks the headline one).

Medians over repeats after warm-up, one torch thread by default (as the
diffloc_server node). Uses the cache's trained ct.pt / unet.pt when present,
else untrained networks of the same shapes (timing does not depend on the
weights). Latency runs end to end from the CSI arrays (fingerprints, their
projection, the networks, fusion); one initial noise (the paper's setting),
and with the node's 8 draws for the covariance beside it.
"""
from __future__ import annotations

import argparse

import numpy as np

from sense_nodes.errors import UserError

PAPER_MFLOPS = 6.362
# warm-up calls before a few-millisecond timing: the first calls fill the
# estimator's caches (noise, time terms, station subsets) and the CPU's
WARMUP = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sense_nodes.core.diffloc.estimator import DEFAULT_PROJECTION, PROJECTIONS
    parser.add_argument("--repeats", type=int, default=200, help="timed repeats (default 200; DDIM a tenth)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--batch", type=int, default=256, help="bundles per batch for throughput")
    parser.add_argument("--models", metavar="DIR", help="checkpoint folder (default: the cache's)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--projection", default=DEFAULT_PROJECTION, choices=tuple(PROJECTIONS),
                        help="dtype of the fingerprint projection (default %(default)s, the deployment's)")


def _estimator(models, name, device):
    from sense_nodes.core.diffloc.estimator import Estimator
    path = models / f"{name}.pt"
    if path.exists():
        return Estimator.from_checkpoint(path, device), str(path)
    return Estimator.untrained(name, device=device), "untrained, default shapes"


def mflops(net, cond_dim: int) -> float:
    """FLOPs of one forward pass of a per-BS score network (batch 1), in
    millions, counted by torch.utils.flop_counter (a multiply-add = 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    net.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        net(torch.zeros(1, 2), torch.zeros(1), torch.zeros(1, cond_dim))
    return fc.get_total_flops() / 1e6


def main(args: argparse.Namespace) -> dict:
    from pathlib import Path

    import torch
    from sense_nodes.core.diffloc.dataset import bundle_fingerprints
    from sense_nodes.core.diffloc.estimator import PROJECTIONS
    from sense_nodes.core.diffloc.models import model_dir
    from sense_nodes.eval.timing import median_ms

    if args.repeats < 1 or args.threads < 1 or args.batch < 1:
        raise UserError("--repeats, --threads and --batch must be >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device here")
    torch.set_num_threads(args.threads)
    models = Path(args.models) if args.models else model_dir()
    figs: dict = {"torch_threads": torch.get_num_threads(), "device": args.device}
    rng = np.random.default_rng(0)
    for name, label, steps in (("ct", "ct", 2), ("ct-beamdb", "ct_beamdb", 2), ("unet", "ddim200", 200)):
        if name == "ct-beamdb" and not (models / f"{name}.pt").exists():
            continue  # beyond the paper: timed only when trained (--magnitude beam_db)
        est, source = _estimator(models, name, args.device)
        figs[f"{name.replace('-', '_')}_model"] = source
        est.configure(steps=steps, draws=1, projection=args.projection)
        K = 128
        H = {b: (rng.standard_normal((32, 4, K)) + 1j * rng.standard_normal((32, 4, K))).astype(np.complex64)
             for b in range(3)}

        def one():
            fp, mask = bundle_fingerprints(H, est.taps, est.num_bs, est.ports, est.magnitude,
                                           est.expected_fingerprint_dim)
            return est.estimate(fp[None], mask[None], per_bs=False)

        reps = args.repeats if steps <= 2 else max(3, args.repeats // 10)
        warm = WARMUP if steps <= 2 else 2
        figs[f"{label}_fused3_latency_ms"] = median_ms(one, repeats=reps, warmup=warm)
        if name == "ct":
            figs["projection"] = args.projection
            for proj in PROJECTIONS:  # every projection dtype in the same run, beside the chosen one
                est.configure(projection=proj)
                figs[f"ct_fused3_{proj}_latency_ms"] = median_ms(one, repeats=reps, warmup=WARMUP)
            est.configure(projection=args.projection)
            fp, mask = bundle_fingerprints(H, est.taps, est.num_bs, est.ports)
            figs["fingerprint3_ms"] = median_ms(lambda: bundle_fingerprints(H, est.taps, est.num_bs, est.ports),
                                                repeats=args.repeats, warmup=WARMUP)
            est.configure(draws=8)
            figs["ct_fused3_cov8_latency_ms"] = median_ms(one, repeats=args.repeats, warmup=WARMUP)
            est.configure(draws=1)
            fb = np.repeat(fp[None], args.batch, 0)
            mb = np.repeat(mask[None], args.batch, 0)
            ms = median_ms(lambda: est.estimate(fb, mb, per_bs=False), repeats=max(3, args.repeats // 5), warmup=1)
            figs["ct_batched_estimates_per_s"] = args.batch / (ms / 1e3)
            figs["mflops_per_forward"] = mflops(est.nets[0], est.norms[0].out_dim)
            figs["paper_mflops_per_forward"] = PAPER_MFLOPS
            figs["ct_params_per_bs"] = int(sum(p.numel() for p in est.nets[0].parameters()))
        if label in ("ct", "ddim200"):
            figs[f"paper_{label}_fused3_latency_ms"] = {"ct": 0.3, "ddim200": 30.0}[label]
    figs["paper_latency_note"] = "paper: estimated from FLOPs on a GPU (0.2-0.4 ms, 20-40 ms), not measured"
    mlp = _estimator(models, "mlp", args.device)[0]
    figs["mlp_mflops_per_forward"] = mflops(mlp.nets[0], mlp.norms[0].out_dim)
    return figs
