"""The evaluation's per-fold choice of TrajFormer's verification threshold, and the
TrajFormer feature ablation (`sense eval trajformer`)."""
from __future__ import annotations

import argparse

import numpy as np
import pytest

from sense_nodes.core.bsense.noise_model import NoiseModel
from sense_nodes.eval.bsense_cases import calibration_spec, load_case
from sense_nodes.eval.bsense_policy import choose_verify_threshold
from bsense_helpers import ConstantClassifier




def test_verification_threshold_is_the_best_f1_on_the_held_out_cases():
    case = load_case("straight_30_r1", max_frames=40)
    calib = load_case("", spec=calibration_spec(case.day, n_frames=60))
    model = NoiseModel().fit([f.points for f in calib.frames])
    grid = (0.5, 0.9, 0.95, 0.98)
    thr, table = choose_verify_threshold([case], lambda c: model, (0.1, 0.1), ConstantClassifier(0.96), grid)
    # every confirmed track reaches 0.96: thresholds up to 0.95 output them all (same F1),
    # 0.98 outputs nothing; the tie goes to the higher threshold
    assert table[0.5] == table[0.9] == table[0.95] > 0.0
    assert table[0.98] == 0.0
    assert thr == 0.95


def test_and_rule_keeps_a_subset_of_the_or_rule_objects():
    """Stage 4's objects under "and" (both confidences pass) are never more
    than under the paper's "or", and with equal thresholds "or" at stage 4
    keeps the same objects as stage 3 (C_v <= C_s: a velocity match needs a
    spatial one)."""
    from sense_nodes.eval import bsense_metrics as M
    from sense_nodes.eval.bsense_stage import Probes, run_stage
    case = load_case("straight_30_r1", max_frames=40)
    calib = load_case("", spec=calibration_spec(case.day, n_frames=60))
    model = NoiseModel().fit([f.points for f in calib.frames])
    kept = {}
    derived = M.DetectionCounts()
    for stage, rule in ((3, "or"), (4, "or"), (4, "and")):
        c = M.DetectionCounts()
        run_stage(case, stage, model, (0.1, 0.1), None, combine=rule,
                  probes=Probes(objects=c, objects_and=derived if (stage, rule) == (4, "or") else None))
        kept[stage, rule] = c.false_per_frame
    assert kept[4, "or"] == kept[3, "or"]
    assert kept[4, "and"] < kept[4, "or"]
    assert derived.false_per_frame == kept[4, "and"]      # the eval's one-pass count


class _Alternating:
    """A classifier whose verdicts vary from window to window (so stage 5's
    output is a strict subset of the confirmed tracks)."""

    def __init__(self):
        self.calls = 0

    def predict_proba(self, windows):
        self.calls += 1
        return np.full(len(windows), 0.9 if self.calls % 3 else 0.1)


def test_stage4_from_the_stage5_run_is_the_stage4_run():
    """Stage 4's figures derived from stage 5's run (same object filter and
    tracker) are those of a stage-4 run of its own."""
    from sense_nodes.core.bsense.verification import OutputPolicy
    from sense_nodes.eval import bsense_metrics as M
    from sense_nodes.eval.bsense_stage import Probes, StageResult, run_stage
    case = load_case("straight_30_r1", max_frames=40)
    calib = load_case("", spec=calibration_spec(case.day, n_frames=60))
    model = NoiseModel().fit([f.points for f in calib.frames])
    own_probes = Probes(objects=M.DetectionCounts(), raw_objects=M.DetectionCounts(), detections=[])
    own = run_stage(case, 4, model, (0.1, 0.1), None, probes=own_probes)
    derived = (StageResult(), Probes(objects=M.DetectionCounts(), raw_objects=M.DetectionCounts(), detections=[]))
    full = run_stage(case, 5, model, (0.1, 0.1), _Alternating(), OutputPolicy(0.5), stage4=derived)
    assert own.det.tp > 0 and full.det.tp + full.det.fp < own.det.tp + own.det.fp
    assert (own.det, own.gospa_sum, own.bands) == (derived[0].det, derived[0].gospa_sum, derived[0].bands)
    for a, b in zip(own.hota_frames + own.outputs, derived[0].hota_frames + derived[0].outputs):
        for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
            np.testing.assert_array_equal(u, v)
    assert (own_probes.objects, own_probes.raw_objects) == (derived[1].objects, derived[1].raw_objects)
    for (k1, g1), (k2, g2) in zip(own_probes.detections, derived[1].detections):
        np.testing.assert_array_equal(k1, k2)
        np.testing.assert_array_equal(g1, g2)


def test_feature_ablation_scores_a_track_by_its_best_window():
    """`sense eval trajformer`: a track is decided by its highest window (the
    full system verifies at the first window over the threshold) and labelled
    by most of its windows; false tracks are counted at a true-track rate."""
    from sense_nodes.eval.trajformer_features import false_tracks_at_tpr, track_scores

    p = np.array([0.2, 0.9, 0.1, 0.3, 0.95, 0.4, 0.8])
    y = np.array([1, 1, 0, 0, 1, 0, 0])
    tracks = np.array([7, 7, 3, 3, 5, 9, 9])
    score, label = track_scores(p, y, tracks)          # tracks sorted: 3, 5, 7, 9
    assert np.allclose(score, [0.3, 0.95, 0.9, 0.8])
    assert label.tolist() == [False, True, True, False]
    assert false_tracks_at_tpr(score, label, 100) == 0     # keeping both true tracks needs 0.9: track 9 below
    assert false_tracks_at_tpr(score, np.array([False, True, False, False]), 100) == 0
    assert false_tracks_at_tpr(np.array([0.5, 0.6, 0.9]), np.array([True, False, True]), 100) == 1


def test_feature_ablation_rejects_bad_folds():

    from sense_nodes.errors import UserError
    from sense_nodes.eval.trajformer_features import main

    args = argparse.Namespace(folds="2,9", seeds=1, epochs=1, max_frames=10, seed=None, site_seed=None)
    with pytest.raises(UserError, match="--folds"):
        main(args)
