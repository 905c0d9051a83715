"""rosbag2 files with `rosbags` (pure Python: `rosbag2_py` is not on PyPI).

Bags are MCAP (rosbag2 metadata version 9) by default, play with
``ros2 bag play`` and embed the definitions of our custom messages, which are
registered from the package's own ``.msg`` files, so a bag carries everything
needed to read it anywhere.

Messages are written either as rosbags message objects (serialized here) or
as CDR bytes already serialized by rclpy (``record`` does that), and read back
as CDR bytes (``read_raw``, what a replaying node publishes unchanged) or as
rosbags message objects (``read``).
"""
from __future__ import annotations

import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from sense_nodes.data import cloud_codec

PACKAGE = "sense_nodes"
_STORAGE = {"mcap": "MCAP", "sqlite3": "SQLITE3"}


class BagError(ValueError):
    """A bag that cannot be read or written as asked."""


def interface_dir() -> Path:
    """Directory holding this package's ``msg/`` and ``srv/`` definitions.

    The source checkout first (development), then the installed share
    directories on ``AMENT_PREFIX_PATH`` and the Python prefix (colcon and
    ``make setup`` installs).
    """
    candidates = [Path(__file__).resolve().parents[2]]
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    import sys
    prefixes.append(sys.prefix)
    candidates += [Path(p) / "share" / PACKAGE for p in prefixes]
    for cand in candidates:
        if (cand / "msg" / "Track.msg").is_file():
            return cand
    raise BagError(f"cannot find the {PACKAGE} message definitions (looked in "
                   + ", ".join(str(c) for c in candidates) + ")")


@lru_cache(maxsize=1)
def typestore():
    """rosbags typestore of ROS 2 Kilted plus every sense_nodes message."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for path in sorted((interface_dir() / "msg").glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{PACKAGE}/msg/{path.stem}"))
    store.register(types)
    return store


def _cls(msgtype: str):
    try:
        return typestore().types[msgtype]
    except KeyError:
        raise BagError(f"unknown message type '{msgtype}'") from None


# --- message builders (rosbags objects) -------------------------------------

def stamp(stamp_ns: int):
    Time = _cls("builtin_interfaces/msg/Time")
    return Time(sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000))


def header(stamp_ns: int, frame_id: str):
    return _cls("std_msgs/msg/Header")(stamp=stamp(stamp_ns), frame_id=frame_id)


def clock(stamp_ns: int):
    return _cls("rosgraph_msgs/msg/Clock")(clock=stamp(stamp_ns))


def pointcloud2(points: np.ndarray, stamp_ns: int, frame_id: str):
    """A sensor_msgs/PointCloud2 (rosbags object) from a structured array."""
    return cloud_codec.encode(points, _cls("sensor_msgs/msg/PointCloud2"),
                              _cls("sensor_msgs/msg/PointField"), header(stamp_ns, frame_id))


def stamp_ns_of(msg) -> int:
    """Nanoseconds of a message's ``header.stamp`` (rclpy or rosbags object)."""
    st = msg.header.stamp
    return int(st.sec) * 1_000_000_000 + int(st.nanosec)


# --- writing -----------------------------------------------------------------

