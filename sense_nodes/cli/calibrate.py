"""`sense calibrate`: fit the BSense noise fingerprints (Section 3.2) on
UAV-free frames and save them where the noise filter looks first, so a live
run filters from its first frame.

The frames come from the simulator's UAV-free recording of the site and day
of a scenario (the same site a live `sense run bsense` with that scenario
shows), or from a bag: there every frame whose truth shows a visible UAV is
left out, and a bag without truth is taken as the user's word that the sky
was empty. The model file records where it came from."""
from __future__ import annotations

import time

from sense_nodes.bs_sensor import UAV
from sense_nodes.errors import UserError
from sense_nodes.cli.validate import check_output_path

DEFAULT_SCENARIO = "circle_1_r1"  # the live bs_radar_source's default scenario


def add_arguments(parser):
    parser.description = __doc__
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--scenario", default=None,
                     help=f"calibrate for this library scenario's site and day (default {DEFAULT_SCENARIO})")
    src.add_argument("--bag", help="calibrate on this bag's point clouds (frames with a UAV in the truth are skipped)")
    parser.add_argument("--seed", type=int, default=None, help="scenario seed, as bs_radar_source's 'seed'")
    parser.add_argument("--site-seed", type=int, default=None, help="site seed, as bs_radar_source's 'site_seed'")
    parser.add_argument("--frames", type=int, default=700, help="UAV-free frames to fit on (default 700, N_u)")
    parser.add_argument("--out", default=None, help="model file (default: where the noise filter looks first)")


def _frames_from_scenario(args):
    from sense_nodes.data.bs_sim import library
    from sense_nodes.data.bs_sim.scenario import Scenario
    from sense_nodes.eval.bsense_cases import calibration_spec
    name = args.scenario or DEFAULT_SCENARIO
    try:
        spec = library.spec(name, args.seed, args.site_seed)
    except KeyError as exc:
        raise UserError(str(exc)) from None
    sc = Scenario(calibration_spec(int(spec.day), args.seed, args.site_seed, spec.site_kind, n_frames=args.frames))
    frames = [sc.frame(k).points for k in range(len(sc))]
    return frames, {"origin": f"sense calibrate on the UAV-free frames of scenario '{name}''s site and day",
                    "scenario": name, "day": float(spec.day), "seed": args.seed, "site_seed": args.site_seed}


def _frames_from_bag(args):
    from sense_nodes.data import cloud_codec
    from sense_nodes.data import bags
    try:
        topics = {t.name: t.msgtype for t in bags.topics(args.bag)}
    except bags.BagError as exc:
        raise UserError(str(exc)) from None
    clouds = [t for t, m in topics.items() if m == "sensor_msgs/msg/PointCloud2" and t.endswith("points")]
    truths = [t for t, m in topics.items() if m == "sense_nodes/msg/GroundTruthArray"]
    if not clouds:
        raise UserError(f"bag '{args.bag}' has no point-cloud topic ending in 'points' (it has {sorted(topics)})")
    uav_stamps, frames = set(), []
    if truths:
        for _, _, _, msg in bags.read(args.bag, truths[:1]):
            if any(o.object_class == UAV and o.visible for o in msg.objects):
                uav_stamps.add(bags.stamp_ns_of(msg))
    skipped = 0
    for _, _, _, msg in bags.read(args.bag, clouds[:1]):
        if bags.stamp_ns_of(msg) in uav_stamps:
            skipped += 1
            continue
        frames.append(cloud_codec.as_points(cloud_codec.decode(msg)))
        if len(frames) >= args.frames:
            break
    print(f"{args.bag}: {len(frames)} frames used, {skipped} skipped for a UAV in the truth"
          + ("" if truths else " (no truth in the bag: every frame taken as UAV-free)"))
    return frames, {"origin": f"sense calibrate on bag {args.bag}", "frames_with_uav_skipped": skipped,
                    "truth": bool(truths)}


def run(args):
    from sense_nodes.core.bsense.noise_model import NoiseModel
    from sense_nodes.core.bsense.refit import refit_refusal
    from sense_nodes.nodes.noise_filter import default_model_path

    if args.frames < 10:
        raise UserError(f"--frames must be >= 10, got {args.frames}")
    out = args.out or default_model_path()
    check_output_path(out, "--out")
    t0 = time.perf_counter()
    frames, provenance = _frames_from_bag(args) if args.bag else _frames_from_scenario(args)
    model = NoiseModel().fit(frames)
    refusal = refit_refusal(model)
    if refusal:
        raise UserError(f"not saved: {len(frames)} frames: {refusal}")
    model.provenance = dict(provenance, frames=len(frames))
    model.save(out)
    s = model.summary()
    print(f"noise model fitted on {len(frames)} UAV-free frames in {time.perf_counter() - t0:.1f} s: "
          f"{s['cubes']} cubes, {s['gaussian_pct']:.0f} % jointly Gaussian; saved to {out}")
    return 0
