"""`uav_tracker`: BSense trajectory level (Section 3.4). IMM-UKF tracking of
the detections (CV and CTRV models on one shared state) and TrajFormer
verification of each confirmed track in real time: the core's
:class:`~sense_nodes.core.bsense.stages.TrajectoryLevel`, the same the
evaluation runs; the node converts and publishes.

Subscribes  detections (sense_nodes/DetectionArray)
Publishes   tracks (sense_nodes/TrackArray, reliable): every live track;
            classification UAV while its output policy shows it (verified by
            TrajFormer, not coasting past coast_frames)
            track_markers (visualization_msgs/MarkerArray, reliable): track
            lines and ids, verified UAVs green, confirmed yellow, tentative grey
"""
from __future__ import annotations

import collections
import dataclasses
import uuid
from pathlib import Path

import numpy as np
from geometry_msgs.msg import Point, Vector3
from std_msgs.msg import ColorRGBA
from unique_identifier_msgs.msg import UUID
from visualization_msgs.msg import Marker, MarkerArray

from sense_nodes.core.bsense.clustering import Objects
from sense_nodes.core.bsense.imm_ukf import velocity_cov
from sense_nodes.core.bsense.pipeline import PipelineConfig
from sense_nodes.core.bsense.stages import TrajectoryLevel
from sense_nodes.core.bsense.tracker import TrackerConfig
from sense_nodes.core.bsense.verification import RULES, OutputPolicy
from sense_nodes.data.cloud_codec import MAX_ABS_VALUE
from sense_nodes.data.bags import stamp_ns_of
from sense_nodes.msg import DetectionArray, Track, TrackArray
from sense_nodes.nodes.base import RESULT_QOS, Param, ParameterError, SenseNode, run_node, stamped_like

MODEL_NAMES = ["cv", "ctrv"]
# Track UUIDs are uuid5(namespace, node:first-stamp:id), so a replayed bag
# gives the same UUIDs as the live run.
_UUID_NS = uuid.UUID("6f1c3c1e-2b1a-4c7e-9a55-0b5e00000001")


def row_major(cov: np.ndarray) -> list[float]:
    """The nine entries of a 3x3 covariance, row-major (the ROS convention of
    geometry_msgs/PoseWithCovariance), symmetrised against rounding."""
    c = np.asarray(cov, dtype=np.float64)[:3, :3]
    return [float(v) for v in (0.5 * (c + c.T)).reshape(-1)]


