"""Source nodes: publish a live simulation, or replay a rosbag2 file.

A source declares its outputs (relative topic name -> message type). Live, the
subclass makes one frame per period, stamped with the simulation's own time,
which the source publishes on ``/clock`` as a simulator does (the other nodes
of a deployment run with ``use_sim_time``); from a bag (parameter ``bag``), every
bag topic whose last name segment matches an output is republished as the
CDR bytes stored in the bag (no decode, no re-encode), at ``rate`` times the
recorded speed, with ``/clock`` so that downstream nodes running with
``use_sim_time`` see the recorded time. A bag replayed through a deployment
therefore gives its nodes the very messages of the live run.
"""
from __future__ import annotations

import importlib
import time
from typing import Iterator

from builtin_interfaces.msg import Time
from rosgraph_msgs.msg import Clock
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message

from sense_nodes.data import bags
from sense_nodes.nodes.base import ParameterError, Param, SenseNode
from sense_nodes.nodes.markers import truth_markers

CLOCK_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.VOLATILE)


def message_class(msgtype: str):
    """rclpy class of ``pkg/msg/Name``."""
    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


class SourceNode(SenseNode):
    """Base of every source node. Subclasses set ``OUTPUTS`` and ``PERIOD_S``
    and implement :meth:`live_frame`."""

    OUTPUTS: dict[str, tuple[str, QoSProfile]] = {}
    PERIOD_S = 1.0
    # an output "truth_markers" draws each "truth" message for RViz, spheres this big
    TRUTH_MARKER_M = 12.0
    SOURCE_PARAMS = (
        Param("bag", "", "rosbag2 file to replay instead of the live simulation ('' = live)"),
        Param("rate", 1.0, "playback speed relative to real time (live and bag)", range=(0.01, 1000.0),
              runtime=True),
        Param("loop", False, "start the bag again when it ends", runtime=True),
        Param("max_frames", 0, "stop after this many frames (0 = no limit)", range=(0, 10_000_000), runtime=True),
        Param("publish_clock", True, "publish /clock (one source per deployment should)"),
        Param("start_delay_s", 1.0, "wait this long before the first frame, so subscribers in the graph "
              "are matched and nothing is lost at the start", range=(0.0, 600.0)),
    )

    def __init__(self, node_name: str | None = None, **kwargs):
        super().__init__(node_name, **kwargs)
        self.pubs = {name: self.create_publisher(message_class(t), name, qos)
                     for name, (t, qos) in self.OUTPUTS.items()}
        self.frames_published = 0
        self.sent: dict[str, int] = {}  # messages out by topic, so a recorder can tell it has them all
        self.finished = False
        self.clock_pub = self.create_publisher(Clock, "/clock", CLOCK_QOS) if self.p.publish_clock else None
        self._start_at = time.monotonic() + self.p.start_delay_s
        self._hold: tuple | None = None
        if self.p.bag:
            self._start_replay()
        else:
            self.timer = self.create_timer(self.frame_period_s() / self.p.rate, self._live_tick)

    def hold_until(self, ready, timeout_s: float, what: str) -> None:
        """Publish no frame before ``ready()`` holds (a recorder matched to
        every topic, say), and at most ``timeout_s`` after the start delay:
        on a loaded machine discovery can outlast any fixed delay, and a short
        run would otherwise lose its first frames to nobody."""
        self._hold = (ready, self._start_at + timeout_s, what)

    def _waiting(self, now: float) -> bool:
        """Whether the first frame must still wait (start delay, then hold)."""
        if now < self._start_at:
            return True
        if self._hold is None:
            return False
        ready, deadline, what = self._hold
        if ready():
            self._hold = None
            return False
        if now < deadline:
            return True
        self.get_logger().warning(f"starting before {what}: the first frames may be missed")
        self._hold = None
        return False

    def publish(self, publisher, msg) -> bool:
        sent = super().publish(publisher, msg)
        if sent:
            self._count(publisher)
        return sent

    def _send_raw(self, publisher, msg) -> None:
        """Publish what needs no finiteness check (a clock, a replayed
        message as it was recorded), counted as every output is."""
        publisher.publish(msg)
        self._count(publisher)

    def _count(self, publisher) -> None:
        self.sent[publisher.topic_name] = self.sent.get(publisher.topic_name, 0) + 1

    @classmethod
    def all_params(cls):
        return cls.SOURCE_PARAMS + tuple(cls.PARAMS)

    def on_parameters_changed(self, names):
        """A new ``rate`` paces from the next frame on (``loop`` and
        ``max_frames`` are read at every frame)."""
        if "rate" not in names:
            return
        if self.p.bag:
            if self._t0_wall is not None and self._pending is not None:
                self._t0_bag, self._t0_wall = self._pending[2], time.monotonic()
        else:
            self.timer.cancel()
            self.timer = self.create_timer(self.frame_period_s() / self.p.rate, self._live_tick)

    def effective_parameters(self):
        values = super().effective_parameters()
        if not self.p.bag:  # the live timer's period is what the rate does
            values["rate"] = self.frame_period_s() / (self.timer.timer_period_ns * 1e-9)
        return values

    def diagnostic_values(self):
        return {"mode": "bag" if self.p.bag else "live", "frames_published": self.frames_published,
                "finished": self.finished}

    def status_phrase(self) -> str:
        return f"{self.frames_published} frames out" + (" (finished)" if self.finished else "")

    # --- live -----------------------------------------------------------------
    def frame_period_s(self) -> float:
        """Simulation time between live frames (the class's PERIOD_S unless a
        subclass makes it a parameter)."""
        return self.PERIOD_S

    def live_frame(self, k: int) -> tuple[int, dict[str, object]] | None:
        """Frame ``k`` of the live simulation: its stamp (ns of sim time) and
        its messages by output name; None when the scenario has ended."""
        raise NotImplementedError

    def _live_tick(self) -> None:
        if self.finished:
            return self._keep_clock()
        if self._waiting(time.monotonic()):
            return
        if self.p.max_frames and self.frames_published >= self.p.max_frames:
            return self._finish("max_frames reached")
        t0 = time.perf_counter()
        frame = self.live_frame(self.frames_published)
        if frame is None:
            return self._finish("scenario ended")
        stamp_ns, messages = frame
        self._last_stamp_ns = stamp_ns
        if self.clock_pub is not None:
            self._send_raw(self.clock_pub, Clock(clock=time_msg(stamp_ns)))
        for name, msg in messages.items():
            self.publish(self.pubs[name], msg)
        if "truth" in messages and "truth_markers" in self.pubs and "truth_markers" not in messages:
            self.publish(self.pubs["truth_markers"], truth_markers(messages["truth"], size_m=self.TRUTH_MARKER_M))
        self.frames_published += 1
        self.diagnostics.record(t0)

    def _keep_clock(self) -> None:
        """After the live scenario ended, simulation time goes on at the
        source's pace: the other nodes' timers run on /clock (a node that
        batches its input, a timeout) and sources of other systems sharing
        this clock may still be publishing."""
        last = getattr(self, "_last_stamp_ns", None)
        if self.clock_pub is None or last is None:
            return
        self._last_stamp_ns = last + int(round(self.frame_period_s() * 1e9))
        self._send_raw(self.clock_pub, Clock(clock=time_msg(self._last_stamp_ns)))

    def _finish(self, why: str) -> None:
        self.finished = True
        self.get_logger().info(f"source finished after {self.frames_published} frames ({why})")

    # --- replay ---------------------------------------------------------------
    def on_replayed(self, output: str, raw: bytes) -> None:
        """Hook after a replayed message went out: the truth drawn for RViz
        when the bag has no markers of its own."""
        if output == "truth" and "truth_markers" in self.pubs and "truth_markers" not in self._bag_map.values():
            truth = deserialize_message(raw, message_class(self.OUTPUTS["truth"][0]))
            self.publish(self.pubs["truth_markers"], truth_markers(truth, size_m=self.TRUTH_MARKER_M))

    def _start_replay(self) -> None:
        try:
            info = bags.topics(self.p.bag)
        except bags.BagError as exc:
            raise ParameterError(f"{self.get_fully_qualified_name()}: parameter 'bag': {exc}") from None
        self._bag_map = {}
        for t in self._own_topics(info):
            out = t.name.rstrip("/").rsplit("/", 1)[-1]
            if out in self.OUTPUTS:
                want = self.OUTPUTS[out][0]
                if t.msgtype != want:
                    raise ParameterError(
                        f"{self.get_fully_qualified_name()}: parameter 'bag': topic {t.name} holds "
                        f"{t.msgtype}, expected {want}")
                self._bag_map[t.name] = out
        if not self._bag_map:
            raise ParameterError(
                f"{self.get_fully_qualified_name()}: parameter 'bag': '{self.p.bag}' has none of the topics "
                f"{sorted(self.OUTPUTS)} (it has {[t.name for t in info]})")
        absent = sorted(o for o in self.OUTPUTS if o not in self._bag_map.values() and not o.endswith("markers"))
        if absent:
            self.get_logger().warning(f"bag '{self.p.bag}' has no topic for {', '.join(absent)}: those outputs "
                                      f"stay silent (the bag holds {[t.name for t in info]})")
        self._has_clock = any(t.name == "/clock" for t in info)
        self._replay_iter = self._replay_messages()
        try:
            self._pending = next(self._replay_iter, None)
        except bags.BagError as exc:
            raise ParameterError(f"{self.get_fully_qualified_name()}: parameter 'bag': {exc}") from None
        self._t0_bag = self._pending[2] if self._pending else 0
        self._t0_wall = None  # set at the first tick after the start delay
        self._last_frame_ns = None
        self._bag_span_ns = bags.span_ns(self.p.bag)
        self.get_logger().info(
            f"replaying {self.p.bag} at {self.p.rate}x: {', '.join(f'{k} -> {v}' for k, v in self._bag_map.items())}")
        self.timer = self.create_timer(0.002, self._replay_tick)

    def _own_topics(self, info):
        """The bag's topics this source replays: those under its own
        namespace when the bag has any (a bag of a whole suite holds
        ``/fwa/csi`` and ``/diffloc/csi``), else every topic (a bag recorded
        under another namespace)."""
        own = self.get_namespace().rstrip("/")
        mine = [t for t in info if t.name.rstrip("/").rsplit("/", 1)[0] == own
                and t.name.rstrip("/").rsplit("/", 1)[-1] in self.OUTPUTS]
        return mine or list(info)

    def _replay_messages(self) -> Iterator[tuple[str, str, int, bytes]]:
        """The bag's messages in time order; with ``loop`` the bag again and
        again, each pass's times shifted to follow the last one by one frame
        interval, so every pass is paced like the first (the messages keep
        their recorded bytes)."""
        wanted = list(self._bag_map) + (["/clock"] if self._has_clock else [])
        offset, passes = 0, 0
        while True:
            first = last = None
            gap = None
            for topic, msgtype, t_ns, raw in bags.read_raw(self.p.bag, wanted):
                if first is None:
                    first = t_ns
                elif gap is None and t_ns > last:
                    gap = t_ns - last
                last = t_ns
                yield topic, msgtype, t_ns + offset, raw
            passes += 1
            if not self.p.loop or first is None:
                return
            offset += (last - first) + (gap or int(self.frame_period_s() * 1e9))
            self.get_logger().info(f"bag ended; looping (pass {passes + 1})")

    def _replay_tick(self) -> None:
        now = time.monotonic()
        if self._waiting(now):
            return
        if self._t0_wall is None:
            self._t0_wall = now
        while self._pending is not None and not self.finished:
            topic, msgtype, t_ns, raw = self._pending
            due = self._t0_wall + (t_ns - self._t0_bag) * 1e-9 / self.p.rate
            if due > now:
                return
            looped = t_ns - self._t0_bag > self._bag_span_ns
            if topic == "/clock":
                if self.clock_pub is not None:  # a later pass runs on the shifted, still rising time
                    self._send_raw(self.clock_pub, Clock(clock=time_msg(t_ns)) if looped else raw)
            else:
                if not self._has_clock and self.clock_pub is not None:
                    self._send_raw(self.clock_pub, Clock(clock=time_msg(t_ns)))
                self._send_raw(self.pubs[self._bag_map[topic]], raw)
                self.on_replayed(self._bag_map[topic], raw)
                if t_ns != self._last_frame_ns:  # messages of one frame share its time
                    self._last_frame_ns = t_ns
                    self.frames_published += 1
                    self.diagnostics.record(time.perf_counter())
                    if self.p.max_frames and self.frames_published >= self.p.max_frames:
                        return self._finish("max_frames reached")
            try:
                self._pending = next(self._replay_iter, None)
            except bags.BagError as exc:  # damage found mid-file: stop, say where
                self.drop("bag", exc)
                self._pending = None
                return self._finish(f"bag damaged: {exc}")
        if self._pending is None and not self.finished:
            self._finish("bag ended")


def time_msg(t_ns: int) -> Time:
    return Time(sec=int(t_ns // 1_000_000_000), nanosec=int(t_ns % 1_000_000_000))
