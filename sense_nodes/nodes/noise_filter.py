"""`noise_filter`: BSense point level (Section 3.2). Removes points that look
like their cube's noise fingerprint; refits the fingerprints from recent
frames (Section 3.2.4) on a timer or on demand through the `refit` service.

Subscribes  points (PointCloud2), tracks (TrackArray: confirmed UAV tracks
            whose neighbourhood is excluded from refits), truth
            (GroundTruthArray, when the source has it: frames with a visible
            UAV are never used for a fit)
Publishes   points_filtered (PointCloud2, sensor-data QoS)
Service     refit (sense_nodes/RefitNoiseModel)

Without a model (none in the cache, none named) the node does not guess: it
passes every point through and says, every `warn_period_s`, how to get one
(`sense calibrate`, or the `refit` service once UAV-free frames were seen).
Only where the source publishes truth does it fit one by itself, from
`bootstrap_frames` frames the truth shows free of UAVs. A model file records
where it came from; the node logs it at start and at every replacement.
"""
from __future__ import annotations

import threading

import numpy as np
from sensor_msgs.msg import PointCloud2

from sense_nodes.data import cloud_codec
from sense_nodes.core.bsense.noise_model import NoiseModel, NoiseModelConfig, NoiseModelFileError
from sense_nodes.core.bsense.stages import PointLevel
from sense_nodes.core.bsense.refit import RefitBuffer, RefitSchedule, StampGuard, UavTruth, refit_refusal
from sense_nodes.msg import GroundTruth, GroundTruthArray, TrackArray
from sense_nodes.data.bags import stamp_ns_of
from sense_nodes.nodes import convert
from sense_nodes.nodes.base import RESULT_QOS, SENSOR_QOS, Param, ParameterError, SenseNode, run_node, stamped_like
from sense_nodes.srv import RefitNoiseModel


