"""`sense demo` (what `make demo` runs): the four systems through their ROS
nodes, each scored against its source's truth beside its paper, and one
HTML page with a picture per system.

BSense: the bsense deployment on an evaluation scenario bag, the paper's
metrics of what it published and a picture like the paper's Figure 14
(raw points, basic-pipeline tracks, BSense tracks, truth). Imaging, DiffLoc
and FWA: their deployments on the embedded defaults
(:mod:`sense_nodes.eval.suite_demo`); models that cannot ship are trained on
first use and cached.

The scenario is a case of fold 0's test set, unseen by the shipped TrajFormer
(trained on fold 0's training cases); the noise fingerprints are fitted on
UAV-free frames of the case's day, as the noise filter's refit would.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sense_nodes.cli.main import invocation
from sense_nodes.bs_sensor import UAV
from sense_nodes.errors import UserError

DEPLOYMENT = "bsense"
CASE = "straight_30_r1"
SYSTEMS = ("bsense", "imaging", "diffloc", "fwa")


def add_arguments(parser):
    parser.add_argument("--case", default=CASE, help="library case to replay (default: a fold-0 test case)")
    parser.add_argument("--frames", type=int, default=200, help="frames of the case (0.64 s each)")
    # 2x: all four nodes share one process; much faster (8x is a frame every
    # 80 ms) the tracker node falls behind on busy scenarios, its queue
    # overwrites frames, and the frames it never sees count as misses
    parser.add_argument("--rate", type=float, default=2.0, help="replay speed, x real time (default 2)")
    parser.add_argument("--out", default="out/demo", help="folder for the bags, model, figures and pictures")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS,
                        help="which systems to show (default: all four)")


def run(args):
    if args.frames < 10:
        raise UserError(f"--frames must be >= 10, got {args.frames}")
    if args.rate <= 0:
        raise UserError(f"--rate must be positive, got {args.rate}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sections = []
    if "bsense" in args.systems:
        sections.append(_bsense(args, out))
    from sense_nodes.eval import suite_demo
    for name in args.systems:
        if name != "bsense":
            sections.append(_system(name, getattr(suite_demo, name), out))
    from sense_nodes.eval.report import write_json
    from sense_nodes.eval.suite_pictures import page
    write_json(out / "figures.json", {f"{k}": v for s in sections for k, v in s["figures"].items()})
    page(sections, out / "index.html")
    print(f"\nfigures: {out / 'figures.json'}\npage with a picture per system: {out / 'index.html'}")
    return 0


SYSTEM_TEXT = {
    "imaging": ("Off-grid ISAC imaging", "the imaging deployment: simulated multi-static CSI of airspace scenes "
                "through the shipped imaging network (Net10) in the isac_imager node"),
    "diffloc": ("DiffLoc UE positioning", "the diffloc deployment: uplink SRS CSI of test-split UEs through the "
                "diffloc_server node (per-BS consistency models fused over the stations)"),
    "fwa": ("FWA cooperative sensing", "the fwa deployment: BS-CPE CSI through two BS encoders and the fusion "
            "centre (two rounds: embeddings, then estimates of the selected pairs)"),
}


def _system(name, run_system, out):
    from sense_nodes.eval import suite_pictures
    from sense_nodes.eval.report import print_figures
    from sense_nodes.eval.suite_demo import PAPER
    title, did = SYSTEM_TEXT[name]
    print(f"\n=== {title}: {did}", flush=True)
    figures, shown = run_system()
    figures.update({f"paper_{k}": PAPER[k] for k in list(figures) if k in PAPER})
    print_figures(figures, title=f"sense demo: {title} through ROS topics")
    png = out / f"{name}.png"
    getattr(suite_pictures, f"{name}_picture")(shown, png)
    print(f"picture: {png}")
    return {"title": title, "did": did, "figures": figures, "png": png.name}


def _bsense(args, out):
    from sense_nodes.core.bsense.noise_model import NoiseModel
    from sense_nodes.data.bs_sim import bag_io, library
    from sense_nodes.eval.bsense_eval import calibration_spec, load_case
    from sense_nodes.eval.report import print_figures

    print("=== BSense UAV tracking: the bsense deployment replaying a scenario bag", flush=True)
    try:
        scenario = library.scenario(args.case)
    except KeyError as exc:
        raise UserError(str(exc)) from None
    bag_in, bag_out, model_file = out / "scenario_bag", out / "output_bag", out / "noise_model.npz"
    n = bag_io.write_bag(scenario, bag_in, max_frames=args.frames, overwrite=True)
    print(f"scenario '{scenario.name}': {n} frames written to {bag_in}")
    calib = load_case("", spec=calibration_spec(int(scenario.spec.day)))
    NoiseModel().fit([f.points for f in calib.frames]).save(model_file)
    print(f"noise fingerprints fitted on {len(calib.frames)} UAV-free frames of the same day: {model_file}")

    published, tracked = _run_deployment(bag_in, bag_out, model_file, args.rate)
    if tracked < published:
        print(f"warning: the tracker node processed {tracked} of {published} frames at --rate {args.rate:g}: "
              "the others were overwritten in its queue while it was busy and count as misses below; "
              "rerun with a lower --rate")
    figures, outputs = _score(bag_in, bag_out)
    figures["frames_tracked_pct"] = 100.0 * tracked / max(published, 1)
    case = load_case(args.case, max_frames=args.frames)
    basic = _basic(case)
    figures["basic_f1_pct"] = basic["f1"]
    figures["basic_false_per_frame"] = basic["false_per_frame"]
    from sense_nodes.eval.bsense_eval import PAPER
    for key in list(figures):
        if key in PAPER:
            figures[f"paper_{key}"] = PAPER[key]
    print_figures(figures, title=f"sense demo: {DEPLOYMENT} on {scenario.name} through ROS topics")
    png = out / "bsense.png"
    _figure14(case, basic["outputs"], outputs, png)
    print(f"picture: {png}\nreplay it yourself: {invocation()} run {DEPLOYMENT} --bag {bag_in}")
    return {"title": "BSense UAV tracking", "figures": figures, "png": png.name,
            "did": f"the bsense deployment replaying {n} frames of scenario '{scenario.name}' (a fold-0 test case) "
                   f"through the noise filter, object filter and tracker nodes; tracks over the site"}


def _run_deployment(bag_in, bag_out, model_file, rate) -> tuple[int, int]:
    """Replay the bag through the deployment, record its outputs; returns
    (frames the source published, frames the tracker node processed)."""
    from rclpy.node import Node

    from sense_nodes.nodes.recorder import Recorder
    from sense_nodes.runtime.compose import compose

    comp = compose(DEPLOYMENT, bag=str(bag_in), rate=rate,
                   extra_params={"/bs/noise_filter": {"model_file": str(model_file)}})
    try:
        print(f"deployment '{DEPLOYMENT}': " + ", ".join(n.get_fully_qualified_name() for n in comp.nodes))
        probe = Node("demo_recorder", context=comp.context)
        comp.executor.add_node(probe)
        rec = Recorder(probe, ["/bs/tracks", "/bs/detections"], str(bag_out), overwrite=True)
        sources = [n for n in comp.nodes if hasattr(n, "finished")]
        comp.spin(until=lambda: all(s.finished for s in sources))
        comp.spin(3.0)  # let the last frames through the pipeline
        rec.close()
        from sense_nodes.cli.run import _summary
        _summary(comp)
        tracker = [n for n in comp.nodes if n.get_name() == "uav_tracker"]
        published = sum(int(getattr(s, "frames_published", 0)) for s in sources)
        return published, (tracker[0].diagnostics.processed if tracker else published)
    finally:
        comp.close()


def _score(bag_in, bag_out):
    """The paper's trajectory-level metrics of the recorded tracks (classified
    UAV) against the bag's truth, matched by stamp."""
    from sense_nodes.data import bags
    from sense_nodes.eval import bsense_metrics as M

    truth, tracks, dets = {}, {}, {}
    for _, _, _, msg in bags.read(bag_in, ["/bs/truth"]):
        truth[bags.stamp_ns_of(msg)] = np.array([[o.position.x, o.position.y, o.position.z]
                                                 for o in msg.objects if o.object_class == UAV]).reshape(-1, 3)
    for topic, _, _, msg in bags.read(bag_out, ["/bs/tracks", "/bs/detections"]):
        if topic == "/bs/tracks":
            tracks[bags.stamp_ns_of(msg)] = np.array([[t.position.x, t.position.y, t.position.z]
                                                      for t in msg.tracks if t.classification == 1]).reshape(-1, 3)
        else:
            dets[bags.stamp_ns_of(msg)] = np.array([[d.centroid.x, d.centroid.y, d.centroid.z]
                                                    for d in msg.detections]).reshape(-1, 3)
    return M.score_stamped(truth, tracks, dets)


