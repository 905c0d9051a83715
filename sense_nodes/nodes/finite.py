"""Finite-value checks on outgoing messages: no node publishes a NaN or an
infinity, whatever reached it."""
from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import PointCloud2

from sense_nodes.data import cloud_codec


def first_nonfinite(msg, path: str = "") -> str | None:
    """The path of the first non-finite float in a message (nested messages,
    arrays and the float fields of a PointCloud2 included), or None.

    rclpy has no such check: a NaN reaches the wire as readily as a number."""
    if isinstance(msg, PointCloud2):
        try:
            points = cloud_codec.decode(msg, required=None)
        except ValueError:
            return None  # not decodable: not ours to judge here
        bad = np.flatnonzero(~cloud_codec.finite_mask(points))
        return f"{path}data[point {bad[0]}]" if bad.size else None
    for name in msg.get_fields_and_field_types():
        value = getattr(msg, name)
        where = f"{path}{name}"
        if isinstance(value, float):
            if not np.isfinite(value):
                return where
        elif hasattr(value, "get_fields_and_field_types"):
            found = first_nonfinite(value, where + ".")
            if found:
                return found
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if isinstance(item, float):
                    if not np.isfinite(item):
                        return f"{where}[{i}]"
                elif hasattr(item, "get_fields_and_field_types"):
                    found = first_nonfinite(item, f"{where}[{i}].")
                    if found:
                        return found
        elif isinstance(value, (np.ndarray, array.array)):
            arr = np.asarray(value)
            if arr.dtype.kind == "f" and arr.size and not np.isfinite(arr).all():
                return f"{where}[{int(np.flatnonzero(~np.isfinite(arr.reshape(-1)))[0])}]"
    return None
