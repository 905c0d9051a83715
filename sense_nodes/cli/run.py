"""`sense run DEPLOYMENT`: every node of a deployment in one process, on one
multi-threaded executor (the way to run where `ros2 launch` is not installed).
Reads the same deployment description as the launch files."""
from __future__ import annotations

import contextlib
import signal
import sys

from sense_nodes.bs_sensor import UAV
from sense_nodes.errors import UserError
from sense_nodes.cli.validate import check_output_path, check_positive

# how long a recorded run holds its sources back for the recorder to match
# every topic (discovery on a loaded machine can take seconds)
RECORD_MATCH_TIMEOUT_S = 15.0
RECORD_DRAIN_TIMEOUT_S = 30.0


def add_arguments(parser):
    from sense_nodes.runtime.deployment import names
    parser.add_argument("deployment", help=f"which deployment: {', '.join(names())}")
    parser.add_argument("--bag", help="replay this rosbag2 file through the source nodes (sim time)")
    parser.add_argument("--rate", type=float, default=None, help="playback / simulation speed (x real time)")
    parser.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    parser.add_argument("--until-sources-finish", action="store_true",
                        help="stop once every source node has published its last frame (the default with --bag)")
    parser.add_argument("--keep-running", action="store_true",
                        help="with --bag: keep running after the bag ended (until --duration or Ctrl-C)")
    parser.add_argument("--status-every", type=float, default=5.0, metavar="S",
                        help="print a status line every S seconds (default 5; 0 = never)")
    parser.add_argument("--record", metavar="BAG", help="also record the deployment's topics to this bag")
    parser.add_argument("--record-topics", nargs="+", default=None, help="topics for --record (default: all)")
    parser.add_argument("--host", metavar="NAME",
                        help="run only this host's share of the deployment (config/sites/DEPLOYMENT.yaml: a "
                             "base-station site or the fusion centre); the other hosts run theirs over DDS")
    parser.add_argument("--set", action="append", default=[], metavar="NODE:NAME=VALUE",
                        help="override a parameter, e.g. /bs/bs_radar_source:rate=5.0 (a node name alone will do where it is unique)")


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
        dep, extra = args.deployment, {}
        if args.host:
            from sense_nodes.runtime.sites import host_deployment
            dep, extra = host_deployment(args.deployment, args.host)
        for node, params in _overrides(args.set).items():
            extra.setdefault(node, {}).update(params)
        comp = compose(dep, bag=args.bag, rate=args.rate, extra_params=extra)
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
        if recorder is not None:
            for source in sources:
                source.hold_until(recorder.ready, RECORD_MATCH_TIMEOUT_S, "the recorder matched every topic")
        stop_at_end = (args.until_sources_finish or (args.bag and not args.keep_running)) and sources
        until = (lambda: all(s.finished for s in sources)) if stop_at_end else None
        watch = TruthWatch(comp)
        status = StatusPrinter(comp, args.status_every)
        with terminate_as_interrupt():
            comp.spin(args.duration, until=until, tick=status)
            if until is not None and until():
                print("every source has finished: stopping")
                comp.spin(1.0)  # let the last frame flow through the pipeline
                if recorder is not None:
                    _wait_for_recorder(comp, recorder, sources)
        _summary(comp)
        watch.report()
    finally:
        if recorder is not None:
            recorder.close()
            print(f"recorded {sum(recorder.counts.values())} messages to {args.record}")
        comp.close()
    return 0


def _wait_for_recorder(comp, recorder, sources) -> None:
    """Spin until the recorder holds every message the sources sent (up to
    RECORD_DRAIN_TIMEOUT_S), saying so when it does not."""
    sent: dict[str, int] = {}
    for source in sources:
        for topic, n in source.sent.items():
            sent[topic] = sent.get(topic, 0) + n
    comp.spin(RECORD_DRAIN_TIMEOUT_S, until=lambda: recorder.has_all(sent))
    if not recorder.has_all(sent):
        print(f"warning: the recorder did not receive every source message within {RECORD_DRAIN_TIMEOUT_S:.0f} s",
              file=sys.stderr)


def _deployment_topics(comp):
    names = set()
    for node in comp.nodes:
        for pub in node.publishers:
            if pub.topic_name not in ("/rosout", "/parameter_events"):
                names.add(pub.topic_name)
    return sorted(names)


