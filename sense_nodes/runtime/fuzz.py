"""The standing hostile-input harness behind ``sense fuzz``.

Three kinds of attack, each scored by what a user would suffer:

- **messages**: every subscribing node of every deployment receives hostile
  messages on each of its inputs: real messages of the deployment (captured
  from a short live run) mutated (NaN, infinities, 3e38, values out of any
  physical range, arrays cut or lengthened, dimensions lied about, stamps
  thrown decades ahead or back), and messages built from scratch with random
  fields. Every output of every node is watched: a non-finite value
  published, a callback error or an exception out of the executor counts.
- **files**: every model loader gets a checkpoint that carries a pickled
  object whose unpickling would create a marker file, truncated and
  bit-flipped copies; the marker must never appear and each refusal must be
  the loader's own error.
- **bags**: every source gets truncated, zeroed and garbage bags; each must
  be refused or replayed to a clean stop.

The noise filter runs on a model file of its own during the message attack;
``model_overwritten_by_bad_input`` counts a changed file. Memory is read
once a quarter of each deployment's attack has filled the nodes' bounded
caches, and at its end (``rss_growth_mb``: growth, not the caches' size).
"""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from sense_nodes.runtime.hostile_messages import mutate, random_message

# Memory may grow by less than this over an attack (allocator noise), no more.
RSS_LIMIT_MB = 50.0


def _rss_mb() -> float:
    """Resident memory after a collection, with freed heap handed back to
    the system, so the reading is what is still held, not what the
    allocator kept for later."""
    import ctypes
    import gc
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the reading is only noisier
        pass
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclasses.dataclass
class FuzzReport:
    cases: int = 0
    message_cases: int = 0
    file_cases: int = 0
    bag_cases: int = 0
    crashes: int = 0
    nonfinite_published: int = 0
    code_executed: int = 0
    model_overwritten_by_bad_input: int = 0
    drops_counted: int = 0
    rss_growth_mb: float = 0.0
    outputs_seen: int = 0
    seconds: float = 0.0
    failures: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)
    growth_by_deployment: dict = dataclasses.field(default_factory=dict)

    def figures(self) -> dict:
        d = dataclasses.asdict(self)
        d["failures"] = "; ".join(self.failures[:10])
        d["skipped"] = "; ".join(self.skipped)
        for name, mb in d.pop("growth_by_deployment").items():
            d[f"rss_growth_{name}_mb"] = mb
        return d


def _fuzz_deployment(name: str, cases: int, rng, report: FuzzReport, workdir: Path, progress) -> None:
    """Capture seeds from a short live run, then attack every subscribing node."""
    from sense_nodes.nodes.base import ParameterError
    from sense_nodes.runtime.compose import compose
    from sense_nodes.runtime.deployment import load

    dep = load(name)
    extra, model_file = _attack_settings(dep, workdir)
    model_bytes = model_file.read_bytes() if model_file else None
    try:
        comp = compose(dep, extra_params=extra)
    except ParameterError as exc:  # a deployment without its data or model cannot start: say so
        report.skipped.append(f"{name}: {exc}")
        return
    try:
        seeds: dict[str, list] = {}
        outputs = {"seen": 0, "bad": []}
        for node in comp.nodes:  # watch what the nodes themselves publish, at the call
            for pub in node.publishers:
                if pub.topic_name not in ("/rosout", "/parameter_events"):
                    pub.publish = _watched(pub.publish, pub.topic_name, seeds, outputs)
        sources = [n for n in comp.nodes if hasattr(n, "finished")]
        _spin(comp, until=lambda: all(s.finished for s in sources), timeout_s=60)
        _spin(comp, timeout_s=1.5)
        targets = _targets(comp, sources)
        for s in sources:
            comp.executor.remove_node(s)
        if targets:
            _attack(name, comp, targets, seeds, cases, rng, report, progress)
            _tally(name, comp, outputs, report)
        if model_file is not None and model_file.read_bytes() != model_bytes:
            report.model_overwritten_by_bad_input += 1
            report.failures.append(f"{name}: noise model file rewritten under attack")
    finally:
        comp.close()


def _attack_settings(dep, workdir: Path):
    """Parameter overrides for an attack: the noise filter on a model file of
    its own (to see whether input rewrites it), sources short and fast."""
    from sense_nodes.core.bsense.noise_model import NoiseModel
    extra, model_file = {}, None
    for spec in dep.nodes:
        if spec.executable == "noise_filter":
            from sense_nodes.data.bs_sim import library
            sc = library.scenario("uav_free_calib")
            model_file = workdir / f"{dep.name}_noise_model.npz"
            NoiseModel().fit([sc.frame(k).points for k in range(120)]).save(model_file)
            extra[spec.fqn] = {"model_file": str(model_file), "update_interval_s": 5.0, "refit_frames": 20}
        if spec.source:
            # enough frames to fill the nodes' bounded caches (a round-2 store
            # keeps 8 instants) before memory is first read
            extra[spec.fqn] = {"rate": 8.0, "max_frames": 12, "start_delay_s": 0.5}
    return extra, model_file


