"""Hostile ROS messages for the fuzz harness: real messages mutated
(values replaced by NaN, infinities and out-of-range numbers, arrays cut,
counts and stamps falsified) and messages built from random fields, for any
rclpy message class (fields read from ``get_fields_and_field_types``)."""
from __future__ import annotations

import copy
import re

import numpy as np

FLOAT_ATTACKS = (float("nan"), float("inf"), float("-inf"), 3e38, -3e38, 1e300, -0.0, 5e-324)
INT_BOUNDS = {"int8": (-2**7, 2**7 - 1), "uint8": (0, 2**8 - 1), "byte": (0, 255), "octet": (0, 255),
              "char": (0, 255), "int16": (-2**15, 2**15 - 1), "uint16": (0, 2**16 - 1),
              "int32": (-2**31, 2**31 - 1), "uint32": (0, 2**32 - 1), "int64": (-2**63, 2**63 - 1),
              "uint64": (0, 2**64 - 1)}
_SEQ = re.compile(r"^sequence<(.+?)(?:, ?\d+)?>$")
_ARR = re.compile(r"^(.+)\[(\d+)\]$")
_BOUNDED_STR = re.compile(r"^(w?string)<=\d+$")



def _msg_class(type_name: str):
    """The class of a nested field's type, given as ``pkg/Name``."""
    from sense_nodes.nodes.source import message_class
    return message_class(type_name.replace("/", "/msg/", 1))


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
