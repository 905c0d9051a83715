"""The peer tracker: the same detections through Stone Soup.

Stone Soup has no IMM, so the peer is its standard single-model chain: a
3-D constant-velocity model with an unscented Kalman predictor and updater,
Mahalanobis-gated hypotheses, GNN with 2-D assignment, a multi-measurement
initiator (a track is born after ``min_points`` associated measurements:
the same K as our tracker) and a covariance-based deleter. Its output, like
our tracker's at stage 4, is every live track that has been confirmed.
"""
from __future__ import annotations

import datetime as _dt
import time

import numpy as np
from sense_nodes.bs_sensor import FRAME_S


class StoneSoupTracker:
    """Frame-by-frame wrapper: ``step(positions (M, 3)) -> (K, 3)`` outputs."""

    def __init__(self, dt: float = FRAME_S, meas_sd_m: float = 3.0, accel_sd: float = 1.0,
                 gate: float = 4.0, confirm: int = 3, delete_cov_m2: float = 400.0):
        from stonesoup.dataassociator.neighbour import GNNWith2DAssignment
        from stonesoup.deleter.error import CovarianceBasedDeleter
        from stonesoup.hypothesiser.distance import DistanceHypothesiser
        from stonesoup.initiator.simple import MultiMeasurementInitiator
        from stonesoup.measures import Mahalanobis
        from stonesoup.models.measurement.linear import LinearGaussian
        from stonesoup.models.transition.linear import CombinedLinearGaussianTransitionModel, ConstantVelocity
        from stonesoup.predictor.kalman import UnscentedKalmanPredictor
        from stonesoup.types.state import GaussianState
        from stonesoup.updater.kalman import UnscentedKalmanUpdater

        self.dt = dt
        self.transition = CombinedLinearGaussianTransitionModel([ConstantVelocity(accel_sd ** 2)] * 3)
        self.measurement = LinearGaussian(ndim_state=6, mapping=(0, 2, 4),
                                          noise_covar=np.eye(3) * meas_sd_m ** 2)
        predictor = UnscentedKalmanPredictor(self.transition)
        updater = UnscentedKalmanUpdater(self.measurement)
        hyp = DistanceHypothesiser(predictor, updater, measure=Mahalanobis(), missed_distance=gate)
        self.associator = GNNWith2DAssignment(hyp)
        self.deleter = CovarianceBasedDeleter(covar_trace_thresh=delete_cov_m2, mapping=[0, 2, 4])
        # position from the first measurement; speed unknown up to ~20 m/s (UAV class)
        prior = GaussianState(np.zeros((6, 1)), np.diag([meas_sd_m ** 2, 15.0 ** 2] * 3))
        init_deleter = CovarianceBasedDeleter(covar_trace_thresh=delete_cov_m2, mapping=[0, 2, 4])
        self.initiator = MultiMeasurementInitiator(
            prior_state=prior, deleter=init_deleter,
            data_associator=GNNWith2DAssignment(DistanceHypothesiser(predictor, updater, Mahalanobis(), gate)),
            updater=updater, measurement_model=self.measurement, min_points=confirm)
        self.tracks: set = set()
        self.t0 = _dt.datetime(2025, 1, 1)
        self.k = 0

    def step(self, positions: np.ndarray) -> np.ndarray:
        from stonesoup.types.detection import Detection

        now = self.t0 + _dt.timedelta(seconds=self.k * self.dt)
        self.k += 1
        dets = {Detection(np.asarray(p, float).reshape(3, 1), timestamp=now, measurement_model=self.measurement)
                for p in np.asarray(positions, float).reshape(-1, 3)}
        hyps = self.associator.associate(self.tracks, dets, now)
        used = set()
        for track in self.tracks:
            h = hyps[track]
            if h:
                track.append(self._update(h))
                used.add(h.measurement)
            else:
                track.append(h.prediction)
        self.tracks -= self.deleter.delete_tracks(self.tracks)
        self.tracks |= self.initiator.initiate(dets - used, now)
        return np.array([np.asarray(t.state_vector).ravel()[[0, 2, 4]] for t in self.tracks]).reshape(-1, 3)

    def _update(self, hypothesis):
        return self.associator.hypothesiser.updater.update(hypothesis)


def run_peer(detections_per_frame, truth_per_frame) -> dict:
    """Stone Soup over the detections; F1, error, GOSPA, ms per frame."""
    from sense_nodes.eval import bsense_metrics as M

    tracker = StoneSoupTracker()
    counts, gospa, times = M.DetectionCounts(), 0.0, []
    for det, gt in zip(detections_per_frame, truth_per_frame):
        t0 = time.perf_counter()
        out = tracker.step(det)
        times.append((time.perf_counter() - t0) * 1e3)
        counts.add(out, gt)
        gospa += M.gospa(out, gt)["total"]
    return {"counts": counts, "gospa": gospa / max(counts.frames, 1), "times_ms": times}