def _spin(comp, until=None, timeout_s: float = 1.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not (until is not None and until()):
        comp.executor.spin_once(timeout_sec=0.05)


def _targets(comp, sources) -> list:
    """(node, subscription, attacker's publisher) for every input of every
    node but the sources."""
    from rclpy.node import Node
    probe = Node("fuzz_probe", context=comp.context)
    comp.executor.add_node(probe)
    targets = []
    for node in comp.nodes:
        if node in sources:
            continue
        for sub in node.subscriptions:
            if sub.topic_name == "/clock" or sub.topic_name.startswith("/parameter"):
                continue
            targets.append((node, sub, probe.create_publisher(sub.msg_type, sub.topic_name, sub.qos_profile)))
    return targets


def _attack(name, comp, targets, seeds, cases, rng, report: FuzzReport, progress) -> None:
    """``cases`` hostile messages round the targets: a mutated seed where the
    topic has one (three in four), else a random message; memory is read
    once a quarter of the attack has filled every bounded cache (frames kept
    for refits or for a second round), and at its end."""
    rss0 = None
    for k in range(cases):
        if k == cases // 4:
            rss0 = _rss_mb()
        node, sub, pub = targets[k % len(targets)]
        pool = seeds.get(sub.topic_name) or []
        if pool and rng.random() < 0.75:
            msg = mutate(pool[int(rng.integers(0, len(pool)))], rng)
        else:
            msg = random_message(sub.msg_type, rng)
        try:
            pub.publish(msg)
            for _ in range(3):
                comp.executor.spin_once(timeout_sec=0.01)
        except Exception as exc:  # noqa: BLE001 - whatever escapes the executor is a crash
            report.crashes += 1
            report.failures.append(f"{name}:{sub.topic_name}: {type(exc).__name__}: {exc}")
        report.message_cases += 1
        if progress is not None:
            progress.update(1)
    _spin(comp, timeout_s=1.0)
    if rss0 is not None:
        growth = _rss_mb() - rss0
        report.rss_growth_mb = max(report.rss_growth_mb, growth)
        report.growth_by_deployment[name] = round(growth, 1)
        if growth >= RSS_LIMIT_MB:
            report.failures.append(f"{name}: memory grew {growth:.0f} MB under attack")


def _tally(name, comp, outputs, report: FuzzReport) -> None:
    """Non-finite outputs seen at publish, callback errors and drops counted by the nodes."""
    report.outputs_seen += outputs["seen"]
    for topic, where in outputs["bad"]:
        report.nonfinite_published += 1
        report.failures.append(f"{name}: non-finite {topic} {where}")
    for node in comp.nodes:
        d = node.diagnostics
        errors = sum(d.errors.values())
        report.crashes += errors
        if errors:
            report.failures.append(f"{node.get_fully_qualified_name()}: callback errors {dict(d.errors)}")
        report.drops_counted += sum(d.dropped.values()) + sum(d.nonfinite.values())


def _watched(publish, topic, seeds, outputs):
    """``publish`` that also checks the message as it goes out (its first
    ones kept as seeds); ``outputs`` collects (topic, where) of each
    non-finite value and counts the rest, keeping no message."""
    from sense_nodes.nodes.finite import first_nonfinite

    def wrapper(msg):
        if not isinstance(msg, (bytes, bytearray, memoryview)):  # replayed CDR bytes are the bag's
            outputs["seen"] += 1
            where = first_nonfinite(msg)
            if where is not None:
                outputs["bad"].append((topic, where))
            pool = seeds.setdefault(topic, [])
            if len(pool) < 20:
                pool.append(msg)
        return publish(msg)
    return wrapper


def _loaders():
    """(name, path of a good model file, function that loads a path)."""
    from sense_nodes.core.bsense.trajformer import DEFAULT_CHECKPOINT as TRAJFORMER
    from sense_nodes.core.bsense.trajformer import load_checkpoint as load_trajformer
    from sense_nodes.core.imaging.imager import CHECKPOINT_DIR as IMAGING_DIR
    from sense_nodes.core.imaging.training import load_network
    from sense_nodes.core.diffloc.estimator import Estimator
    from sense_nodes.core.diffloc.models import default_path as diffloc_model
    from sense_nodes.core.fwa.pipeline import CHECKPOINT_DIR as FWA_DIR
    from sense_nodes.core.fwa.pipeline import load_model as load_fwa
    from sense_nodes.core.bsense.boosted import BOOSTED_CHECKPOINT, load_verifier
    out = [("trajformer", Path(TRAJFORMER), load_trajformer),
           ("boosted_verifier", BOOSTED_CHECKPOINT, load_verifier),
           ("imaging", IMAGING_DIR / "net9.pt", load_network)]
    out += [(f"fwa_{name}", FWA_DIR / f"{name}.pt", lambda p, k=f"fwa_{name}": load_fwa(p, k))
            for name in ("detector", "ulocnet", "culocnet")]
    if diffloc_model("ct").exists():  # trained into the cache (none is shipped)
        out.append(("diffloc", diffloc_model("ct"), Estimator.from_checkpoint))
    return out


def _fuzz_files(rng, report: FuzzReport, workdir: Path, cases_each: int) -> None:
    import pickle

    import torch

    from sense_nodes.core.checkpoint import CheckpointError
    marker = workdir / "code_ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    for name, good, load in _loaders():
        raw = Path(good).read_bytes()
        variants = []
        payload = torch.load(good, weights_only=True)
        payload.setdefault("extra", {})["x"] = Payload()
        evil = workdir / f"{name}_evil.pt"
        torch.save(payload, evil, pickle_module=pickle)
        variants.append(evil)
        for i in range(cases_each):
            data = bytearray(raw)
            if i % 2:
                data = data[: int(rng.integers(0, len(data)))]
            else:
                for at in rng.integers(0, len(data), 8):
                    data[at] ^= 1 << int(rng.integers(0, 8))
            p = workdir / f"{name}_bad{i}.pt"
            p.write_bytes(bytes(data))
            variants.append(p)
        for p in variants:
            report.file_cases += 1
            try:
                load(p)
                if p == evil:
                    report.failures.append(f"{name}: a checkpoint with a pickled object loaded")
            except (CheckpointError, ValueError):
                pass
            except Exception as exc:  # noqa: BLE001
                report.crashes += 1
                report.failures.append(f"{name} loader: {type(exc).__name__}: {exc}")
        if marker.exists():
            report.code_executed += 1
            marker.unlink()


N_BAG_DAMAGES = 7


def _fuzz_bags(rng, report: FuzzReport, workdir: Path) -> None:
    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    from sense_nodes.data import bags
    from sense_nodes.data.bs_sim import library
    from sense_nodes.nodes.base import ParameterError
    from sense_nodes.nodes.bs_radar_source import BsRadarSource

    good = workdir / "good_bag"
    sc = library.scenario("uav_free_calib")
    with bags.BagWriter(good, overwrite=True) as w:
        for k in range(30):
            t = 10**9 + k * 640_000_000
            w.write("/bs/points", "sensor_msgs/msg/PointCloud2", t, bags.pointcloud2(sc.frame(k).points, t, "bs"))
    mcap = next(good.glob("*.mcap"))
    raw = mcap.read_bytes()
    damages = [lambda d: d[: len(d) // 3], lambda d: d[: len(d) - 40], lambda d: bytes(len(d)),
               lambda d: rng.bytes(len(d))]
    for frac in (0.2, 0.5, 0.8):
        damages.append(lambda d, f=frac: d[: int(f * len(d))] + bytes(4096) + d[int(f * len(d)) + 4096:])
    assert len(damages) == N_BAG_DAMAGES
    ctx = Context()
    rclpy.init(context=ctx)
    try:
        for i, damage in enumerate(damages):
            bag = workdir / f"bad_bag{i}"
            shutil.copytree(good, bag)
            next(bag.glob("*.mcap")).write_bytes(damage(raw))
            report.bag_cases += 1
            node = None
            try:
                node = BsRadarSource(context=ctx, namespace=f"/fz{i}", parameter_overrides=[
                    Parameter("bag", value=str(bag)), Parameter("rate", value=1000.0),
                    Parameter("start_delay_s", value=0.0), Parameter("publish_clock", value=False)])
                from rclpy.executors import SingleThreadedExecutor
                ex = SingleThreadedExecutor(context=ctx)
                ex.add_node(node)
                end = time.monotonic() + 5
                while not node.finished and time.monotonic() < end:
                    ex.spin_once(timeout_sec=0.01)
                ex.shutdown()
                report.crashes += sum(node.diagnostics.errors.values())
            except ParameterError:
                pass
            except Exception as exc:  # noqa: BLE001
                report.crashes += 1
                report.failures.append(f"bag {i}: {type(exc).__name__}: {exc}")
            finally:
                if node is not None:
                    node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)


def run_fuzz(cases: int = 300, seed: int = 0, deployments: list[str] | None = None,
             progress: bool = True) -> dict:
    """Attack every deployment, loader and source; the figures of the run."""
    from tqdm import tqdm

    from sense_nodes.runtime.deployment import names
    rng = np.random.default_rng(seed)
    report = FuzzReport()
    t0 = time.perf_counter()
    deps = deployments or names()
    workdir = Path(tempfile.mkdtemp(prefix="sense-fuzz-"))
    try:
        files_each = max(2, cases // 50)
        fixed = len(_loaders()) * (files_each + 1) + N_BAG_DAMAGES
        per_dep = max(1, math.ceil((cases - fixed) / len(deps)))
        with tqdm(total=per_dep * len(deps), desc="hostile messages", unit="msg", disable=not progress) as bar:
            for name in deps:
                _fuzz_deployment(name, per_dep, rng, report, workdir, bar)
        _fuzz_files(rng, report, workdir, cases_each=files_each)
        _fuzz_bags(rng, report, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report.cases = report.message_cases + report.file_cases + report.bag_cases
    report.seconds = time.perf_counter() - t0
    return report.figures()
