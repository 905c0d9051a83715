"""`sense sim` and `sense bench sim` from the command line."""
import json

import pytest

from sense_nodes.cli.main import main as sense


def test_stats_writes_the_contract_keys(tmp_path):
    out = tmp_path / "stats.json"
    rc = sense(["sim", "stats", "straight_60_r1", "S_2_r1", "--max-frames", "60", "--no-cubes",
                "--json", str(out)])
    assert rc == 0
    figs = json.loads(out.read_text())
    for key in ("noise_points_per_frame", "noise_to_uav_ratio", "single_point_auc",
                "uav_point_missing_pct", "frames", "paper_noise_points_per_frame"):
        assert key in figs
    assert figs["frames"] == 120
    assert figs["paper_noise_points_per_frame"] == 168.05
    assert 0.5 <= figs["single_point_auc"] <= 1.0
    assert figs["noise_to_uav_ratio"] > 50
    assert "straight_noise_points_per_frame" in figs and "shape_noise_points_per_frame" in figs
    # which noise gives the UAV away: one AUC per noise source, clutter always among them
    assert 0.0 <= figs["single_point_auc_vs_clutter"] <= 1.0


@pytest.mark.parametrize("args, named", [
    (["sim", "stats", "nope_r1"], "nope_r1"),
    (["sim", "stats", "--family", "hexagon"], "--family"),
    (["sim", "stats", "straight_0_r1", "--max-frames", "-1"], "--max-frames"),
    (["sim", "plot", "straight_0_r1", "--out", "x.png", "--frames", "9:3"], "--frames"),
    (["sim", "write", "straight_0_r1", "--out", "x", "--seed", "-2"], "--seed"),
    (["bench", "sim", "--frames", "0"], "--frames"),
])
def test_bad_parameters_are_named(args, named, capsys):
    assert sense(args) == 2
    assert named in capsys.readouterr().err


def test_plot_writes_a_png(tmp_path):
    out = tmp_path / "fig3.png"
    assert sense(["sim", "plot", "star_2_r1", "--out", str(out), "--frames", "0:20"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 50_000


def test_bench_reports_real_time_factor(tmp_path):
    out = tmp_path / "bench.json"
    assert sense(["bench", "sim", "--frames", "5", "--repeats", "2", "--json", str(out)]) == 0
    figs = json.loads(out.read_text())
    assert figs["x_realtime"] > 0 and figs["frames_timed"] == 10
