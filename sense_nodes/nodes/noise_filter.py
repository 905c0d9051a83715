"""`noise_filter`: BSense point level (Section 3.2). Removes points that look
like their cube's noise fingerprint; refits the fingerprints from recent
frames (Section 3.2.4) on a timer or on demand through the `refit` service.

Subscribes  points (PointCloud2), tracks (TrackArray: confirmed UAV tracks
            whose neighbourhood is excluded from refits)
Publishes   points_filtered (PointCloud2, sensor-data QoS)
Service     refit (sense_nodes/RefitNoiseModel)

Without a model file the node passes every point through while it collects
`bootstrap_frames` frames, assumed UAV-free (as the paper's 10-minute
initial recording), then fits and saves the model.
"""
from __future__ import annotations

import threading

import numpy as np
from sensor_msgs.msg import PointCloud2

from sense_nodes.core import cloud_codec
from sense_nodes.core.bsense.noise_model import NoiseModel, NoiseModelConfig, NoiseModelFileError
from sense_nodes.core.bsense.refit import RefitBuffer, StampGuard, refit_refusal
from sense_nodes.msg import TrackArray
from sense_nodes.data.bags import stamp_ns_of
from sense_nodes.nodes import convert
from sense_nodes.nodes.base import RESULT_QOS, SENSOR_QOS, Param, ParameterError, SenseNode, run_node, stamped_like
from sense_nodes.srv import RefitNoiseModel


def default_model_path() -> str:
    from sense_nodes.data.paths import cache_dir
    return str(cache_dir("bsense") / "noise_model.npz")


