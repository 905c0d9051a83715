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
import importlib
import math
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

# Memory may grow by less than this over an attack (allocator noise), no more.
RSS_LIMIT_MB = 50.0
FLOAT_ATTACKS = (float("nan"), float("inf"), float("-inf"), 3e38, -3e38, 1e300, -0.0, 5e-324)
INT_BOUNDS = {"int8": (-2**7, 2**7 - 1), "uint8": (0, 2**8 - 1), "byte": (0, 255), "octet": (0, 255),
              "char": (0, 255), "int16": (-2**15, 2**15 - 1), "uint16": (0, 2**16 - 1),
              "int32": (-2**31, 2**31 - 1), "uint32": (0, 2**32 - 1), "int64": (-2**63, 2**63 - 1),
              "uint64": (0, 2**64 - 1)}
_SEQ = re.compile(r"^sequence<(.+?)(?:, ?\d+)?>$")
_ARR = re.compile(r"^(.+)\[(\d+)\]$")
_BOUNDED_STR = re.compile(r"^(w?string)<=\d+$")


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


def _msg_class(type_name: str):
    pkg, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


def _random_scalar(kind: str, rng: np.random.Generator):
    if kind in ("float", "double"):
        return float(rng.choice(FLOAT_ATTACKS)) if rng.random() < 0.5 else float(rng.normal(0, 10 ** rng.integers(0, 6)))
    if kind in INT_BOUNDS:
        lo, hi = INT_BOUNDS[kind]
        pick = rng.integers(0, 4)
        return int((lo, hi, 0, int(rng.integers(max(lo, -1000), min(hi, 1000) + 1)))[pick])
    if kind == "boolean":
        return bool(rng.integers(0, 2))
    if kind in ("string", "wstring") or _BOUNDED_STR.match(kind):
        return rng.choice(["", "bs0", "ue1", "cpe3", "x" * 300, "bs-1", "bs99999999999", "\u00e9\u4e2d"])
    raise TypeError(kind)


def random_value(type_name: str, rng: np.random.Generator, depth: int = 0):
    """A random value of a ROS field type (nested messages built recursively)."""
    m = _SEQ.match(type_name)
    if m:
        n = int(rng.choice([0, 1, 2, 3, 8, 40])) if depth < 3 else 0
        return [random_value(m.group(1), rng, depth + 1) for _ in range(n)]
    m = _ARR.match(type_name)
    if m:
        return [random_value(m.group(1), rng, depth + 1) for _ in range(int(m.group(2)))]
    if "/" in type_name:
        return random_message(_msg_class(type_name), rng, depth + 1)
    return _random_scalar(type_name, rng)


def random_message(cls, rng: np.random.Generator, depth: int = 0):
    msg = cls()
    for name, kind in cls.get_fields_and_field_types().items():
        try:
            setattr(msg, name, random_value(kind, rng, depth))
        except (AssertionError, TypeError, ValueError):
            pass  # rclpy refuses a value its type cannot hold: keep the default
    return msg


def mutate(msg, rng: np.random.Generator, rate: float = 0.3):
    """A hostile copy of a real message: float values replaced by attacks,
    arrays cut or padded, counts and stamps falsified."""
    import copy
    out = copy.deepcopy(msg)
    _mutate_inplace(out, rng, rate)
    return out


