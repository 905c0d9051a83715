"""Messages to and from arrays for the nodes (rclpy message classes).

Kept field-for-field identical to what the data layer writes into bags with
rosbags, so a live frame and the same frame replayed from a bag serialize to
the same bytes.
"""
from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Point, Vector3
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from sense_nodes.data import cloud_codec
from sense_nodes.errors import MalformedMessage, NonFiniteInput
from sense_nodes.msg import GroundTruth, GroundTruthArray
from sense_nodes.nodes.source import time_msg


def header(stamp_ns: int, frame_id: str) -> Header:
    return Header(stamp=time_msg(stamp_ns), frame_id=frame_id)


def pointcloud2(points: np.ndarray, hdr: Header) -> PointCloud2:
    return cloud_codec.encode(points, PointCloud2, PointField, hdr)


def ground_truth_array(truth: np.ndarray, hdr: Header) -> GroundTruthArray:
    """``truth`` rows: id, object_class, position[3], velocity[3], visible."""
    objects = [GroundTruth(id=int(r["id"]), object_class=int(r["object_class"]),
                           position=Point(x=float(r["position"][0]), y=float(r["position"][1]),
                                          z=float(r["position"][2])),
                           velocity=Vector3(x=float(r["velocity"][0]), y=float(r["velocity"][1]),
                                            z=float(r["velocity"][2])),
                           visible=bool(r["visible"]))
               for r in truth]
    return GroundTruthArray(header=hdr, objects=objects)



def csi_matrix(f, max_amplitude: float | None = None) -> np.ndarray:
    """One ``CsiFrame`` as H [n_rx, n_tx, n_subcarriers] complex64, checked
    before any arithmetic on it: the value counts match the declared shape
    (else MalformedMessage), every value is finite and, where given,
    |H| <= ``max_amplitude`` (else NonFiniteInput). The callers check what
    only they know (which stations, which shape their model expects)."""
    nr, nt, nk = f.num_rx_antennas, f.num_tx_antennas, f.num_subcarriers
    n = nr * nt * nk
    link = f"link {f.tx_id}->{f.rx_id}"
    if n == 0 or len(f.real) != n or len(f.imag) != n:
        raise MalformedMessage(f"{link}: {len(f.real)}/{len(f.imag)} values for {nr}x{nt}x{nk} CSI")
    re, im = np.asarray(f.real, np.float32), np.asarray(f.imag, np.float32)
    if not (np.isfinite(re).all() and np.isfinite(im).all()):
        raise NonFiniteInput(f"{link}: non-finite CSI")
    h = (re + 1j * im).reshape(nr, nt, nk)
    if max_amplitude is not None and np.abs(h).max(initial=0.0) > max_amplitude:
        raise NonFiniteInput(f"{link}: implausible CSI (|H| must be at most {max_amplitude:g})")
    return h
