"""The whole suite (the ``all`` deployment) at real time on this machine: per
node its CPU share, latency and frames processed or dropped; the largest
replay rate at which nothing is dropped; and how many BSense base-station
sites the machine serves, adding sites until frames drop.

Every node runs in one process on one multi-threaded executor, as ``sense
run all`` runs them, torch on one thread. A node's CPU share is the CPU time
its callbacks used (the executor thread's CPU clock around each callback)
over the wall time of the trial; its latency is the median time from a
message's arrival in its callback to the callback's end. The process's CPU
share (every thread: callbacks, taking and decoding messages, the DDS
threads) says how much work lies outside the callbacks, and the machine's
load average, with its core count, how much CPU the suite had to share.

What counts as dropped, per node:

- a processing node: messages its publishers sent that never reached its
  callback (its queue overflowed while it was busy), malformed or non-finite
  inputs it refused;
- a live source: frames its simulation owed by the end of the trial that it
  had not published (it fell behind real time).

The papers give no figure for running the four systems together; there is
no paper column.
"""
from __future__ import annotations

import dataclasses

import functools
import os
import time

DEFAULT_RATES = (0.5, 1.0, 2.0, 4.0)
# each extra site: a BSense radar site (source, point and object level, tracker)
SITE_NODES = ("bs_radar_source", "noise_filter", "object_filter", "uav_tracker")


def add_arguments(parser):
    parser.add_argument("--seconds", type=float, default=30.0, help="wall time of each trial, s")
    parser.add_argument("--rates", type=float, nargs="+", default=list(DEFAULT_RATES),
                        help="replay rates tried in turn, x real time; stops at the first that drops frames")
    parser.add_argument("--max-sites", type=int, default=4, help="most BSense sites tried at real time")
    parser.add_argument("--draws", type=int, default=None,
                        help="DiffLoc draws per estimate (default: the parameter file's)")


def node_key(fqn: str) -> str:
    """``/fwa/bs0/fwa_bs_encoder`` -> ``fwa_bs0_fwa_bs_encoder`` (a JSON key stem)."""
    return fqn.strip("/").replace("/", "_")


class CpuMeter:
    """CPU seconds spent in one node's callbacks: every subscription and
    timer callback of the node wrapped by the executor thread's CPU clock
    (``time.thread_time``; time waiting for the interpreter lock is not CPU)."""

    def __init__(self, node):
        self.cpu_s = 0.0
        for entity in [*node.subscriptions, *node.timers]:
            entity.callback = self._wrap(entity.callback)

    def _wrap(self, callback):
        # functools.wraps: rclpy reads the callback's signature (message
        # alone, or with its info) through __wrapped__
        @functools.wraps(callback)
        def timed(*args):
            t0 = time.thread_time()
            try:
                return callback(*args)
            finally:
                self.cpu_s += time.thread_time() - t0
        return timed


def _source_behind(node) -> int:
    """Frames a live source owed by now, at its rate and period from its own
    first frame, but had not published (0 for a finished or bag-replaying
    source); the frame due at this very moment may still be in its timer's
    hands."""
    first = node.diagnostics.first_arrival
    if node.p.bag or node.finished or first is None:
        return 0
    owed = int((time.perf_counter() - first) * node.p.rate / node.frame_period_s()) + 1
    return max(0, owed - node.frames_published - 1)


def trial(dep, rate: float, seconds: float, extra_params: dict | None = None) -> tuple[dict, float]:
    """Run ``dep`` for ``seconds`` at ``rate``: per node fqn cpu_pct,
    latency_ms, processed, dropped; and the whole process's CPU share, %."""
    from sense_nodes.runtime.compose import compose

    comp = compose(dep, rate=rate, extra_params=extra_params)
    try:
        meters = {n.get_fully_qualified_name(): CpuMeter(n) for n in comp.nodes}
        sources = [n for n in comp.nodes if hasattr(n, "finished")]
        comp.spin(until=lambda: any(s.frames_published for s in sources))  # models loaded, delay over
        t0, cpu0 = time.monotonic(), time.process_time()
        comp.spin(seconds)
        wall = time.monotonic() - t0
        process_cpu_pct = 100.0 * (time.process_time() - cpu0) / wall
        out = {}
        for node in comp.nodes:
            d = node.diagnostics
            fqn = node.get_fully_qualified_name()
            dropped = sum(d.lost.values()) + sum(d.dropped.values()) + sum(d.nonfinite.values())
            if node in sources:
                dropped += _source_behind(node)
            out[fqn] = {"cpu_pct": 100.0 * meters[fqn].cpu_s / wall, "latency_ms": d.latency_ms(),
                        "processed": int(getattr(node, "frames_published", d.processed)), "dropped": int(dropped)}
        return out, process_cpu_pct
    finally:
        comp.close()


