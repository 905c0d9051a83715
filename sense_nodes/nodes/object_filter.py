"""`object_filter`: BSense object level (Section 3.3). Clusters the filtered
points with DBSCAN on the position-Doppler distance of Eq. 12, matches the
objects to the previous frame (Kuhn-Munkres, 15 m gate) and keeps those whose
spatial or velocity confidence (Eq. 13, 16) reaches its threshold: the core's
:class:`~sense_nodes.core.bsense.stages.ObjectLevel`, the same the evaluation
runs; the node converts and publishes.

Subscribes  points_filtered (PointCloud2)
Publishes   detections (sense_nodes/DetectionArray, reliable),
            detection_markers (visualization_msgs/MarkerArray, reliable: RViz)
"""
from __future__ import annotations

import dataclasses

from geometry_msgs.msg import Point
from sensor_msgs.msg import PointCloud2
from visualization_msgs.msg import MarkerArray

from sense_nodes.core.bsense.clustering import ClusterConfig
from sense_nodes.core.bsense.object_filter import ObjectFilterConfig
from sense_nodes.core.bsense.stages import ObjectLevel
from sense_nodes.data import cloud_codec
from sense_nodes.msg import Detection, DetectionArray
from sense_nodes.nodes.base import RESULT_QOS, SENSOR_QOS, Param, SenseNode, run_node, stamped_like
from sense_nodes.nodes.markers import detection_markers


class ObjectFilterNode(SenseNode):
    DEFAULT_NAME = "object_filter"
    _c, _o = ClusterConfig(), ObjectFilterConfig()
    PARAMS = (
        Param("eps", _c.eps, "DBSCAN distance threshold on the Eq. 12 metric", range=(0.1, 200.0), runtime=True),
        Param("w_pos", _c.w_pos, "Eq. 12 weight of the position distance", range=(0.0, 100.0), runtime=True),
        Param("w_doppler", _c.w_doppler, "Eq. 12 weight of the Doppler difference", range=(0.0, 100.0), runtime=True),
        Param("min_samples", _c.min_samples, "DBSCAN neighbours for a core point", range=(1, 100), runtime=True),
        Param("gate_m", _o.gate_m, "inter-frame match gate, m (Section 3.3.2)", range=(0.5, 500.0), runtime=True),
        Param("decay", _o.decay, "confidence decay lambda of Eq. 13 and 16", range=(0.0, 0.999), runtime=True),
        Param("tol_abs_mps", _o.tol_abs_mps, "Eq. 15 absolute tolerance, m/s", range=(0.0, 50.0), runtime=True),
        Param("tol_rel", _o.tol_rel, "Eq. 15 relative tolerance", range=(0.0, 10.0), runtime=True),
        Param("tau_s", _o.tau_s, "spatial confidence threshold (5th percentile of UAV C_s)", range=(0.0, 1.0), runtime=True),
        Param("tau_v", _o.tau_v, "velocity confidence threshold (5th percentile of UAV C_v)", range=(0.0, 1.0), runtime=True),
        Param("max_points", 20000, "points clustered per frame; a larger frame is thinned to this many "
              "(uniform, seeded) with a warning, so an overload costs accuracy, not time", range=(100, 10_000_000),
              runtime=True),
    )

    def __init__(self, node_name: str | None = None, **kwargs):
        super().__init__(node_name, **kwargs)
        self.level = ObjectLevel(self._cluster_config(), self._filter_config(ObjectFilterConfig()),
                                 max_points=self.p.max_points)
        self.last_count = 0
        self.pub = self.create_publisher(DetectionArray, "detections", RESULT_QOS)
        self.markers = self.create_publisher(MarkerArray, "detection_markers", RESULT_QOS)
        self.subscribe(PointCloud2, "points_filtered", self.on_points, SENSOR_QOS, kind="points_filtered")

    @property
    def frames_thinned(self) -> int:
        return self.level.frames_thinned

    def _cluster_config(self) -> ClusterConfig:
        p = self.p
        return ClusterConfig(w_pos=p.w_pos, w_doppler=p.w_doppler, eps=p.eps, min_samples=p.min_samples)

    def _filter_config(self, base: ObjectFilterConfig) -> ObjectFilterConfig:
        p = self.p
        return dataclasses.replace(base, gate_m=p.gate_m, decay=p.decay, tol_abs_mps=p.tol_abs_mps, tol_rel=p.tol_rel,
                                   tau_s=p.tau_s, tau_v=p.tau_v)

    def on_parameters_changed(self, names):
        """New configs swap in between frames; the objects' confidences carry on."""
        self.level.cluster_config = self._cluster_config()
        self.level.filter.config = self._filter_config(self.level.filter.config)
        self.level.max_points = self.p.max_points

    def effective_parameters(self):
        values = super().effective_parameters()
        values.update({k: getattr(self.level.cluster_config, k) for k in ("eps", "w_pos", "w_doppler", "min_samples")})
        values.update({k: getattr(self.level.filter.config, k)
                       for k in ("gate_m", "decay", "tol_abs_mps", "tol_rel", "tau_s", "tau_v")})
        values["max_points"] = self.level.max_points
        return values

    def on_points(self, msg: PointCloud2) -> None:
        points = cloud_codec.decode(msg)
        finite = cloud_codec.finite_mask(points, cloud_codec.MAX_ABS_VALUE)
        if not finite.all():
            self.count_nonfinite("points", int((~finite).sum()))
            points = points[finite]
        n = len(points)
        points = self.level.thin(points)
        if len(points) < n:
            self._warn_thinned(n)
        objects = self.level.cluster(points)
        scores = self.level.score(objects, stamp_s=msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
        out = DetectionArray(header=stamped_like(msg.header))
        for i in scores.keep.nonzero()[0]:
            x, y, z = objects.pos[i]
            snr, scr, noise, signal_power, rx_power = (float(v) for v in objects.features[i])
            out.detections.append(Detection(
                id=int(scores.ids[i]), centroid=Point(x=float(x), y=float(y), z=float(z)),
                doppler=float(objects.doppler[i]), snr=snr, scr=scr, noise=noise, signal_power=signal_power,
                rx_power=rx_power, point_count=int(objects.n_points[i]),
                spatial_confidence=float(scores.c_s[i]), velocity_confidence=float(scores.c_v[i])))
        self.last_count = len(out.detections)
        if self.publish(self.pub, out):
            self.publish(self.markers, detection_markers(out))

    def _warn_thinned(self, n: int) -> None:
        k = self.level.frames_thinned
        if k == 1 or k % 100 == 0:
            self.get_logger().warning(f"frame of {n} points thinned to max_points={self.level.max_points} "
                                      f"({k} frames so far)")

    def status_phrase(self) -> str:
        return f"{super().status_phrase()}, {self.last_count} detections in the last frame"

    def diagnostic_values(self):
        return {"frames_thinned": self.level.frames_thinned}


NODE_CLASS = ObjectFilterNode


def main(args=None) -> int:
    return run_node(ObjectFilterNode, args)
