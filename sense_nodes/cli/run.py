"""`sense run DEPLOYMENT`: every node of a deployment in one process, on one
multi-threaded executor (the way to run where `ros2 launch` is not installed).
Reads the same deployment description as the launch files."""
from __future__ import annotations

from sense_nodes.cli.main import UserError
from sense_nodes.cli.validate import check_output_path, check_positive


def add_arguments(parser):
    parser.add_argument("deployment", help="bsense, fwa, imaging, diffloc or all (those that exist)")
    parser.add_argument("--bag", help="replay this rosbag2 file through the source nodes (sim time)")
    parser.add_argument("--rate", type=float, default=None, help="playback / simulation speed (x real time)")
    parser.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    parser.add_argument("--until-sources-finish", action="store_true",
                        help="stop once every source node has published its last frame")
    parser.add_argument("--record", metavar="BAG", help="also record the deployment's topics to this bag")
    parser.add_argument("--record-topics", nargs="+", default=None, help="topics for --record (default: all)")
    parser.add_argument("--set", action="append", default=[], metavar="NODE:NAME=VALUE",
                        help="override a parameter, e.g. /bs/bs_radar_source:rate=5.0")


def _overrides(items):
    import yaml
    out = {}
    for item in items:
        try:
            node, assignment = item.split(":", 1)
            name, value = assignment.split("=", 1)
        except ValueError:
            raise UserError(f"--set '{item}' is not NODE:NAME=VALUE") from None
        out.setdefault(node, {})[name] = yaml.safe_load(value)
    return out


def run(args):
    from sense_nodes.nodes.base import ParameterError
    from sense_nodes.runtime.compose import compose
    from sense_nodes.runtime.deployment import DeploymentError

    check_positive(args.duration, "--duration")
    check_positive(args.rate, "--rate")
    if args.record:
        check_output_path(args.record, "--record", directory=True)
    try:
        comp = compose(args.deployment, bag=args.bag, rate=args.rate, extra_params=_overrides(args.set))
    except (DeploymentError, ParameterError) as exc:
        raise UserError(str(exc)) from None
    recorder = None
    try:
        print(f"deployment '{comp.deployment.name}': {comp.deployment.description}")
        for node in comp.nodes:
            print(f"  {node.get_fully_qualified_name()}")
        if args.record:
            from sense_nodes.nodes.recorder import Recorder
            topics = args.record_topics or _deployment_topics(comp)
            recorder = Recorder(comp.nodes[0], topics, args.record, overwrite=True)
        sources = [n for n in comp.nodes if hasattr(n, "finished")]
        until = (lambda: all(s.finished for s in sources)) if args.until_sources_finish and sources else None
        comp.spin(args.duration, until=until)
        if until is not None:
            comp.spin(1.0)  # let the last frame flow through the pipeline
        _summary(comp)
    finally:
        if recorder is not None:
            recorder.close()
            print(f"recorded {sum(recorder.counts.values())} messages to {args.record}")
        comp.close()
    return 0


def _deployment_topics(comp):
    names = set()
    for node in comp.nodes:
        for pub in node.publishers:
            if pub.topic_name not in ("/rosout", "/parameter_events"):
                names.add(pub.topic_name)
    return sorted(names)


def _summary(comp):
    print(f"{'node':<40} {'processed':>9} {'rate_hz':>8} {'latency_ms':>10} {'dropped':>7}")
    for node in comp.nodes:
        d = node.diagnostics
        processed = getattr(node, "frames_published", d.processed)
        print(f"{node.get_fully_qualified_name():<40} {processed:>9} {d.rate_hz():>8.2f} "
              f"{d.latency_ms():>10.2f} {sum(d.dropped.values()):>7}")
