"""Off-grid ISAC imaging latency on this machine: sensing-matrix build time and
memory, subspace pursuit, the gridless imager, A^H y back-projection and the learned imager per
frame (medians over repeats), beside the paper's run times (Table III: SP on
a CPU, the others on an A100 GPU)."""
from __future__ import annotations

import argparse

import numpy as np

from sense_nodes.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=30, help="timed repeats (default 30)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1, as the isac_imager node's cpu_threads; 0 = torch's)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument("--no-3d", action="store_true", help="skip the 3D ROI imager")
    parser.add_argument("--checkpoint", help="2D imager checkpoint (default: the package's net9.pt); "
                        "the 3D imager is an untrained network of the paper's shape, which times the same")


def _frozen_fp32(net, device):
    """The imager's previous inference path (scripted, frozen, float32, contiguous)."""
    import torch
    m = net.to(device).eval()
    try:
        m = torch.jit.freeze(torch.jit.script(m))
    except Exception:  # noqa: BLE001
        pass
    return lambda x: m(x.float())


def main(args: argparse.Namespace) -> dict:
    import torch
    from sense_nodes.core.imaging.backprojection import (FactoredBackProjector, back_project,
                                                         bp_features)
    from sense_nodes.core.imaging.geometry import config_2d, config_3d
    from sense_nodes.core.imaging.imager import (CHECKPOINT_DIR, optimize_for_inference,
                                                pick_device)
    from sense_nodes.core.imaging.sensing_matrix import build_sensing_matrix
    from sense_nodes.core.imaging.subspace_pursuit import sp_image
    from sense_nodes.core.imaging.targets import measure, sample_scene
    from sense_nodes.core.imaging.training import TrainConfig, load_network, make_network
    from sense_nodes.eval.timing import median_ms

    if args.repeats < 1:
        raise UserError("--repeats must be >= 1")
    try:
        device = pick_device(args.device)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if args.threads < 0:
        raise UserError(f"--threads must be >= 0, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    checked = None
    if args.checkpoint:  # refuse a bad file before any timing, not after
        from sense_nodes.core.checkpoint import CheckpointError
        try:
            checked = load_network(args.checkpoint)[0]
        except CheckpointError as exc:
            raise UserError(f"--checkpoint: {exc}") from None
    figs: dict = {"torch_threads": torch.get_num_threads(), "device": str(device)}
    for label, cfg in (("2d", config_2d()), ("3d", None if args.no_3d else config_3d())):
        if cfg is None:
            continue
        S = build_sensing_matrix(cfg)
        figs[f"a_build_{label}_ms"] = S.build_s * 1e3
        figs[f"a_{label}_mib"] = S.nbytes / 2**20
        figs[f"a_{label}_shape"] = f"{S.A.shape[0]}x{S.A.shape[1]}"
        rng = np.random.default_rng(0)
        y = measure(cfg, [sample_scene(cfg, rng)], rng)[0]
        figs[f"bp_{label}_median_ms"] = median_ms(lambda: back_project(S, y), args.repeats)
        from sense_nodes.core.imaging.gridless import GridlessImager
        gridless = GridlessImager(cfg)
        figs[f"gridless_{label}_median_ms"] = median_ms(lambda: gridless.solve(y), args.repeats, warmup=2)
        if label == "2d":
            figs["gridless_2d_target_ms"] = 52.05      # below SP's run time in Table III
            figs["paper_bp_2d_median_ms"] = 0.08
            figs["sp_median_ms"] = median_ms(lambda: sp_image(S, y, 6), args.repeats, warmup=2)
            figs["paper_sp_median_ms"] = 52.05
        if label == "2d":
            net = checked if checked is not None else load_network(CHECKPOINT_DIR / "net9.pt")[0]
        else:
            net = make_network(TrainConfig(imaging=cfg.to_dict()), cfg)
        net.eval()
        variants = {
            # as Imager runs it: frozen, channels-last, bfloat16 where the CPU has it
            "": optimize_for_inference(net, device),
            "_fp32": optimize_for_inference(net, device, precision="float32"),
            # the previous path: frozen float32 script, contiguous layout
            "_baseline": _frozen_fp32(net, device),
        }
        figs[f"imager_{label}_precision"] = str(variants[""].dtype).replace("torch.", "")
        factored = FactoredBackProjector(cfg)
        figs[f"bp_{label}_factored_median_ms"] = median_ms(lambda: factored(y), args.repeats)
        # the imager's A^H y (factored) for the current variants, dense A^H y for the old path
        project = {"": factored, "_fp32": factored, "_baseline": lambda v: back_project(S, v)}
        # interleaved rounds, so that load from other processes hits every variant alike
        samples: dict = {k: [] for k in variants}
        for _ in range(3):
            for suffix, run in variants.items():
                @torch.inference_mode()
                def imager(run=run, bp=project[suffix]):
                    feats = bp_features(bp(y), cfg.grid_shape)
                    return run(torch.from_numpy(feats).to(device)).cpu()
                samples[suffix].append(median_ms(imager, max(1, args.repeats // 3)))
        for suffix, vals in samples.items():
            figs[f"imager_{label}{suffix}_median_ms"] = float(np.median(vals))
        if label == "2d":
            figs["paper_imager_2d_median_ms"] = 13.35
            figs["imager_2d_target_ms"] = 15.0
        S = None   # free the matrix before the next geometry's
    return figs