class BagWriter:
    """Write a rosbag2 bag; topics are registered on their first message.

    >>> with BagWriter("out/run1") as bag:
    ...     bag.write("/clock", "rosgraph_msgs/msg/Clock", t, clock(t))
    """

    def __init__(self, path: str | os.PathLike, storage: str = "mcap", overwrite: bool = False):
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.path = Path(path)
        if storage not in _STORAGE:
            raise BagError(f"storage must be one of {sorted(_STORAGE)}, got '{storage}'")
        if self.path.exists():
            if not overwrite:
                raise BagError(f"bag '{self.path}' already exists (pass overwrite to replace it)")
            import shutil
            shutil.rmtree(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = Writer(self.path, version=9,
                              storage_plugin=getattr(StoragePlugin, _STORAGE[storage]))
        self._connections: dict[str, object] = {}
        self._types: dict[str, str] = {}
        self.count = 0

    def __enter__(self) -> "BagWriter":
        self._writer.open()
        return self

    def __exit__(self, *exc) -> None:
        self._writer.close()

    def _connection(self, topic: str, msgtype: str, reliable: bool | None = None):
        conn = self._connections.get(topic)
        if conn is None:
            _cls(msgtype)  # fail early with a clear message
            qos = () if reliable is None else (offered_qos(reliable),)
            conn = self._writer.add_connection(topic, msgtype, typestore=typestore(), offered_qos_profiles=qos)
            self._connections[topic] = conn
            self._types[topic] = msgtype
        elif self._types[topic] != msgtype:
            raise BagError(f"topic '{topic}' already holds {self._types[topic]}, not {msgtype}")
        return conn

    def flush(self) -> None:
        """Make every message written so far durable: close the MCAP chunk
        being filled and sync the file, so a killed process loses only what
        came after (:func:`repair` then makes the bag readable). rosbags
        has no public call for this; it reaches into its MCAP writer, and
        does nothing for other storage."""
        storage = getattr(self._writer, "storage", None)
        if storage is None or not hasattr(storage, "close_chunk"):
            return
        if storage.chunk.msgs:
            storage.close_chunk()
        storage.bio.flush()
        os.fsync(storage.bio.fileno())

    def write(self, topic: str, msgtype: str, stamp_ns: int, msg, reliable: bool | None = None) -> None:
        """Write a rosbags message object, or CDR bytes serialized elsewhere.

        ``reliable``: the QoS reliability its publisher offers, recorded with
        the topic (``ros2 bag play`` republishes with it) on its first message."""
        conn = self._connection(topic, msgtype, reliable)
        if isinstance(msg, (bytes, bytearray, memoryview)):
            data = msg
        else:
            data = typestore().serialize_cdr(msg, msgtype)
        self._writer.write(conn, int(stamp_ns), data)
        self.count += 1


def offered_qos(reliable: bool):
    """The QoS profile a bag records for a topic: keep-last 10, volatile,
    reliable or best effort (the suite's result and sensor profiles)."""
    from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness, QosReliability,
                                    QosTime)
    zero = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, 10, QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
               QosDurability.VOLATILE, zero, zero, QosLiveliness.AUTOMATIC, zero, False)


# --- reading -----------------------------------------------------------------

@dataclass(frozen=True)
class TopicInfo:
    name: str
    msgtype: str
    count: int


@contextmanager
def _reader(path: str | os.PathLike):
    """An open rosbags Reader; any failure to open names the file."""
    from rosbags.rosbag2 import Reader

    path = Path(path)
    if not path.exists():
        raise BagError(f"bag '{path}' does not exist")
    if path.is_dir() and not (path / "metadata.yaml").exists() and any(path.glob("*.mcap")):
        raise BagError(f"bag '{path}' was not closed (its recorder was killed): "
                       f"`sense record --repair {path}` keeps what it wrote")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # rosbags raises several kinds; name the file
        raise BagError(f"cannot read bag '{path}': {exc}") from exc
    try:
        yield reader
    finally:
        reader.close()


def topics(path: str | os.PathLike) -> list[TopicInfo]:
    """The topics of a bag with their types and message counts."""
    with _reader(path) as reader:
        return [TopicInfo(c.topic, c.msgtype, c.msgcount) for c in reader.connections]


def read_raw(path: str | os.PathLike, topics: Iterable[str] | None = None
             ) -> Iterator[tuple[str, str, int, bytes]]:
    """Yield ``(topic, msgtype, stamp_ns, cdr_bytes)`` in time order."""
    wanted = None if topics is None else set(topics)
    with _reader(path) as reader:
        conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
        if wanted is not None:
            missing = wanted - {c.topic for c in conns}
            if missing:
                raise BagError(f"bag '{path}' has no topic {sorted(missing)}; it has "
                               f"{sorted(c.topic for c in reader.connections)}")
        messages = reader.messages(connections=conns)
        while True:
            try:
                conn, stamp_ns, raw = next(messages)
            except StopIteration:
                return
            except Exception as exc:  # a damaged chunk surfaces only when it is read
                raise BagError(f"bag '{path}' is damaged: {type(exc).__name__}: {exc}") from exc
            yield conn.topic, conn.msgtype, stamp_ns, raw