def _basic(case):
    """The basic pipeline (DBSCAN + tracker, no filtering) on the same frames, in the core."""
    from sense_nodes.eval.bsense_eval import run_stage
    r = run_stage(case, 1, None, (0.0, 0.0), None)
    return {"f1": r.det.f1_pct, "false_per_frame": r.det.false_per_frame, "outputs": r.outputs}


def _figure14(case, basic_outputs, bsense_outputs, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sense_nodes.eval.bsense_eval import uav_truth
    pts = np.concatenate([np.stack([f.points["x"], f.points["y"]], 1) for f in case.frames])
    truth = np.concatenate([uav_truth(f)[1] for f in case.frames])
    fig, axes = plt.subplots(1, 3, figsize=(17, 6), dpi=100, sharex=True, sharey=True)
    axes[0].scatter(pts[:, 0], pts[:, 1], s=1, c="grey", alpha=0.35)
    axes[0].set_title(f"(a) raw points, {len(case.frames)} frames")
    for ax, outs, title in ((axes[1], basic_outputs, "(b) basic pipeline tracks"),
                            (axes[2], bsense_outputs, "(c) BSense tracks (ROS nodes)")):
        o = np.concatenate([x for x in outs if len(x)] or [np.zeros((0, 3))])
        ax.scatter(o[:, 0], o[:, 1], s=4, c="tab:blue", label=f"output ({len(o)})")
        ax.set_title(title)
    for ax in axes:
        ax.plot(truth[:, 0], truth[:, 1], ".", ms=2, c="red", label="UAV truth")
        ax.plot([0], [0], "^", c="black", ms=10, label="base station")
        ax.set_xlabel("x east of the base station (m)")
        ax.set_aspect("equal")
    axes[0].set_ylabel("y north of the base station (m)")
    for ax in axes:
        ax.legend(loc="upper right", fontsize=8)
    fig.suptitle(f"{case.name}: like the paper's Figure 14")
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