class UavTracker(SenseNode):
    DEFAULT_NAME = "uav_tracker"
    _t = TrackerConfig()
    _pc = PipelineConfig()
    PARAMS = (
        Param("frame_s", _t.dt, "frame interval, s (0.64 s for the BSense base station)", range=(0.01, 10.0)),
        Param("gate_m", _t.gate_m, "association gate on the predicted position, m", range=(0.5, 500.0),
              runtime=True),
        Param("confirm_hits", _t.confirm_hits, "K: consecutive associations to confirm a track", range=(1, 50),
              runtime=True),
        Param("max_misses", _t.max_misses, "misses before a confirmed track is deleted", range=(0, 100),
              runtime=True),
        Param("max_misses_tentative", _t.max_misses_tentative, "misses before a tentative track is deleted",
              range=(0, 100), runtime=True),
        Param("use_classifier", True, "verify tracks with TrajFormer (False: output every confirmed track)"),
        Param("checkpoint", "", "track verifier checkpoint, TrajFormer or boosted trees ('' = the one shipped "
                                "with the package)"),
        Param("window", 6, "W: observations TrajFormer reads", range=(2, 64)),
        Param("classifier_threshold", _pc.classifier_threshold, "P(true) that verifies a track", range=(0.0, 1.0), runtime=True),
        Param("verify_rule", _pc.verify_rule, "once: verified at the first window over the threshold, for good (the "
              "paper's); hold: while the mean of the last verify_memory windows is over it",
              choices=RULES, runtime=True),
        Param("verify_memory", _pc.verify_memory, "windows the hold rule averages", range=(1, 64), runtime=True),
        Param("coast_frames", -1 if _pc.coast_frames is None else _pc.coast_frames,
              "frames after its last detection a verified track is still output (-1: while the tracker keeps it)",
              range=(-1, 100), runtime=True),
        Param("device", "auto", "where TrajFormer runs", choices=("auto", "cpu", "cuda")),
        Param("trail_length", 60, "positions drawn per track line in RViz", range=(2, 10_000), runtime=True),
        Param("max_detections", 300, "detections tracked per frame; a larger frame keeps its most confident "
              "ones with a warning, so an overload costs accuracy, not time", range=(1, 100_000), runtime=True),
    )

    def __init__(self, node_name: str | None = None, **kwargs):
        super().__init__(node_name, **kwargs)
        p = self.p
        self.classifier = self._load_classifier() if p.use_classifier else None
        self.level = TrajectoryLevel(
            TrackerConfig(dt=p.frame_s, gate_m=p.gate_m, confirm_hits=p.confirm_hits, max_misses=p.max_misses,
                          max_misses_tentative=p.max_misses_tentative, history=max(32, p.window)),
            self.classifier, p.window, max_detections=p.max_detections, policy=self._policy())
        self.trails: dict[int, collections.deque] = {}
        self.run_id = None
        self.pub = self.create_publisher(TrackArray, "tracks", RESULT_QOS)
        self.markers = self.create_publisher(MarkerArray, "track_markers", RESULT_QOS)
        self.subscribe(DetectionArray, "detections", self.on_detections, RESULT_QOS, kind="detections")

    def _policy(self) -> OutputPolicy:
        p = self.p
        return OutputPolicy(p.classifier_threshold, p.verify_rule, p.verify_memory,
                            None if p.coast_frames < 0 else p.coast_frames)

    def _load_classifier(self):
        from sense_nodes.core.bsense.trajformer import single_thread_inference
        from sense_nodes.core.bsense.verification import default_verifier_path, load_classifier, verifier_name

        path = Path(self.p.checkpoint) if self.p.checkpoint else default_verifier_path()
        device = self.p.device
        if device == "auto":
            import torch
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            model = load_classifier(path, device)
            if device == "cpu":
                single_thread_inference()
        except (ValueError, FileNotFoundError, OSError) as exc:
            raise ParameterError(f"{self.get_fully_qualified_name()}: parameter 'checkpoint': {exc} "
                                 f"(train one with: sense train trajformer [--verifier boosted])") from None
        if model.config.window != self.p.window:
            raise ParameterError(f"{self.get_fully_qualified_name()}: parameter 'window' = {self.p.window} but "
                                 f"checkpoint {path} was trained with W = {model.config.window}")
        boosted = verifier_name(model) == "boosted"
        self.get_logger().info(f"{'boosted-tree verifier' if boosted else 'TrajFormer'} {path} on "
                               f"{'cpu' if boosted else device}")
        return model

    def on_detections(self, msg: DetectionArray) -> None:
        objects, confidence, n_nonfinite = objects_from(msg)
        self.count_nonfinite("detections", n_nonfinite)
        if self.run_id is None:
            self.run_id = stamp_ns_of(msg)
        thinned = self.level.frames_thinned
        states = self.level.step(objects, None, confidence)
        if self.level.frames_thinned > thinned:
            self._warn_thinned(len(objects))
        out = TrackArray(header=stamped_like(msg.header))
        for s in states:
            out.tracks.append(self._track_msg(s))
        if self.publish(self.pub, out):
            self._publish_markers(out, states)

    def on_parameters_changed(self, names):
        """Gate and track-management rules swap in between frames; the
        tracks and their filters carry on."""
        p = self.p
        tracker = self.level.tracker
        tracker.config = dataclasses.replace(tracker.config, gate_m=p.gate_m, confirm_hits=p.confirm_hits,
                                             max_misses=p.max_misses, max_misses_tentative=p.max_misses_tentative)
        self.level.policy, self.level.max_detections = self._policy(), p.max_detections
        if "trail_length" in names:
            self.trails = {k: collections.deque(v, maxlen=p.trail_length) for k, v in self.trails.items()}

    def effective_parameters(self):
        values = super().effective_parameters()
        values.update({k: getattr(self.level.tracker.config, k)
                       for k in ("gate_m", "confirm_hits", "max_misses", "max_misses_tentative")})
        pol = self.level.policy
        values.update(classifier_threshold=pol.threshold, verify_rule=pol.rule, verify_memory=pol.memory,
                      coast_frames=-1 if pol.coast_frames is None else pol.coast_frames,
                      max_detections=self.level.max_detections)
        return values

    @property
    def frames_thinned(self) -> int:
        return self.level.frames_thinned

    def _warn_thinned(self, n: int) -> None:
        k = self.level.frames_thinned
        if k == 1 or k % 100 == 0:
            self.get_logger().warning(f"frame of {n} detections thinned to max_detections="
                                      f"{self.level.max_detections} ({k} frames so far)")

    def _is_uav(self, s) -> bool:
        return self.level.is_output(s)

    def _track_msg(self, s) -> Track:
        if self._is_uav(s):
            cls = Track.UAV
        elif self.classifier is not None and np.isfinite(s.score):
            cls = Track.FALSE_TRACK
        else:
            cls = Track.NO_CLASSIFICATION
        vel_cov = velocity_cov(s.state, s.covariance)
        return Track(
            uuid=UUID(uuid=list(uuid.uuid5(_UUID_NS, f"{self.get_fully_qualified_name()}:{self.run_id}:{s.id}").bytes)),
            track_id=int(s.id), position=Point(x=float(s.position[0]), y=float(s.position[1]), z=float(s.position[2])),
            velocity=Vector3(x=float(s.velocity[0]), y=float(s.velocity[1]), z=float(s.velocity[2])),
            classification=cls, position_covariance=row_major(s.position_cov),
            velocity_covariance=row_major(vel_cov), model_names=MODEL_NAMES,
            model_probabilities=[float(v) for v in s.model_probs],
            classifier_score=float(s.score) if np.isfinite(s.score) else -1.0,
            confirmed=bool(s.confirmed), age=int(s.age), hits=int(s.hits), misses=int(s.misses))

    def _publish_markers(self, out: TrackArray, states) -> None:
        live = {s.id for s in states}
        for tid in list(self.trails):
            if tid not in live:
                del self.trails[tid]
        ma = MarkerArray(markers=[Marker(header=out.header, ns="tracks", action=Marker.DELETEALL)])
        for s, t in zip(states, out.tracks):
            trail = self.trails.setdefault(s.id, collections.deque(maxlen=self.p.trail_length))
            trail.append(t.position)
            uav = t.classification == Track.UAV
            colour = (0.1, 1.0, 0.2) if uav else (1.0, 0.85, 0.1) if s.confirmed else (0.6, 0.6, 0.6)
            col = ColorRGBA(r=colour[0], g=colour[1], b=colour[2], a=1.0 if s.confirmed else 0.5)
            line = Marker(header=out.header, ns="tracks", id=2 * s.id, type=Marker.LINE_STRIP, action=Marker.ADD,
                          scale=Vector3(x=4.0 if uav else 1.5), color=col, points=list(trail))
            line.pose.orientation.w = 1.0
            ma.markers.append(line)
            if s.confirmed:
                label = Marker(header=out.header, ns="tracks", id=2 * s.id + 1, type=Marker.TEXT_VIEW_FACING,
                               action=Marker.ADD, scale=Vector3(z=16.0), color=col,
                               text=f"{'UAV ' if uav else ''}#{s.id}")
                label.pose.position = Point(x=t.position.x, y=t.position.y, z=t.position.z + 25.0)
                label.pose.orientation.w = 1.0
                ma.markers.append(label)
        self.publish(self.markers, ma)

    def status_phrase(self) -> str:
        v = self.diagnostic_values()
        return (f"{super().status_phrase()}, {v['tracks']} tracks, {v['confirmed']} confirmed, "
                f"{v['verified']} verified UAV")

    def diagnostic_values(self):
        tracks = self.level.tracker.tracks
        return {"tracks": len(tracks), "confirmed": sum(t.confirmed for t in tracks),
                "verified": sum(t.verified for t in tracks), "frames_thinned": self.level.frames_thinned}


