"""The evaluation's per-fold choice of TrajFormer's verification threshold."""
from __future__ import annotations

import numpy as np

from sense_nodes.core.bsense.noise_model import NoiseModel
from sense_nodes.eval.bsense_eval import calibration_spec, choose_verify_threshold, load_case


class _Constant:
    """A classifier that calls every window true with the same probability."""

    def __init__(self, p: float):
        self.p = p

    def predict_proba(self, windows):
        return np.full(len(windows), self.p)


def test_verification_threshold_is_the_best_f1_on_the_held_out_cases():
    case = load_case("straight_30_r1", max_frames=40)
    calib = load_case("", spec=calibration_spec(case.day, n_frames=60))
    model = NoiseModel().fit([f.points for f in calib.frames])
    grid = (0.5, 0.9, 0.95, 0.98)
    thr, table = choose_verify_threshold([case], lambda c: model, (0.1, 0.1), _Constant(0.96), grid)
    # every confirmed track reaches 0.96: thresholds up to 0.95 output them all (same F1),
    # 0.98 outputs nothing; the tie goes to the higher threshold
    assert table[0.5] == table[0.9] == table[0.95] > 0.0
    assert table[0.98] == 0.0
    assert thr == 0.95
