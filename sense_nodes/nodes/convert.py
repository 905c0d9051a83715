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