def objects_from(msg: DetectionArray) -> tuple[Objects, np.ndarray, int]:
    """The tracker's view of a DetectionArray: objects (positions, Doppler,
    signal metrics), their (M, 2) spatial and velocity confidences, and the
    number of detections left out for holding a non-finite value, a value
    beyond any sensor's range or a confidence outside [0, 1]."""
    n = len(msg.detections)
    pos = np.array([(d.centroid.x, d.centroid.y, d.centroid.z) for d in msg.detections], float).reshape(n, 3)
    dop = np.array([d.doppler for d in msg.detections], float)
    feats = np.array([(d.snr, d.scr, d.noise, d.signal_power, d.rx_power) for d in msg.detections],
                     float).reshape(n, 5)
    count = np.array([d.point_count for d in msg.detections], np.int64)
    conf = np.array([(d.spatial_confidence, d.velocity_confidence) for d in msg.detections], float).reshape(n, 2)
    with np.errstate(invalid="ignore"):  # NaN compares False: dropped with the rest
        ok = ((np.abs(pos) <= MAX_ABS_VALUE).all(1) & (np.abs(dop) <= MAX_ABS_VALUE)
              & (np.abs(feats) <= MAX_ABS_VALUE).all(1) & ((conf >= 0) & (conf <= 1)).all(1))
    return (Objects(pos[ok], dop[ok], feats[ok], count[ok], np.zeros(0, np.int64)), conf[ok],
            int(n - ok.sum()))


NODE_CLASS = UavTracker


def main(args=None) -> int:
    return run_node(UavTracker, args)
