"""The one pattern every sense_nodes node follows.

- Parameters are declared from a table of :class:`Param` with descriptions and
  ranges; a value out of range (or not among the choices) is refused at start
  with a :class:`ParameterError` naming the parameter.
- Sensor streams use sensor-data QoS (best effort); results use reliable QoS,
  which RViz subscribes with by default.
- A parameter either takes effect when set while the node runs (``runtime``:
  the node's :meth:`SenseNode.on_parameters_changed` rebuilds what depends
  on it between callbacks) or is read-only then, and ``set_parameters``
  refuses it naming it.
- ``/diagnostics`` carries, once a second, the input rate, processing latency
  and the count of dropped (malformed) messages of every node.
- Subscriptions go through :meth:`SenseNode.subscribe`, whose callback catches
  a malformed message, logs it once per kind, counts it and keeps running.
- Output headers copy the input's ``header.stamp`` (:func:`stamped_like`).

Works on Jazzy and Kilted alike: no ``with rclpy.init()``.
"""
from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import InvalidParameterValueException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy)
from std_msgs.msg import Header

from sense_nodes.errors import MalformedMessage, NonFiniteInput  # noqa: F401 - the nodes' converters raise these
from sense_nodes.nodes.diagnostics import Diagnostics
from sense_nodes.nodes.finite import first_nonfinite

SENSOR_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                        reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=DurabilityPolicy.VOLATILE)
RESULT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                        reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
DIAGNOSTICS_PERIOD_S = 1.0


class ParameterError(ValueError):
    """A parameter value the node refuses; the message names the parameter."""


@dataclass(frozen=True)
class Param:
    """One declared parameter: name, default, description and its limits."""

    name: str
    default: Any
    description: str
    range: tuple[float, float] | None = None  # inclusive bounds for numbers
    choices: Sequence[str] | None = None      # allowed values for strings
    runtime: bool = False  # takes effect when set while the node runs; otherwise read-only then

    def descriptor(self) -> ParameterDescriptor:
        desc = self.description
        if self.choices:
            desc += f" (one of: {', '.join(self.choices)})"
        if not self.runtime:
            desc += " [read-only while running: set it at start]"
        d = ParameterDescriptor(name=self.name, description=desc, read_only=not self.runtime)
        if self.range is not None:
            lo, hi = self.range
            if isinstance(self.default, bool):
                raise TypeError(f"parameter '{self.name}': a bool takes no range")
            if isinstance(self.default, int):
                d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=0)]
            else:
                d.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
        return d

    def check(self, value) -> None:
        """Raise ParameterError when ``value`` breaks this parameter's limits."""
        if self.range is not None and not isinstance(value, bool) and isinstance(value, (int, float)):
            lo, hi = self.range
            if not lo <= value <= hi:
                raise ParameterError(
                    f"parameter '{self.name}' = {value} is out of range [{lo}, {hi}]: {self.description}")
        if self.choices and value not in self.choices:
            raise ParameterError(
                f"parameter '{self.name}' = '{value}' is not one of {list(self.choices)}")


def stamped_like(header: Header, frame_id: str | None = None) -> Header:
    """An output header carrying the input's stamp (and frame unless given)."""
    return Header(stamp=header.stamp, frame_id=header.frame_id if frame_id is None else frame_id)


