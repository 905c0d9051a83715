"""Scenario simulator speed: frames per second against real time (0.64 s a frame).

Target: the simulator makes frames at least 20 times faster than
the base station does (BSense paper, Section 2: one frame every 640 ms).
Times ``Scenario.frame(k)`` over a block of consecutive frames; the figure is
the median over repeats (scenario set-up, drawn once, is timed separately).
"""
from __future__ import annotations

import statistics
import time

TARGET_X_REALTIME = 20.0


def add_arguments(parser):
    parser.add_argument("--scenario", default="star_1_r1", help="library scenario to time (default star_1_r1)")
    parser.add_argument("--frames", type=int, default=50, help="frames per timed repeat")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats (median)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--site-seed", type=int, default=None)


def main(args):
    from sense_nodes.errors import UserError
    from sense_nodes.data.bs_sim import library

    if args.frames < 1:
        raise UserError(f"--frames must be >= 1, got {args.frames}")
    if args.repeats < 1:
        raise UserError(f"--repeats must be >= 1, got {args.repeats}")
    try:
        t0 = time.perf_counter()
        sc = library.scenario(args.scenario, args.seed, args.site_seed)
        setup_ms = (time.perf_counter() - t0) * 1e3
    except KeyError as exc:
        raise UserError(f"--scenario: {exc.args[0]}") from None
    n = min(args.frames, len(sc))
    sc.frame(0)  # warm-up
    per_frame, points = [], 0
    for r in range(args.repeats):
        t0 = time.perf_counter()
        for k in range(n):
            points += sc.frame((r * n + k) % len(sc)).points.shape[0]
        per_frame.append((time.perf_counter() - t0) / n)
    med = statistics.median(per_frame)
    return {
        "frame_ms": med * 1e3,
        "frames_per_s": 1.0 / med,
        "x_realtime": sc.dt / med,
        "target_x_realtime": TARGET_X_REALTIME,
        "meets_target": sc.dt / med >= TARGET_X_REALTIME,
        "points_per_frame": points / (n * args.repeats),
        "scenario_setup_ms": setup_ms,
        "frames_timed": n * args.repeats,
    }
