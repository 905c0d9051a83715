"""Scenarios as rosbag2 files: ``/bs/points``
(sensor_msgs/PointCloud2 of BS_POINT_DTYPE), ``/bs/truth``
(sense_nodes/GroundTruthArray) and ``/clock``, one frame every 0.64 s of sim
time, through :mod:`sense_nodes.data.bags`."""
from __future__ import annotations

import numpy as np

from sense_nodes.data import bags

POINTS_TOPIC = "/bs/points"
TRUTH_TOPIC = "/bs/truth"
CLOCK_TOPIC = "/clock"
FRAME_ID = "bs"


def truth_msg(truth: np.ndarray, stamp_ns: int, frame_id: str = FRAME_ID):
    """A rosbags GroundTruthArray of a frame's truth rows."""
    ts = bags.typestore()
    GT = ts.types["sense_nodes/msg/GroundTruth"]
    Arr = ts.types["sense_nodes/msg/GroundTruthArray"]
    Point = ts.types["geometry_msgs/msg/Point"]
    Vec = ts.types["geometry_msgs/msg/Vector3"]
    objs = [GT(id=int(r["id"]), object_class=int(r["object_class"]),
               position=Point(x=float(r["position"][0]), y=float(r["position"][1]), z=float(r["position"][2])),
               velocity=Vec(x=float(r["velocity"][0]), y=float(r["velocity"][1]), z=float(r["velocity"][2])),
               visible=bool(r["visible"]))
            for r in truth]
    return Arr(header=bags.header(stamp_ns, frame_id), objects=objs)


def write_bag(scenario, path, max_frames: int | None = None, frame_id: str = FRAME_ID,
              overwrite: bool = False, progress=None) -> int:
    """Write ``scenario`` (frames 0..max_frames-1) to the bag directory ``path``;
    returns the number of frames written."""
    n = len(scenario) if max_frames is None else min(len(scenario), int(max_frames))
    with bags.BagWriter(path, overwrite=overwrite) as w:
        for k in range(n):
            f = scenario.frame(k)
            # the QoS the live source offers: clock and truth reliable, points best effort
            w.write(CLOCK_TOPIC, "rosgraph_msgs/msg/Clock", f.stamp_ns, bags.clock(f.stamp_ns), reliable=True)
            w.write(POINTS_TOPIC, "sensor_msgs/msg/PointCloud2", f.stamp_ns,
                    bags.pointcloud2(f.points, f.stamp_ns, frame_id), reliable=False)
            w.write(TRUTH_TOPIC, "sense_nodes/msg/GroundTruthArray", f.stamp_ns,
                    truth_msg(f.truth, f.stamp_ns, frame_id), reliable=True)
            if progress is not None:
                progress.update(1)
    return n
