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
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from sense_nodes.core import cloud_codec

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

    def _connection(self, topic: str, msgtype: str):
        conn = self._connections.get(topic)
        if conn is None:
            _cls(msgtype)  # fail early with a clear message
            conn = self._writer.add_connection(topic, msgtype, typestore=typestore())
            self._connections[topic] = conn
            self._types[topic] = msgtype
        elif self._types[topic] != msgtype:
            raise BagError(f"topic '{topic}' already holds {self._types[topic]}, not {msgtype}")
        return conn

    def write(self, topic: str, msgtype: str, stamp_ns: int, msg) -> None:
        """Write a rosbags message object, or CDR bytes serialized elsewhere."""
        conn = self._connection(topic, msgtype)
        if isinstance(msg, (bytes, bytearray, memoryview)):
            data = msg
        else:
            data = typestore().serialize_cdr(msg, msgtype)
        self._writer.write(conn, int(stamp_ns), data)
        self.count += 1


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