def with_sites(dep, sites: int):
    """``dep`` with ``sites - 1`` more BSense radar sites, each its own
    namespace (``/bs2``, ``/bs3``, ...) and scenario draw; returns the
    deployment and the overrides that give each site its seed."""
    from sense_nodes.runtime.deployment import NodeSpec
    extra, params = [], {}
    for k in range(2, sites + 1):
        ns = f"/bs{k}"
        extra += [NodeSpec(executable=n, name=n, namespace=ns, source=(n == "bs_radar_source")) for n in SITE_NODES]
        params[f"{ns}/bs_radar_source"] = {"seed": k, "publish_clock": False, "frame_id": "map"}
    return dataclasses.replace(dep, nodes=dep.nodes + tuple(extra)), params


def _print_trial(title: str, stats: dict, process_cpu_pct: float) -> None:
    print(f"\n{title}: process CPU {process_cpu_pct:.0f} % (callbacks {sum(s['cpu_pct'] for s in stats.values()):.0f} %), "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  {'node':<34} {'cpu_%':>6} {'latency_ms':>10} {'processed':>9} {'dropped':>7}")
    for fqn, s in stats.items():
        print(f"  {fqn:<34} {s['cpu_pct']:>6.1f} {s['latency_ms']:>10.1f} {s['processed']:>9} {s['dropped']:>7}",
              flush=True)


def _droppers(stats: dict) -> str:
    """The nodes that dropped frames in a trial, with their counts and CPU shares."""
    return ", ".join(f"{fqn} ({s['dropped']} frames, {s['cpu_pct']:.0f} % CPU, latency {s['latency_ms']:.0f} ms)"
                     for fqn, s in stats.items() if s["dropped"])


def main(args):
    import torch

    from sense_nodes.errors import UserError
    from sense_nodes.runtime.deployment import load
    if not args.seconds > 0 or args.max_sites < 1 or not all(r > 0 for r in args.rates):
        raise UserError(f"--seconds and --rates must be positive and --max-sites at least 1 "
                        f"(got {args.seconds}, {args.rates}, {args.max_sites})")
    torch.set_num_threads(1)
    dep = load("all")
    base = {"/diffloc/diffloc_server": {"draws": args.draws}} if args.draws else {}
    figures: dict = {"trial_s": args.seconds}

    real, process_cpu = trial(dep, 1.0, args.seconds, base)
    figures["process_cpu_pct"], figures["load_avg_1min"] = process_cpu, os.getloadavg()[0]
    figures["cores"] = os.cpu_count()
    _print_trial("real time (rate 1), one site per system", real, process_cpu)
    for fqn, s in real.items():
        for k, v in s.items():
            figures[f"{node_key(fqn)}_{k}"] = v
    figures["total_cpu_pct"] = sum(s["cpu_pct"] for s in real.values())
    figures["total_dropped"] = sum(s["dropped"] for s in real.values())

    figures["max_realtime_rate"] = 0.0
    for rate in sorted(args.rates):
        stats = real if rate == 1.0 else trial(dep, rate, args.seconds, base)[0]
        lost = sum(s["dropped"] for s in stats.values())
        print(f"rate {rate:g}: {lost} frames dropped, suite CPU {sum(s['cpu_pct'] for s in stats.values()):.0f} %",
              flush=True)
        if lost:
            print(f"  dropped by {_droppers(stats)}", flush=True)
            break
        figures["max_realtime_rate"] = rate

    figures["sites_per_centre"] = 0
    for sites in range(1, args.max_sites + 1):
        d, params = with_sites(dep, sites)
        stats = real if sites == 1 else trial(d, 1.0, args.seconds, {**base, **params})[0]
        lost = sum(s["dropped"] for s in stats.values())
        print(f"{sites} BSense site(s) at real time: {lost} frames dropped", flush=True)
        if lost:
            print(f"  dropped by {_droppers(stats)}", flush=True)
            break
        figures["sites_per_centre"] = sites
    return figures
