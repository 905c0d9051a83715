"""PointCloud2 codec: numpy structured arrays to and from the PointCloud2 layout.

The codec imports no message types. Decoding reads any object with the
attributes of ``sensor_msgs/msg/PointCloud2`` (an rclpy message or a rosbags
one); encoding is handed the message and field classes by the caller, so the
same code serves the ROS nodes and the bag writer.

Decoding is zero-copy: the returned array is a view on the message's buffer.
A cloud with missing fields, wrong field types or truncated data is rejected
with a :class:`CloudFormatError` that says what is wrong.
"""
from __future__ import annotations

import numpy as np

from sense_nodes.errors import MalformedMessage

# sensor_msgs/PointField datatype constants and their numpy types.
INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64 = range(1, 9)
_TO_NUMPY = {
    INT8: np.dtype("i1"), UINT8: np.dtype("u1"), INT16: np.dtype("i2"), UINT16: np.dtype("u2"),
    INT32: np.dtype("i4"), UINT32: np.dtype("u4"), FLOAT32: np.dtype("f4"), FLOAT64: np.dtype("f8"),
}
_FROM_NUMPY = {v.str[1:]: k for k, v in _TO_NUMPY.items()}
_NAMES = {INT8: "int8", UINT8: "uint8", INT16: "int16", UINT16: "uint16", INT32: "int32",
          UINT32: "uint32", FLOAT32: "float32", FLOAT64: "float64"}

#: The base-station point: every field float32, REP-103 metres, m/s, dB.
BS_POINT_FIELDS = ("x", "y", "z", "doppler", "snr", "scr", "noise", "signal_power", "rx_power")
BS_POINT_DTYPE = np.dtype([(name, "<f4") for name in BS_POINT_FIELDS])


class CloudFormatError(MalformedMessage, ValueError):
    """The cloud does not have the layout the caller asked for (a malformed
    message to a node; a ``ValueError`` to the readers of files)."""


def fields_of(dtype: np.dtype) -> list[tuple[str, int, int, int]]:
    """PointField tuples (name, offset, datatype, count) for a structured dtype."""
    if dtype.names is None:
        raise CloudFormatError(f"a point cloud needs a structured dtype, got {dtype}")
    out = []
    for name in dtype.names:
        sub, offset = dtype.fields[name][:2]
        base, count = (sub.base, int(np.prod(sub.shape))) if sub.shape else (sub, 1)
        code = _FROM_NUMPY.get(base.str[1:])
        if code is None:
            raise CloudFormatError(f"field '{name}' has type {base} that PointField cannot express")
        out.append((name, int(offset), code, count))
    return out


def dtype_of(fields, point_step: int, is_bigendian: bool = False) -> np.dtype:
    """Structured dtype of a PointCloud2 layout (gaps between fields kept as padding)."""
    order = ">" if is_bigendian else "<"
    names, formats, offsets = [], [], []
    for f in fields:
        base = _TO_NUMPY.get(int(f.datatype))
        if base is None:
            raise CloudFormatError(f"field '{f.name}' has unknown PointField datatype {f.datatype}")
        count = int(f.count) if int(f.count) > 0 else 1
        fmt = base.newbyteorder(order)
        names.append(f.name)
        formats.append(fmt if count == 1 else (fmt, (count,)))
        offsets.append(int(f.offset))
    try:
        return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                         "itemsize": int(point_step)})
    except ValueError as exc:  # overlapping fields or point_step too small
        raise CloudFormatError(f"inconsistent field layout (point_step={point_step}): {exc}") from exc


def decode(msg, required: tuple[str, ...] | np.dtype | None = BS_POINT_DTYPE) -> np.ndarray:
    """View a PointCloud2 as a 1-D structured array without copying.

    ``required`` is the dtype (or field names) the caller needs: a missing
    field or a field of another type raises :class:`CloudFormatError`.
    """
    n = int(msg.width) * int(msg.height)
    step = int(msg.point_step)
    data = msg.data
    nbytes = len(data) if not isinstance(data, np.ndarray) else data.nbytes
    if step <= 0 and n > 0:
        raise CloudFormatError(f"point_step is {step}")
    if int(msg.height) > 1 and int(msg.row_step) != int(msg.width) * step:
        raise CloudFormatError(
            f"row_step {msg.row_step} != width {msg.width} x point_step {step} (padded rows are not supported)")
    if nbytes < n * step:
        raise CloudFormatError(
            f"truncated data: {nbytes} bytes for {n} points of {step} bytes (need {n * step})")
    dtype = dtype_of(msg.fields, step, bool(msg.is_bigendian))
    _check_required(dtype, required)
    if n == 0:
        return np.zeros(0, dtype=dtype)
    return np.frombuffer(data, dtype=dtype, count=n)