class NoiseFilter(SenseNode):
    DEFAULT_NAME = "noise_filter"
    PARAMS = (
        Param("model_file", "", "noise-model file to load and to save refits to ('' = the cache default)"),
        Param("cube_m", 40.0, "cube edge length, m (Section 3.2.2; keep below 50 m, Appendix A)",
              range=(5.0, 200.0)),
        Param("percentile", 80.0, "similarity threshold percentile p of Eq. 11", range=(1.0, 99.9)),
        Param("refit_frames", 700, "N_u: frames a refit uses (Section 3.2.4)", range=(10, 100_000)),
        Param("update_interval_s", 172800.0, "T_u: seconds between automatic refits (0 = never; paper: 2 days)",
              range=(0.0, 3.2e7), runtime=True),
        Param("bootstrap_frames", 100, "frames collected to fit a first model when there is none",
              range=(10, 100_000)),
        Param("exclude_radius_m", 15.0, "points this close to a confirmed track are left out of refits",
              range=(0.0, 500.0), runtime=True),
        Param("max_stamp_jump_s", 60.0, "a frame whose stamp goes backwards or jumps further ahead than this "
              "is filtered but not kept for refits", range=(0.1, 86400.0)),
        Param("refit_max_points", 2000, "points kept per buffered frame (larger frames are subsampled), "
              "which bounds the refit buffer in bytes", range=(100, 1_000_000)),
        Param("min_refit_cubes", 10, "a refit modelling fewer cubes never replaces the model", range=(1, 100_000),
              runtime=True),
        Param("min_gaussian_pct", 50.0, "a refit with a smaller share of jointly Gaussian cubes never "
              "replaces the model", range=(0.0, 100.0), runtime=True),
    )

    def __init__(self, node_name: str | None = None, **kwargs):
        super().__init__(node_name, **kwargs)
        self.path = self.p.model_file or default_model_path()
        self.config = NoiseModelConfig(cube_m=self.p.cube_m, percentile=self.p.percentile)
        self.model = self._load()
        self.history = RefitBuffer(max(self.p.refit_frames, self.p.bootstrap_frames), self.p.refit_max_points)
        self.stamps = StampGuard(self.p.max_stamp_jump_s)
        self.track_positions: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        self._last_refit_clock_ns = None  # the node's clock (sim time under replay), never a message stamp
        self._frames_since_refit = 0
        self.refits_refused = 0
        self.pub = self.create_publisher(PointCloud2, "points_filtered", SENSOR_QOS)
        self.subscribe(PointCloud2, "points", self.on_points, SENSOR_QOS, kind="points")
        self.subscribe(TrackArray, "tracks", self.on_tracks, RESULT_QOS, kind="tracks")
        self.create_service(RefitNoiseModel, "refit", self.on_refit)

    def _load(self):
        try:
            model = NoiseModel.load(self.path)
        except NoiseModelFileError as exc:
            if self.p.model_file:  # the user named a file: it must be readable
                raise ParameterError(f"{self.get_fully_qualified_name()}: parameter 'model_file': {exc}") from None
            self.get_logger().warning(
                f"no noise model at {self.path}: passing points through while collecting "
                f"{self.p.bootstrap_frames} frames (assumed UAV-free) to fit one")
            return None
        origin = model.provenance or {"origin": "not recorded"}
        self.get_logger().info(f"noise model {self.path}: {model.summary()}; made by {origin}")
        return model

    def on_tracks(self, msg: TrackArray) -> None:
        confirmed = [(t.position.x, t.position.y, t.position.z) for t in msg.tracks if t.confirmed]
        stamp = stamp_ns_of(msg)
        with self._lock:
            self.track_positions[stamp] = np.asarray(confirmed, float).reshape(-1, 3)
            while len(self.track_positions) > self.history.frames.maxlen:
                self.track_positions.pop(next(iter(self.track_positions)))

    def on_points(self, msg: PointCloud2) -> None:
        points = cloud_codec.as_points(cloud_codec.decode(msg))
        finite = cloud_codec.finite_mask(points)
        if not finite.all():
            self.count_nonfinite("points", int((~finite).sum()))
            points = points[finite]
        stamp = stamp_ns_of(msg)
        with self._lock:
            buffered = self.stamps.accept(stamp)
            if buffered:
                self.history.add(stamp, points)
                self._frames_since_refit += 1
            model = self.model
        keep = model.filter(points) if model is not None else np.ones(points.shape[0], bool)
        self.publish(self.pub, convert.pointcloud2(points[keep], stamped_like(msg.header)))
        if not buffered:
            return
        try:
            if model is None and len(self.history) >= self.p.bootstrap_frames:
                self._refit(self.p.bootstrap_frames, "bootstrap")
            elif self.p.update_interval_s > 0 and self._refit_due():
                self._refit(self.p.refit_frames, "scheduled")
        except ValueError as exc:
            self.get_logger().warning(f"noise model refit skipped: {exc}")

    def _refit_due(self) -> bool:
        """T_u passed on the node's clock and N_u new frames arrived since
        the last refit (Section 3.2.4); no message stamp decides this."""
        now = self.get_clock().now().nanoseconds
        if self._last_refit_clock_ns is None:
            self._last_refit_clock_ns = now
            return False
        return ((now - self._last_refit_clock_ns) * 1e-9 >= self.p.update_interval_s
                and self._frames_since_refit >= self.p.refit_frames)

    def _refit(self, n_frames: int, why: str) -> tuple[NoiseModel, int]:
        with self._lock:
            recent = self.history.recent(n_frames)
            exclude = [self.track_positions.get(f.stamp_ns, np.zeros((0, 3))) for f in recent]
        self._last_refit_clock_ns = self.get_clock().now().nanoseconds
        self._frames_since_refit = 0
        model = NoiseModel(self.config).fit([f.points for f in recent], exclude=exclude,
                                            exclude_radius_m=self.p.exclude_radius_m)
        refusal = refit_refusal(model, self.p.min_refit_cubes, self.p.min_gaussian_pct)
        if refusal:  # never replace a model by a worse one
            self.refits_refused += 1
            raise ValueError(f"{len(recent)} frames: {refusal}; keeping the current model")
        model.provenance = {"origin": f"{why} refit by {self.get_fully_qualified_name()}",
                            "frames": len(recent), "first_stamp_ns": recent[0].stamp_ns,
                            "last_stamp_ns": recent[-1].stamp_ns}
        model.save(self.path)
        with self._lock:
            self.model = model
        self.get_logger().info(f"noise model refit ({why}) on {len(recent)} frames: {model.summary()}; "
                               f"saved to {self.path}")
        return model, len(recent)

    def on_refit(self, request, response):
        n = request.num_frames or self.p.refit_frames
        if not self.history:
            response.success, response.message = False, "no frames received yet"
            return response
        try:
            model, used = self._refit(n, "service")
        except (ValueError, OSError) as exc:
            response.success, response.message = False, f"refit failed: {exc}"
            return response
        s = model.summary()
        response.success = True
        response.message = f"fitted on {used} frames, saved to {self.path}"
        response.frames_used = used
        response.cubes_fitted = s["cubes"]
        response.cubes_gaussian = s["gaussian_cubes"]
        return response

    def diagnostic_values(self):
        s = self.model.summary() if self.model is not None else {}
        return {"model": self.path if self.model is not None else "none (bootstrapping)",
                "cubes": s.get("cubes", 0), "gaussian_cubes": s.get("gaussian_cubes", 0),
                "frames_buffered": len(self.history), "buffer_mb": f"{self.history.nbytes() / 2**20:.1f}",
                "frames_thinned": self.history.thinned, "stamps_backwards": self.stamps.backwards,
                "stamps_jumped": self.stamps.jumps, "refits_refused": self.refits_refused}


NODE_CLASS = NoiseFilter


def main(args=None) -> int:
    return run_node(NoiseFilter, args)