class StatusPrinter:
    """Prints, every ``period_s`` of wall time, what each node has done."""

    def __init__(self, comp, period_s: float):
        import time
        self.comp, self.period_s = comp, period_s
        self.t0 = self.next = time.monotonic()

    def __call__(self) -> None:
        import time
        now = time.monotonic()
        if self.period_s <= 0 or now < self.next + self.period_s:
            return
        self.next = now
        names = [n.get_name() for n in self.comp.nodes]
        parts = [f"{n.get_name() if names.count(n.get_name()) == 1 else n.get_fully_qualified_name()}: "
                 f"{n.status_phrase()}" for n in self.comp.nodes]
        print(f"[{now - self.t0:5.0f} s] " + " | ".join(parts), flush=True)


class TruthWatch:
    """Collects the source's truth and the deployment's tracks by stamp, and
    at the end scores them as `sense demo` does (BSense deployments; other
    deployments have no trajectory-level figures)."""

    def __init__(self, comp):
        import numpy as np
        from rclpy.node import Node

        from sense_nodes.msg import DetectionArray, GroundTruthArray, TrackArray
        from sense_nodes.nodes.base import RESULT_QOS
        self.truth, self.tracks, self.dets = {}, {}, {}
        topics = {pub.topic_name: pub.msg_type for n in comp.nodes for pub in n.publishers}
        find = lambda cls: next((t for t, c in topics.items() if c is cls), None)  # noqa: E731
        truth, tracks, dets = find(GroundTruthArray), find(TrackArray), find(DetectionArray)
        self.active = truth is not None and tracks is not None
        if not self.active:
            return
        from sense_nodes.data.bags import stamp_ns_of
        probe = Node("sense_run_truth", context=comp.context)
        comp.executor.add_node(probe)
        xyz = lambda ps: np.array([[p.x, p.y, p.z] for p in ps], float).reshape(-1, 3)  # noqa: E731
        probe.create_subscription(GroundTruthArray, truth, lambda m: self.truth.__setitem__(
            stamp_ns_of(m), xyz([o.position for o in m.objects if o.object_class == UAV])), RESULT_QOS)
        probe.create_subscription(TrackArray, tracks, lambda m: self.tracks.__setitem__(
            stamp_ns_of(m), xyz([t.position for t in m.tracks if t.classification == 1])), RESULT_QOS)
        if dets is not None:
            probe.create_subscription(DetectionArray, dets, lambda m: self.dets.__setitem__(
                stamp_ns_of(m), xyz([d.centroid for d in m.detections])), RESULT_QOS)

    def report(self) -> None:
        if not self.active or not self.truth:
            return
        from sense_nodes.eval.bsense_metrics import score_stamped
        from sense_nodes.eval.report import print_figures
        from sense_nodes.eval.bsense_eval import PAPER
        figures, _ = score_stamped(self.truth, self.tracks, self.dets)
        figures.update({f"paper_{k}": PAPER[k] for k in list(figures) if k in PAPER})
        print_figures(figures, title="against the source's truth (verified UAV tracks; the paper's metrics)")


@contextlib.contextmanager
def terminate_as_interrupt():
    """SIGTERM (a service manager, `kill`) ends the run like Ctrl-C: with the summary."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _summary(comp):
    print(f"{'node':<40} {'processed':>9} {'rate_hz':>8} {'latency_ms':>10} {'dropped':>7} {'lost':>6}")
    lost = 0
    for node in comp.nodes:
        d = node.diagnostics
        processed = getattr(node, "frames_published", d.processed)
        lost += sum(d.lost.values())
        print(f"{node.get_fully_qualified_name():<40} {processed:>9} {d.mean_rate_hz():>8.2f} "
              f"{d.latency_ms():>10.2f} {sum(d.dropped.values()) + sum(d.nonfinite.values()):>7} "
              f"{sum(d.lost.values()):>6}")
    idle = [n.get_fully_qualified_name() for n in comp.nodes
            if not hasattr(n, "finished") and n.diagnostics.processed == 0]
    if idle:
        print(f"warning: {', '.join(idle)} received nothing: does the source (or the bag) carry their input?")
    if lost:
        print(f"warning: {lost} messages were lost because a node fell behind its input "
              f"(replay slower with --rate, or give the node fewer points)")
