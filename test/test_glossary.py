"""The printed verdicts judge each figure in its own direction."""
from sense_nodes.eval.glossary import verdict


def test_figures_where_less_is_better_are_judged_so():
    # BSense's targets that must stay at or below the paper's value
    for key in ("uav_points_lost_pct", "uav_free_fp_rate_pct", "noise_after_filter_per_frame",
                "false_per_frame", "mean_loc_error_m", "total_median_ms"):
        assert verdict(key, 3.5, 1.7) == "NOT met" and verdict(key, 1.0, 1.7) == "met", key
    for key in ("f1_pct", "noise_removed_pct", "multi_uav_f1_pct", "cross_site_f1_pct"):
        assert verdict(key, 90.0, 95.0) == "NOT met" and verdict(key, 96.0, 95.0) == "met", key
    assert verdict("basic_f1_pct", 1.8, 3.65) is None          # a baseline is not a target