def _check_required(dtype: np.dtype, required) -> None:
    if required is None:
        return
    if isinstance(required, np.dtype):
        wanted = {name: required.fields[name][0] for name in required.names}
    else:
        wanted = {name: None for name in required}
    have = dtype.fields or {}
    missing = [name for name in wanted if name not in have]
    if missing:
        raise CloudFormatError(
            f"missing fields {missing}; the cloud has {list(dtype.names or ())}")
    for name, want in wanted.items():
        got = have[name][0]
        if want is not None and (got.base.kind, got.base.itemsize, got.shape) != (
                want.base.kind, want.base.itemsize, want.shape):
            raise CloudFormatError(
                f"field '{name}' is {_describe(got)}, expected {_describe(want)}")


def _describe(dt: np.dtype) -> str:
    code = _FROM_NUMPY.get(dt.base.str[1:])
    name = _NAMES.get(code, str(dt.base))
    return name if not dt.shape else f"{name}[{int(np.prod(dt.shape))}]"


# No field of a base-station point (metres, m/s, dB) is anywhere near this;
# beyond it a value is garbage, and its square or sum would overflow float32.
MAX_ABS_VALUE = 1e6


def finite_mask(points: np.ndarray, max_abs: float = np.inf) -> np.ndarray:
    """True for the points whose floating-point fields are all finite (and
    at most ``max_abs`` in magnitude): a bad value spoils only its own
    point, which can be dropped alone."""
    keep = np.ones(points.shape[0], bool)
    for name in points.dtype.names or ():
        col = points[name]
        if col.dtype.kind == "f":
            with np.errstate(invalid="ignore"):
                keep &= (np.abs(col) <= max_abs).reshape(points.shape[0], -1).all(1)
    return keep


def as_points(points: np.ndarray, dtype: np.dtype = BS_POINT_DTYPE) -> np.ndarray:
    """Copy a decoded cloud into a packed array of ``dtype`` (drops extra fields)."""
    if points.dtype == dtype:
        return np.ascontiguousarray(points)
    out = np.empty(points.shape[0], dtype=dtype)
    for name in dtype.names:
        out[name] = points[name]
    return out


def encode(points: np.ndarray, cloud_cls, field_cls, header):
    """Build a PointCloud2 (of ``cloud_cls``) holding ``points`` as one row.

    ``points`` is a 1-D structured array; its bytes are copied once into the
    message. rclpy's ``uint8[]`` stores an ``array.array`` and rosbags a numpy
    array: each gets what it stores, so neither converts element by element.
    ``cloud_cls`` and ``field_cls`` are the message classes (rclpy's or
    rosbags'), so this module imports no message types.
    """
    points = np.ascontiguousarray(points)
    if points.ndim != 1:
        raise CloudFormatError(f"points must be 1-D, got shape {points.shape}")
    fields = [field_cls(name=name, offset=offset, datatype=code, count=count)
              for name, offset, code, count in fields_of(points.dtype)]
    step = int(points.dtype.itemsize)
    meta = dict(header=header, height=1, width=int(points.shape[0]), fields=fields, is_bigendian=False,
                point_step=step, row_step=step * int(points.shape[0]), is_dense=True)
    if hasattr(cloud_cls, "__dataclass_fields__"):  # rosbags message class: all fields at once
        return cloud_cls(data=points.view(np.uint8).copy(), **meta)
    # rclpy: with field checks on, the uint8[] setter keeps an array.array as
    # it is; without them (the default) both the constructor and the setter
    # convert the buffer element by element, 20 times slower for 100k points.
    try:
        msg = cloud_cls(check_fields=True, **meta)
    except TypeError:  # generated code without check_fields (older distributions)
        msg = cloud_cls(**meta)
    msg.data = _byte_array(points)
    return msg


def _byte_array(points: np.ndarray):
    """The points' bytes as the array.array('B') rclpy stores (one memcpy)."""
    import array
    buf = array.array("B")
    buf.frombytes(points.view(np.uint8).data)
    return buf