def _mutate_inplace(msg, rng, rate) -> None:
    for name, kind in msg.get_fields_and_field_types().items():
        value = getattr(msg, name)
        if rng.random() > rate and not hasattr(value, "get_fields_and_field_types") \
                and not (isinstance(value, list) and value and hasattr(value[0], "get_fields_and_field_types")):
            continue
        try:
            if name == "stamp" or kind == "builtin_interfaces/Time":
                value.sec = int(rng.choice([2**31 - 1, -2**31, 0, value.sec - 86400 * 365]))
            elif kind in ("float", "double"):
                setattr(msg, name, float(rng.choice(FLOAT_ATTACKS)))
            elif kind in INT_BOUNDS:
                setattr(msg, name, _random_scalar(kind, rng))
            elif hasattr(value, "get_fields_and_field_types"):
                _mutate_inplace(value, rng, rate)
            elif kind == "sequence<uint8>":  # raw bytes (point-cloud data): cut or poison
                arr = np.frombuffer(bytes(value), np.uint8).copy()
                if arr.size and rng.random() < 0.5:
                    arr = arr[: int(rng.integers(0, arr.size))]
                elif arr.size >= 4:
                    f32 = arr[: arr.size // 4 * 4].view(np.float32)
                    idx = rng.integers(0, f32.size, max(1, f32.size // 50))
                    f32[idx] = rng.choice(np.array(FLOAT_ATTACKS[:5], np.float32), idx.size)
                setattr(msg, name, arr.tobytes())
            elif _SEQ.match(kind) or _ARR.match(kind):
                seq = list(value)
                inner = (_SEQ.match(kind) or _ARR.match(kind)).group(1)
                if seq and hasattr(seq[0], "get_fields_and_field_types"):
                    for item in seq:
                        _mutate_inplace(item, rng, rate)
                    if rng.random() < rate:
                        seq = seq[: int(rng.integers(0, len(seq) + 1))]
                elif inner in ("float", "double") and seq:
                    arr = np.asarray(seq, np.float64)
                    idx = rng.integers(0, arr.size, max(1, arr.size // 20))
                    arr[idx] = rng.choice(FLOAT_ATTACKS, idx.size)
                    seq = arr.tolist()
                    if _SEQ.match(kind) and rng.random() < 0.3:
                        seq = seq[: int(rng.integers(0, len(seq) + 1))]
                setattr(msg, name, seq)
        except (AssertionError, TypeError, ValueError, OverflowError):
            pass


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
    from rclpy.node import Node

    from sense_nodes.core.bsense.noise_model import NoiseModel
    from sense_nodes.runtime.compose import compose
    from sense_nodes.runtime.deployment import load

    dep = load(name)
    extra = {}
    model_file = None
    for spec in dep.nodes:
        if spec.executable == "noise_filter":
            from sense_nodes.data.bs_sim import library
            sc = library.scenario("uav_free_calib")
            model_file = workdir / f"{name}_noise_model.npz"
            NoiseModel().fit([sc.frame(k).points for k in range(120)]).save(model_file)
            extra[spec.fqn] = {"model_file": str(model_file), "update_interval_s": 5.0, "refit_frames": 20}
        if spec.source:
            # enough frames to fill the nodes' bounded caches (a round-2 store
            # keeps 8 instants) before memory is first read
            extra[spec.fqn] = {"rate": 8.0, "max_frames": 12, "start_delay_s": 0.5}
    model_bytes = model_file.read_bytes() if model_file else None
    from sense_nodes.nodes.base import ParameterError
    try:
        comp = compose(dep, extra_params=extra)
    except ParameterError as exc:  # a deployment without its data or model cannot start: say so
        report.skipped.append(f"{name}: {exc}")
        return
    try:
        probe = Node("fuzz_probe", context=comp.context)
        comp.executor.add_node(probe)
        seeds: dict[str, list] = {}
        outputs = {"seen": 0, "bad": []}
        for node in comp.nodes:  # watch what the nodes themselves publish, at the call
            for pub in node.publishers:
                if pub.topic_name in ("/rosout", "/parameter_events"):
                    continue
                pub.publish = _watched(pub.publish, pub.topic_name, seeds, outputs)
        sources = [n for n in comp.nodes if hasattr(n, "finished")]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(s.finished for s in sources):
            comp.executor.spin_once(timeout_sec=0.05)
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            comp.executor.spin_once(timeout_sec=0.05)
        targets = []
        for node in comp.nodes:
            if node in sources:
                continue
            for sub in node.subscriptions:
                if sub.topic_name == "/clock" or sub.topic_name.startswith("/parameter"):
                    continue
                pub = probe.create_publisher(sub.msg_type, sub.topic_name, sub.qos_profile)
                targets.append((node, sub, pub))
        for s in sources:
            comp.executor.remove_node(s)
        if not targets:
            return
        # memory is read once a quarter of the attack has filled every
        # bounded cache (frames kept for refits or for a second round)
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
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            comp.executor.spin_once(timeout_sec=0.05)
        if rss0 is not None:
            growth = _rss_mb() - rss0
            report.rss_growth_mb = max(report.rss_growth_mb, growth)
            report.growth_by_deployment[name] = round(growth, 1)
            if growth >= RSS_LIMIT_MB:
                report.failures.append(f"{name}: memory grew {growth:.0f} MB under attack")
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
        if model_file is not None and model_file.read_bytes() != model_bytes:
            report.model_overwritten_by_bad_input += 1
            report.failures.append(f"{name}: noise model file rewritten under attack")
    finally:
        comp.close()


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
    from sense_nodes.core.bsense.trajformer import load_checkpoint as load_trajformer
    from sense_nodes.core.imaging.imager import CHECKPOINT_DIR as IMAGING_DIR
    from sense_nodes.core.imaging.training import load_network
    from sense_nodes.nodes.uav_tracker import DEFAULT_CHECKPOINT as TRAJFORMER
    from sense_nodes.core.diffloc.estimator import Estimator
    from sense_nodes.core.diffloc.models import default_path as diffloc_model
    from sense_nodes.core.fwa.pipeline import CHECKPOINT_DIR as FWA_DIR
    from sense_nodes.core.fwa.pipeline import load_model as load_fwa
    out = [("trajformer", Path(TRAJFORMER), load_trajformer),
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
