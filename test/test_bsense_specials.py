"""The BSense evaluation's special cases (Section 4.5): drawn several times,
each draw through one fold's system, the headline figures pooled over the
draws (`sense eval bsense --special-draws`)."""
from __future__ import annotations

import argparse

import numpy as np
import pytest

from sense_nodes.data.bs_sim import library
from sense_nodes.eval import bsense_metrics as M
from sense_nodes.eval.bsense_specials import SPECIALS, SpecialDraw, draw_seed, pooled, spread_figures
from bsense_helpers import ConstantClassifier


def _counts(tp, fp, fn, frames, frames_with_fp=0):
    return M.DetectionCounts(tp=tp, fp=fp, fn=fn, frames=frames, error_sum_m=float(tp), frames_with_fp=frames_with_fp)


def test_pooled_figure_is_the_figure_of_the_summed_counts():
    """A kind's headline F1 is that of its draws' summed counts, not the
    mean of their F1s; min and max are the worst and best draw."""
    a, b = _counts(90, 0, 10, 100), _counts(10, 40, 90, 100)
    free = [_counts(0, 3, 0, 50, 3), _counts(0, 0, 0, 150, 0)]
    draws = [SpecialDraw("multi_uav", 0, 0, 7, {"multi_uav": a, "multi_uav_basic": _counts(1, 99, 99, 100)}),
             SpecialDraw("multi_uav", 1, 1, 8, {"multi_uav": b, "multi_uav_basic": _counts(2, 98, 98, 100)})]
    draws += [SpecialDraw("uav_free", j, j, 9, {"uav_free": c, "uav_free_default": c}) for j, c in enumerate(free)]
    pool = pooled(draws)
    summed = a.merge(b)
    assert pool["multi_uav"] == summed
    assert pool["multi_uav"].f1_pct == pytest.approx(summed.f1_pct)
    assert pool["multi_uav"].f1_pct != pytest.approx((a.f1_pct + b.f1_pct) / 2)
    assert pool["multi_uav_basic"].tp == 3
    assert pool["uav_free"].fp_frame_rate_pct == pytest.approx(100 * 3 / 200)     # 3 of the 200 frames
    assert np.isnan(pool["cross_site"].f1_pct)            # a kind without draws scores as empty
    f = spread_figures(draws)
    assert f["multi_uav_f1_min_pct"] == pytest.approx(b.f1_pct)
    assert f["multi_uav_f1_max_pct"] == pytest.approx(a.f1_pct)
    assert (f["multi_uav_draw0_f1_pct"], f["multi_uav_draw1_f1_pct"]) == (a.f1_pct, b.f1_pct)
    assert f["multi_uav_draw1_fold"] == 1
    assert (f["uav_free_fp_rate_min_pct"], f["uav_free_fp_rate_max_pct"]) == (0.0, pytest.approx(6.0))
    assert np.isnan(f["cross_site_f1_min_pct"]) and "cross_site_draw0_f1_pct" not in f


@pytest.mark.parametrize("seed", [None, 7601])
def test_draw_zero_is_the_case_a_single_draw_evaluation_scores(seed):
    """Draw 0 of each kind is the library case of the eval's own seed; the
    later draws are other cases, the same ones for the same seed."""
    for kind, (name, _, _) in SPECIALS.items():
        assert library.spec(name, draw_seed(kind, seed, 0), 7602) == library.spec(name, seed, 7602)
        seeds = [draw_seed(kind, seed, j) for j in range(4)]
        assert seeds == [draw_seed(kind, seed, j) for j in range(4)]
        assert len(set(seeds)) == 4
        assert library.spec(name, seeds[1], 7602) != library.spec(name, seed, 7602)
    assert draw_seed("multi_uav", seed, 1) != draw_seed("multi_uav", 1 if seed is None else seed + 1, 1)




def test_each_draw_runs_through_its_folds_system():
    """Draw j goes through fold (j mod folds)'s classifier: fold 1's rejects
    every track, so its draws output nothing while fold 0's output tracks."""
    from sense_nodes.core.bsense.noise_model import NoiseModel
    from sense_nodes.core.bsense.verification import OutputPolicy
    from sense_nodes.eval.bsense_cache import StageCache
    from sense_nodes.eval.bsense_cases import calibration_spec, load_case
    from sense_nodes.eval.bsense_casework import CaseRunner, FixedModel
    from sense_nodes.eval.bsense_specials import score_specials
    from sense_nodes.eval.bsense_stage import CaseLevels

    calib = load_case("", spec=calibration_spec(0, n_frames=60))
    levels = CaseLevels(FixedModel(NoiseModel().fit([f.points for f in calib.frames]), "m"), StageCache(enabled=False))
    systems = {0: (ConstantClassifier(1.0), (0.1, 0.1), OutputPolicy(0.5)), 1: (ConstantClassifier(0.0), (0.1, 0.1), OutputPolicy(0.5))}
    draws = score_specials(systems, {}, levels, CaseRunner(levels, worker=False), None, None, 40, 3)
    assert [(d.kind, d.draw, d.fold) for d in draws] == [(k, j, j % 2) for k in SPECIALS for j in range(3)]
    for d in draws:
        assert d.seed == draw_seed(d.kind, None, d.draw)
        full = d.counts[d.kind]
        assert full.frames == 40
        outputs = full.tp + full.fp
        assert (outputs == 0) == (d.fold == 1), (d.kind, d.draw, outputs)
        if d.kind != "uav_free":
            assert d.counts[f"{d.kind}_basic"].frames == 40


def test_special_draws_below_one_are_refused():
    from sense_nodes.errors import UserError
    from sense_nodes.eval import bsense_eval

    parser = argparse.ArgumentParser()
    bsense_eval.add_arguments(parser)
    assert parser.parse_args([]).special_draws == bsense_eval.SPECIAL_DRAWS >= 1
    with pytest.raises(UserError, match="--special-draws"):
        bsense_eval.main(parser.parse_args(["--special-draws", "0", "--plots", ""]))
