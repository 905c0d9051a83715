"""BSense latency per frame: per stage and end to end on the core at the
scenario's point density and at 10x and 100x the points, the same frames
through the ROS nodes (transport included), and the Stone Soup peer tracker
on the same detections. Medians over the frames of one case.

Paper (Section 4.2, desktop i5-11500): 6.91 + 15.12 + 16.34 = 38.37 ms per
frame. Target here: end to end under 10 ms per frame at paper density, and
growth with the point count linear or better.
"""
from __future__ import annotations

import time

import numpy as np

PAPER = {"noise_filter_median_ms": 6.91, "object_level_median_ms": 15.12, "trajectory_level_median_ms": 16.34,
         "end_to_end_median_ms": 38.37}
TARGET_MS = 10.0


def add_arguments(parser):
    parser.add_argument("--case", default="star_1_r1", help="library case whose frames are timed")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--site-seed", type=int, default=None)
    parser.add_argument("--frames", type=int, default=200, help="frames timed per density")
    parser.add_argument("--no-ros", action="store_true", help="skip the run through ROS topics")
    parser.add_argument("--no-peer", action="store_true", help="skip the Stone Soup peer")


def densify(points: np.ndarray, factor: int, rng: np.random.Generator) -> np.ndarray:
    """``factor`` copies of a frame, each jittered by a few metres and dB (more
    returns of the same kind, not identical duplicates)."""
    if factor == 1:
        return points
    reps = np.tile(points, factor)
    n = reps.shape[0]
    for axis in ("x", "y", "z"):
        reps[axis] += rng.normal(0, 3.0, n).astype(np.float32)
    for m in ("snr", "scr", "noise", "signal_power", "rx_power"):
        reps[m] += rng.normal(0, 1.0, n).astype(np.float32)
    reps["doppler"] += rng.normal(0, 0.2, n).astype(np.float32)
    return reps


def _time_core(frames, model, classifier, dt):
    from sense_nodes.core.bsense.pipeline import BSensePipeline, PipelineConfig

    pipe = BSensePipeline(PipelineConfig(stage=5 if classifier is not None else 4), noise_model=model,
                          classifier=classifier)
    per: dict[str, list] = {}
    dets = []
    for pts in frames:
        r = pipe.step(pts, dt)
        for k, v in r.timing_ms.items():
            per.setdefault(k, []).append(v)
        dets.append(r.objects.pos[r.object_keep])
    return {k: float(np.median(v)) for k, v in per.items()}, dets


def main(args):
    from sense_nodes.errors import UserError
    from sense_nodes.eval.bsense_cases import calibration_spec, load_case

    if args.frames < 10:
        raise UserError(f"--frames must be >= 10, got {args.frames}")
    try:
        case = load_case(args.case, args.seed, args.site_seed, args.frames)
    except KeyError as exc:
        raise UserError(str(exc)) from None
    from sense_nodes.core.bsense.noise_model import NoiseModel
    calib = load_case("", spec=calibration_spec(case.day, args.seed, args.site_seed))
    model = NoiseModel().fit([f.points for f in calib.frames])
    classifier = _classifier()
    from sense_nodes.core.bsense.trajformer import single_thread_inference
    from sense_nodes.core.bsense.verification import verifier_name
    single_thread_inference()
    figures = {"points_per_frame": float(np.mean([len(f.points) for f in case.frames])),
               "classifier": verifier_name(classifier) if classifier is not None else "none (no checkpoint)"}
    rng = np.random.default_rng(0)
    base_frames = [f.points for f in case.frames]
    totals = {}
    for factor in (1, 10, 100):
        frames = [densify(p, factor, rng) for p in base_frames] if factor > 1 else base_frames
        med, dets = _time_core(frames, model, classifier, case.dt)
        totals[factor] = med["total"]
        tag = "" if factor == 1 else f"_{factor}x"
        figures[f"end_to_end{tag}_median_ms"] = med["total"]
        if factor == 1:
            figures["noise_filter_median_ms"] = med["noise_filter"]
            figures["object_level_median_ms"] = med["clustering"] + med["object_filter"]
            figures["trajectory_level_median_ms"] = med["tracker"] + med["trajformer"]
            figures["per_stage_median_ms"] = [med["noise_filter"], med["clustering"], med["object_filter"],
                                              med["tracker"], med["trajformer"]]
            figures["per_stage_names"] = "noise_filter, clustering, object_filter, tracker, trajformer"
            base_dets = dets
    figures["growth_10x"] = totals[10] / totals[1]
    figures["growth_100x"] = totals[100] / totals[1]
    figures["linear_or_better"] = figures["growth_100x"] <= 100.0
    figures["meets_10ms_target"] = figures["end_to_end_median_ms"] < TARGET_MS
    if not args.no_peer:
        from sense_nodes.core.bsense.tracker import Tracker
        from sense_nodes.core.bsense.clustering import Objects
        from sense_nodes.eval.stonesoup_peer import StoneSoupTracker
        ours, peer = Tracker(), StoneSoupTracker()
        t_ours, t_peer = [], []
        for d in base_dets:
            obj = Objects(d, np.zeros(len(d)), np.zeros((len(d), 5)), np.ones(len(d), np.int64), np.zeros(0, np.int64))
            t0 = time.perf_counter()
            ours.step(obj)
            t1 = time.perf_counter()
            peer.step(d)
            t2 = time.perf_counter()
            t_ours.append((t1 - t0) * 1e3)
            t_peer.append((t2 - t1) * 1e3)
        figures["tracker_same_detections_median_ms"] = float(np.median(t_ours))
        figures["stonesoup_median_ms"] = float(np.median(t_peer))
    if not args.no_ros:
        from sense_nodes.runtime.latency import ros_latency
        figures.update(ros_latency(case.frames, model))
    for k, v in PAPER.items():
        figures[f"paper_{k}"] = v
    return figures


def _classifier():
    """The package's default verifier, or None when no file is shipped."""
    from sense_nodes.core.bsense.verification import default_verifier_path, load_classifier
    path = default_verifier_path()
    return load_classifier(path) if path.exists() else None