def _scan_mcap(data: bytes):
    """Schemas, channels and messages of an MCAP file read record by record
    (uncompressed chunks, as :class:`BagWriter` writes them), stopping at the
    first record cut short: what a killed writer left behind."""
    import struct
    schemas, channels, messages = {}, {}, []

    def string(buf, at):
        n = struct.unpack_from("<I", buf, at)[0]
        return bytes(buf[at + 4:at + 4 + n]).decode(), at + 4 + n

    def records(buf, at, end):
        while at + 9 <= end:
            op, n = buf[at], struct.unpack_from("<Q", buf, at + 1)[0]
            if at + 9 + n > end:
                return
            yield op, buf[at + 9:at + 9 + n]
            at += 9 + n

    def visit(op, body):
        if op == 0x03:
            sid = struct.unpack_from("<H", body, 0)[0]
            name, _ = string(body, 2)
            schemas[sid] = name
        elif op == 0x04:
            cid, sid = struct.unpack_from("<HH", body, 0)
            topic, _ = string(body, 4)
            channels[cid] = (topic, sid)
        elif op == 0x05:
            cid, _, log_time = struct.unpack_from("<HIQ", body, 0)
            messages.append((cid, log_time, bytes(body[22:])))
        elif op == 0x06:
            at = 8 + 8 + 8 + 4
            compression, at = string(body, at)
            size = struct.unpack_from("<Q", body, at)[0]
            if compression:
                raise BagError(f"compressed chunks ({compression}) cannot be repaired")
            chunk = body[at + 8:at + 8 + size]
            for op2, body2 in records(chunk, 0, len(chunk)):
                visit(op2, body2)

    if not data.startswith(b"\x89MCAP0\r\n"):
        raise BagError("not an MCAP file")
    view = memoryview(data)
    for op, body in records(view, 8, len(data)):
        visit(op, body)
    return schemas, channels, messages


def repair(path: str | os.PathLike) -> int:
    """Make a bag readable whose writer was killed (no ``metadata.yaml``, an
    MCAP file without its summary): every complete chunk is kept, written
    again as a complete bag in its place. Returns the messages kept."""
    path = Path(path)
    files = sorted(path.glob("*.mcap"))
    if (path / "metadata.yaml").exists():
        raise BagError(f"bag '{path}' is complete (it has metadata.yaml); nothing to repair")
    if len(files) != 1:
        raise BagError(f"'{path}' holds {len(files)} MCAP files; expected one to repair")
    schemas, channels, messages = _scan_mcap(files[0].read_bytes())
    tmp = path.with_name(path.name + ".repairing")
    with BagWriter(tmp, overwrite=True) as out:
        for cid, t_ns, raw in sorted(messages, key=lambda m: m[1]):
            topic, sid = channels[cid]
            out.write(topic, schemas[sid], t_ns, raw)
    broken = path.with_name(path.name + ".broken")
    path.rename(broken)
    tmp.rename(path)
    shutil.rmtree(broken)
    return len(messages)


def span_ns(path: str | os.PathLike) -> int:
    """Time from the bag's first message to its last, ns."""
    with _reader(path) as reader:
        return max(int(reader.end_time) - int(reader.start_time), 0) if reader.message_count else 0


def read(path: str | os.PathLike, topics: Iterable[str] | None = None
         ) -> Iterator[tuple[str, str, int, object]]:
    """Yield ``(topic, msgtype, stamp_ns, message)`` with rosbags message objects."""
    store = typestore()
    for topic, msgtype, stamp_ns, raw in read_raw(path, topics):
        yield topic, msgtype, stamp_ns, store.deserialize_cdr(raw, msgtype)


_ROS_NAME = re.compile(r"^/?[A-Za-z_~{][A-Za-z0-9_/{}~]*$")


def check_topic(name: str) -> str:
    """Reject a topic name ROS would refuse, with the name in the message."""
    if not _ROS_NAME.match(name) or "//" in name or name.endswith("/"):
        raise BagError(f"'{name}' is not a valid ROS topic name")
    return name
