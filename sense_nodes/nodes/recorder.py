"""Record topics to a rosbag2 file from inside a ROS graph (``sense record``,
``sense run --record``): raw CDR as received, so custom messages need no
conversion; their definitions are embedded by the bag writer."""
from __future__ import annotations

import struct
import time

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy, DurabilityPolicy

from sense_nodes.data import bags


def stamp_reader(cls):
    """A function giving the stamp (ns) a raw CDR message carries in its
    first field (a ``std_msgs/Header`` or a ``builtin_interfaces/Time``, as
    ``/clock``), or None for types without one."""
    fields = list(cls.get_fields_and_field_types().values())
    if not fields or fields[0] not in ("std_msgs/Header", "builtin_interfaces/Time"):
        return None

    def read(raw: bytes) -> int | None:
        if len(raw) < 12:
            return None
        order = "<" if raw[1] == 1 else ">"  # CDR encapsulation: 0x0001 little-, 0x0000 big-endian
        sec, nsec = struct.unpack_from(order + "iI", raw, 4)
        return sec * 1_000_000_000 + nsec if sec > 0 and nsec < 1_000_000_000 else None
    return read


class Recorder:
    """Subscribes (raw) to each topic once it appears and writes every message
    with the stamp its publisher gave it (the header's, or /clock's time), so
    that a frame's messages share one time in the bag as they did on the wire;
    messages without a stamp get their receive time on the node's clock."""

    def __init__(self, node: Node, topics: list[str], path: str, storage: str = "mcap",
                 overwrite: bool = False):
        self.node = node
        self.wanted = [bags.check_topic(t) for t in topics]
        self.writer = bags.BagWriter(path, storage=storage, overwrite=overwrite).__enter__()
        self.subs: dict[str, object] = {}
        self.counts: dict[str, int] = {t: 0 for t in self.wanted}
        self.closed = False
        self._timer = node.create_timer(0.1, self._discover)
        # everything older than a second is on disk: a killed recorder loses
        # at most the last second (`sense record --repair` reads the rest)
        self._flush_timer = node.create_timer(1.0, self.writer.flush)
        self._discover()

    def _publisher_type(self, topic: str) -> tuple[str | None, list]:
        """The type the topic's publishers offer, and their endpoints. Taken
        from the publishers, not the graph's type list: that list also holds
        the types of subscribers (a probe with a wrong type would win), and a
        topic nobody publishes yet has no QoS to match. With publishers of
        several types, the most common one is recorded and the others named
        (as rosbag2 does)."""
        infos = self.node.get_publishers_info_by_topic(topic)
        if not infos:
            return None, []
        counts: dict[str, int] = {}
        for info in infos:
            counts[info.topic_type] = counts.get(info.topic_type, 0) + 1
        msgtype = max(counts, key=counts.get)
        if len(counts) > 1:
            others = ", ".join(sorted(t for t in counts if t != msgtype))
            self.node.get_logger().warning(f"{topic} has publishers of several types: recording {msgtype}, "
                                           f"not {others}")
        return msgtype, [i for i in infos if i.topic_type == msgtype]

    @staticmethod
    def _qos_for(infos) -> QoSProfile:
        # Reliable only if every publisher offers it; a reliable subscriber
        # receives nothing from a best-effort publisher.
        reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                          reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                          durability=DurabilityPolicy.VOLATILE)

    def _discover(self) -> None:
        from sense_nodes.nodes.source import message_class
        for topic in self.wanted:
            fq = topic if topic.startswith("/") else f"/{topic}"
            if fq in self.subs:
                continue
            msgtype, infos = self._publisher_type(fq)
            if msgtype is None:
                continue
            cls = message_class(msgtype)
            read = stamp_reader(cls)
            qos = self._qos_for(infos)
            reliable = qos.reliability == ReliabilityPolicy.RELIABLE
            self.subs[fq] = self.node.create_subscription(
                cls, fq, lambda raw, t=fq, m=msgtype, r=read, q=reliable: self._write(t, m, raw, r, q), qos,
                raw=True)
            self.node.get_logger().info(f"recording {fq} ({msgtype})")

    def _write(self, topic: str, msgtype: str, raw: bytes, read_stamp=None, reliable=None) -> None:
        if self.closed:
            return
        stamp = read_stamp(raw) if read_stamp is not None else None
        if stamp is None:
            stamp = self.node.get_clock().now().nanoseconds
        self.writer.write(topic, msgtype, stamp, raw, reliable=reliable)
        key = topic if topic in self.counts else topic.lstrip("/")
        self.counts[key] = self.counts.get(key, 0) + 1

    def ready(self) -> bool:
        """Every wanted topic is subscribed and matched to a publisher, so
        nothing published from now on is lost to discovery."""
        return not self.missing() and all(sub.get_publisher_count() > 0 for sub in self.subs.values())

    def has_all(self, sent: dict[str, int]) -> bool:
        """Whether every recorded topic holds at least the ``sent`` count its
        publishers gave (topic -> messages out): a loaded executor runs
        the recorder's callbacks late, and closing before then loses the
        last frames."""
        counts = {(t if t.startswith("/") else f"/{t}"): n for t, n in self.counts.items()}
        return all(counts.get(t, n) >= n for t, n in sent.items())

    def missing(self) -> list[str]:
        return [t for t in self.wanted if (t if t.startswith("/") else f"/{t}") not in self.subs]

    def close(self) -> None:
        """Stop writing and finish the bag. The subscriptions stay until their
        node is destroyed: destroying them here could race a callback that an
        executor thread is running."""
        if self.closed:
            return
        self.closed = True
        self._timer.cancel()
        self._flush_timer.cancel()
        self.writer.__exit__(None, None, None)


def wait_for(predicate, timeout_s: float, spin) -> bool:
    """Spin until ``predicate()`` holds or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        spin()
    return predicate()