class SenseNode(Node):
    """Base class: subclasses list their parameters in ``PARAMS``.

    ``self.p`` holds the declared values by name. In-process composition
    passes ``namespace``, ``cli_args`` and ``use_global_arguments=False``
    through to :class:`rclpy.node.Node`.
    """

    PARAMS: Sequence[Param] = ()
    DEFAULT_NAME = "sense_node"

    def __init_subclass__(cls, **kwargs):
        # A node refused at start (a bad parameter, a missing file) has already
        # made timers and topics: destroy it before the error leaves __init__,
        # or the middleware is left holding them.
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        def guarded(self, *args, **kw):
            try:
                init(self, *args, **kw)
            except BaseException:
                if not getattr(self, "_destroyed_on_error", False) and getattr(self, "_SenseNode__ready", False):
                    self._destroyed_on_error = True
                    self.destroy_node()
                raise

        guarded.__doc__ = init.__doc__
        cls.__init__ = guarded

    def __init__(self, node_name: str | None = None, **node_kwargs):
        self.__ready = False
        super().__init__(node_name or self.DEFAULT_NAME, **node_kwargs)
        self.__ready = True  # the rclpy node exists: destroy it if the rest of __init__ fails
        self._params = {p.name: p for p in self.all_params()}
        self.p = type("Params", (), {})()
        for spec in self._params.values():
            self._widen_override(spec)
            self._declare(spec)
        self.add_pre_set_parameters_callback(self._widen_updates)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.diagnostics = Diagnostics()
        self._logged_kinds: set[str] = set()
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", RESULT_QOS)
        self._diag_timer = self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)

    # --- parameters ---------------------------------------------------------
    @classmethod
    def all_params(cls) -> tuple[Param, ...]:
        """Every parameter the node declares (subclass bases may add theirs)."""
        return tuple(cls.PARAMS)

    @staticmethod
    def _widened(spec: Param, param: Parameter) -> Parameter:
        """An integer given for a float parameter (``rate:=2``, ``--set
        ...:rate=2``) as the float it means; rclpy would refuse the type."""
        if (isinstance(spec.default, float) and param.type_ == Parameter.Type.INTEGER):
            return Parameter(param.name, Parameter.Type.DOUBLE, float(param.value))
        return param

    def _widen_override(self, spec: Param) -> None:
        # rclpy keeps start-up overrides in this dict and has no hook before
        # it checks their types against the declaration
        given = self._parameter_overrides.get(spec.name)
        if given is not None:
            self._parameter_overrides[spec.name] = self._widened(spec, given)

    def _widen_updates(self, params: list) -> list:
        return [self._widened(self._params[p.name], p) if p.name in self._params else p for p in params]

    def _declare(self, spec: Param) -> None:
        try:
            value = self.declare_parameter(spec.name, spec.default, spec.descriptor()).value
        except InvalidParameterValueException as exc:
            raise ParameterError(
                f"{self.get_fully_qualified_name()}: parameter '{spec.name}' refused: {exc}. "
                f"Allowed: {self._describe_limits(spec)}") from None
        except rclpy.exceptions.InvalidParameterTypeException as exc:
            raise ParameterError(
                f"{self.get_fully_qualified_name()}: parameter '{spec.name}' has the wrong type: {exc}") from None
        try:
            spec.check(value)
        except ParameterError as exc:
            raise ParameterError(f"{self.get_fully_qualified_name()}: {exc}") from None
        setattr(self.p, spec.name, value)

    @staticmethod
    def _describe_limits(spec: Param) -> str:
        if spec.range is not None:
            return f"[{spec.range[0]}, {spec.range[1]}]"
        if spec.choices:
            return f"one of {list(spec.choices)}"
        return f"a value of type {type(spec.default).__name__}"

    def _on_set_parameters(self, params) -> SetParametersResult:
        ours = [p for p in params if p.name in self._params]
        for param in ours:
            spec = self._params[param.name]
            if not spec.runtime:  # rclpy refuses read-only ones first; a subclass table may not
                return SetParametersResult(successful=False, reason=(
                    f"parameter '{param.name}' is read-only while the node runs: restart it with the new value"))
            try:
                spec.check(param.value)
            except ParameterError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        if not ours:
            return SetParametersResult(successful=True)
        before = {p.name: getattr(self.p, p.name) for p in ours}
        for param in ours:
            setattr(self.p, param.name, param.value)
        try:
            self.on_parameters_changed({p.name for p in ours})
        except ParameterError as exc:
            for name, value in before.items():
                setattr(self.p, name, value)
            self.on_parameters_changed(set(before))
            return SetParametersResult(successful=False, reason=str(exc))
        self.get_logger().info("parameters set: " + ", ".join(f"{p.name}={p.value!r}" for p in ours))
        return SetParametersResult(successful=True)

    def on_parameters_changed(self, names: set[str]) -> None:
        """Rebuild what depends on the runtime parameters ``names`` (their new
        values are in ``self.p``). Runs in the node's callback group, so the
        swap happens between message callbacks. Raise ParameterError to
        refuse the change."""

    def effective_parameters(self) -> dict[str, Any]:
        """The values the node computes with now, read from its live
        configuration objects where it has them (tests compare these with
        what was set)."""
        return {name: getattr(self.p, name) for name in self._params}

    # --- subscriptions ------------------------------------------------------
    def subscribe(self, msg_type, topic: str, callback: Callable, qos: QoSProfile = SENSOR_QOS,
                  kind: str | None = None, primary: bool = True, **kwargs):
        """Subscribe with a callback that never takes the node down.

        A :class:`MalformedMessage` (what the converters raise for input
        they cannot use) is logged at WARN once per kind and counted as
        dropped; any other exception is a bug, not bad input (numpy's shape
        errors are ValueErrors too): it is logged at ERROR with its
        traceback once per kind and counted under ``errors``, and the node
        keeps running. Processing time is
        recorded for the diagnostics of ``primary`` inputs only (the stream
        the node processes; side inputs such as tracks fed back or truth
        would count each frame twice).
        """
        label = kind or topic
        last_seq: dict[bytes, int] = {}

        def guarded(msg, info):
            t0 = time.perf_counter()
            self._count_lost(label, info, last_seq)
            try:
                callback(msg)
            except MalformedMessage as exc:
                self.drop(label, exc)
            except Exception as exc:  # noqa: BLE001 - a bug must not stop the pipeline
                key = f"{label}:{type(exc).__name__}"
                self.diagnostics.errors[key] += 1
                if key not in self._logged_kinds:
                    self._logged_kinds.add(key)
                    self.get_logger().error(
                        f"error handling a message on {label} (logged once, counted in /diagnostics): "
                        f"{exc}\n{traceback.format_exc()}")
            else:
                if primary:
                    self.diagnostics.record(t0)

        return self.create_subscription(msg_type, topic, guarded, qos, **kwargs)

    def _count_lost(self, label: str, info, last_seq: dict) -> None:
        """Count the messages a publisher sent that never reached this
        callback: gaps in its publication sequence numbers (the queue
        overflowed while the node was busy)."""
        try:
            seq = int(info["publication_sequence_number"])
            gid = bytes(info["publisher_gid"]["data"])
        except (KeyError, TypeError, ValueError):
            return  # a middleware without sequence numbers: nothing to count
        prev = last_seq.get(gid)
        last_seq[gid] = seq
        if prev is not None and seq > prev + 1:
            self.diagnostics.lost[label] += seq - prev - 1
            key = f"lost:{label}"
            if key not in self._logged_kinds:
                self._logged_kinds.add(key)
                self.get_logger().warning(
                    f"lost {seq - prev - 1} messages on {label}: the node fell behind its input "
                    f"(further losses are only counted in /diagnostics)")

    def drop(self, kind: str, reason: Exception | str) -> None:
        """Count a dropped input message and log the first of each kind."""
        key = f"{kind}:{type(reason).__name__}" if isinstance(reason, Exception) else kind
        self.diagnostics.dropped[kind] += 1
        if key not in self._logged_kinds:
            self._logged_kinds.add(key)
            self.get_logger().warning(
                f"dropped a malformed message on {kind}: {reason} "
                f"(further ones of this kind are only counted in /diagnostics)")

    def count_nonfinite(self, kind: str, n: int) -> None:
        """Count ``n`` input items (points, detections, frames) dropped at the
        converter for holding a NaN or an infinity; log the first of each kind."""
        if n <= 0:
            return
        self.diagnostics.nonfinite[kind] += int(n)
        key = f"nonfinite:{kind}"
        if key not in self._logged_kinds:
            self._logged_kinds.add(key)
            self.get_logger().warning(
                f"dropped {n} {kind} holding non-finite values (further ones are only counted in /diagnostics)")

    def load_model(self, load: Callable[[], Any], param: str = "checkpoint", hint: str = "") -> Any:
        """Run a model loader with torch on the node's ``cpu_threads`` (when
        it declares one); a file that cannot be used is refused naming
        ``param`` (and ``hint``: how to make one)."""
        threads = int(getattr(self.p, "cpu_threads", 0) or 0)
        if threads:
            import torch
            torch.set_num_threads(threads)
        try:
            return load()
        except ParameterError:
            raise  # already names its parameter (a loader that reads another one)
        except (ValueError, OSError, KeyError, RuntimeError) as exc:  # CheckpointError is a ValueError
            raise ParameterError(f"{self.get_fully_qualified_name()}: parameter '{param}': {exc}{hint}") from None

    # --- publishing ---------------------------------------------------------
    def publish(self, publisher, msg) -> bool:
        """Publish ``msg`` unless it holds a non-finite value; a refused output
        is logged once per topic and counted, never sent."""
        where = first_nonfinite(msg)
        if where is None:
            publisher.publish(msg)
            return True
        topic = publisher.topic_name
        self.diagnostics.suppressed[topic] += 1
        key = f"suppressed:{topic}"
        if key not in self._logged_kinds:
            self._logged_kinds.add(key)
            self.get_logger().error(f"not publishing a message on {topic}: {where} is not finite "
                                    f"(counted in /diagnostics as outputs_suppressed)")
        return False

    # --- diagnostics --------------------------------------------------------
    def status_phrase(self) -> str:
        """A few words for the periodic status line of `sense run`."""
        d = self.diagnostics
        bad = sum(d.dropped.values()) + sum(d.nonfinite.values()) + sum(d.lost.values())
        return f"{d.processed} in" + (f", {bad} dropped/lost" if bad else "")

    def diagnostic_values(self) -> dict[str, Any]:
        """Extra key/values for /diagnostics; subclasses may add their own."""
        return {}

    def _publish_diagnostics(self) -> None:
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [self.diagnostics.status(self.get_fully_qualified_name(), self.diagnostic_values())]
        self._diag_pub.publish(msg)


def run_node(node_cls: type[SenseNode], args: list[str] | None = None) -> int:
    """Entry point of a node executable: init, spin until shutdown, clean up."""
    rclpy.init(args=args)
    node = None
    try:
        node = node_cls()
        rclpy.spin(node)
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