NO_MODEL_HINT = ("points pass through unfiltered. Calibrate on UAV-free frames with `sense calibrate` "
                 "(or call this node's `refit` service while the sky is known to be free of UAVs)")


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
        Param("bootstrap_frames", 100, "UAV-free frames (by the source's truth) that fit a first model when "
              "there is none; without truth no model is fitted by itself", range=(10, 100_000)),
        Param("warn_period_s", 30.0, "seconds between the warnings that the node runs without a model",
              range=(1.0, 3600.0), runtime=True),
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
        self.level = PointLevel(self._load())   # the chain's point level: what the evaluation runs
        self.history = RefitBuffer(max(self.p.refit_frames, self.p.bootstrap_frames), self.p.refit_max_points)
        self.stamps = StampGuard(self.p.max_stamp_jump_s)
        self.track_positions: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        self.schedule = RefitSchedule()  # on the node's clock (sim time under replay), never a message stamp
        self.refits_refused = 0
        self.pub = self.create_publisher(PointCloud2, "points_filtered", SENSOR_QOS)
        self.subscribe(PointCloud2, "points", self.on_points, SENSOR_QOS, kind="points")
        self.subscribe(TrackArray, "tracks", self.on_tracks, RESULT_QOS, kind="tracks", primary=False)
        self.truth = UavTruth(2 * self.history.frames.maxlen)
        self.subscribe(GroundTruthArray, "truth", self.on_truth, RESULT_QOS, kind="truth", primary=False)
        self.create_service(RefitNoiseModel, "refit", self.on_refit)
        self._warn_timer = self.create_timer(self.p.warn_period_s, self._warn_no_model)

    @property
    def model(self) -> NoiseModel | None:
        return self.level.model

    @model.setter
    def model(self, model: NoiseModel | None) -> None:
        self.level.model = model

    def _load(self):
        try:
            model = NoiseModel.load(self.path)
        except NoiseModelFileError as exc:
            if self.p.model_file:  # the user named a file: it must be readable
                raise ParameterError(f"{self.get_fully_qualified_name()}: parameter 'model_file': {exc}") from None
            self.get_logger().warning(f"no noise model at {self.path}: {NO_MODEL_HINT}")
            return None
        origin = model.provenance or {"origin": "not recorded"}
        self.get_logger().info(f"noise model {self.path}: {model.summary()}; made by {origin}")
        return model

    def _warn_no_model(self) -> None:
        if self.model is None:
            free = self.truth.count_free(self.history.frames)
            self.get_logger().warning(f"still no noise model ({len(self.history)} frames seen, {free} of them "
                                      f"UAV-free by the truth): {NO_MODEL_HINT}")

    def on_parameters_changed(self, names):
        if "warn_period_s" in names:
            self._warn_timer.cancel()
            self._warn_timer = self.create_timer(self.p.warn_period_s, self._warn_no_model)

    def on_truth(self, msg: GroundTruthArray) -> None:
        uav = any(o.object_class == GroundTruth.UAV and o.visible for o in msg.objects)
        with self._lock:
            self.truth.record(stamp_ns_of(msg), uav)

    def on_tracks(self, msg: TrackArray) -> None:
        confirmed = [(t.position.x, t.position.y, t.position.z) for t in msg.tracks if t.confirmed]
        stamp = stamp_ns_of(msg)
        with self._lock:
            self.track_positions[stamp] = np.asarray(confirmed, float).reshape(-1, 3)
            while len(self.track_positions) > self.history.frames.maxlen:
                self.track_positions.pop(next(iter(self.track_positions)))

    def on_points(self, msg: PointCloud2) -> None:
        points = cloud_codec.as_points(cloud_codec.decode(msg))
        finite = cloud_codec.finite_mask(points, cloud_codec.MAX_ABS_VALUE)
        if not finite.all():
            self.count_nonfinite("points", int((~finite).sum()))
            points = points[finite]
        stamp = stamp_ns_of(msg)
        with self._lock:
            buffered = self.stamps.accept(stamp)
            if buffered:
                self.history.add(stamp, points)
                self.schedule.frame_added()
            model = self.model
        keep = self.level.keep(points)
        self.publish(self.pub, convert.pointcloud2(points[keep], stamped_like(msg.header)))
        if not buffered:
            return
        try:
            free = self.truth.count_free(self.history.frames) if model is None and self.truth.known else 0
            if free >= self.p.bootstrap_frames:
                self._refit(len(self.history), "bootstrap on UAV-free frames")
            elif self.p.update_interval_s > 0 and self.schedule.due(
                    self.get_clock().now().nanoseconds, self.p.update_interval_s, self.p.refit_frames):
                self._refit(self.p.refit_frames, "scheduled")
        except ValueError as exc:
            self.get_logger().warning(f"noise model refit skipped: {exc}")

    def _refit(self, n_frames: int, why: str) -> tuple[NoiseModel, int]:
        with self._lock:
            recent = self.truth.free(self.history.recent(n_frames))
            exclude = [self.track_positions.get(f.stamp_ns, np.zeros((0, 3))) for f in recent]
        if not recent:
            raise ValueError("no UAV-free frame buffered (the truth shows a UAV in every one)")
        self.schedule.done(self.get_clock().now().nanoseconds)
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
            replaced, self.model = self.model is not None, model
        log = self.get_logger().warning if replaced else self.get_logger().info
        log(f"noise model {'replaced' if replaced else 'fitted'} ({why}) on {len(recent)} frames: "
            f"{model.summary()}; saved to {self.path}")
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

    def status_phrase(self) -> str:
        model = f"model {self.model.summary()['cubes']} cubes" if self.model is not None else "NO MODEL (pass-through)"
        return f"{super().status_phrase()}, {model}"

    def diagnostic_values(self):
        s = self.model.summary() if self.model is not None else {}
        return {"model": self.path if self.model is not None else "none (points pass through)",
                "frames_with_uav_excluded": self.truth.excluded,
                "cubes": s.get("cubes", 0), "gaussian_cubes": s.get("gaussian_cubes", 0),
                "frames_buffered": len(self.history), "buffer_mb": f"{self.history.nbytes() / 2**20:.1f}",
                "frames_thinned": self.history.thinned, "stamps_backwards": self.stamps.backwards,
                "stamps_jumped": self.stamps.jumps, "refits_refused": self.refits_refused}


NODE_CLASS = NoiseFilter


def main(args=None) -> int:
    return run_node(NoiseFilter, args)
