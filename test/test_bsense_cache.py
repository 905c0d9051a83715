"""The BSense evaluation's stage cache: replayed point and cluster levels,
confidences, windows and networks give exactly what computing them gives,
on disk and across runs; ``--no-cache`` writes nothing."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from sense_nodes.core.bsense.noise_model import NoiseModel
from sense_nodes.eval import bsense_metrics as M
from sense_nodes.eval.bsense_cache import StageCache
from sense_nodes.eval.bsense_cases import calibration_spec, load_case
from sense_nodes.eval.bsense_stage import CaseClusters, Probes, case_clusters, run_stage, uav_confidences


@pytest.fixture(scope="module")
def case_and_model():
    case = load_case("straight_30_r1", max_frames=40)
    calib = load_case("", spec=calibration_spec(case.day, n_frames=60))
    return case, NoiseModel().fit([f.points for f in calib.frames])


def _figures(case, model, stage, clusters):
    pts, objs = M.PointCounts(), M.DetectionCounts()
    r = run_stage(case, stage, model, (0.1, 0.1), None, probes=Probes(points=pts, objects=objs), clusters=clusters)
    return (repr((r.det.f1_pct, r.det.false_per_frame, r.det.mean_error_m, r.gospa_sum)), vars(pts),
            repr(objs.false_per_frame), [o.tobytes() for o in r.outputs])


def test_replayed_levels_give_the_figures_of_a_computed_run(case_and_model, tmp_path):
    case, model = case_and_model
    cache = StageCache(root=tmp_path)
    first = case_clusters(case, model, cache, "m")
    again = case_clusters(case, model, StageCache(root=tmp_path), "m")      # a new run: read from disk
    assert len(list((tmp_path / "clusters").glob("*.npz"))) == 1
    for stage, clusters in ((2, first), (4, again), (4, first)):
        assert _figures(case, model, stage, clusters) == _figures(case, model, stage, None)
    basic = case_clusters(case, None, cache)
    assert _figures(case, None, 1, basic) == _figures(case, None, 1, None)
    np.testing.assert_array_equal(uav_confidences(case, model, again), uav_confidences(case, model))


def test_a_damaged_entry_is_recomputed_not_trusted(case_and_model, tmp_path):
    case, model = case_and_model
    case_clusters(case, model, StageCache(root=tmp_path), "m")
    (entry,) = (tmp_path / "clusters").glob("*.npz")
    entry.write_bytes(b"not an npz")
    cache = StageCache(root=tmp_path)
    clusters = case_clusters(case, model, cache, "m")
    assert cache.misses == 1 and cache.hits == 0
    assert isinstance(clusters, CaseClusters) and len(clusters.objects) == len(case.frames)
    assert np.load(entry, allow_pickle=False)["obj_off"].size == len(case.frames) + 1


def test_a_changed_input_makes_a_new_entry(case_and_model, tmp_path):
    case, model = case_and_model
    case_clusters(case, model, StageCache(root=tmp_path), "m")
    shorter = load_case("straight_30_r1", max_frames=20)
    cache = StageCache(root=tmp_path)
    case_clusters(shorter, model, cache, "m")
    case_clusters(case, model, cache, "another model")
    assert cache.misses == 2 and len(list((tmp_path / "clusters").glob("*.npz"))) == 3


@pytest.mark.slow
def test_quick_eval_cached_and_uncached_give_the_same_figures(tmp_path, monkeypatch):
    """`sense eval bsense --quick` three times: --no-cache, a cold cache and
    a warm one; every figure but the wall and per-stage times is the same."""
    from sense_nodes.eval import bsense_eval

    monkeypatch.setenv("SENSE_CACHE", str(tmp_path / "cache"))
    parser = argparse.ArgumentParser()
    bsense_eval.add_arguments(parser)
    runs = {}
    for name, extra in (("none", ["--no-cache"]), ("cold", []), ("warm", [])):
        args = parser.parse_args(["--quick", "--plots", "", "--max-frames", "60", "--peer-cases", "1"] + extra)
        runs[name] = json.loads(json.dumps(bsense_eval.main(args), default=float))
        if name == "none":
            assert not (tmp_path / "cache" / "bsense_eval").exists()
    timed = {k for k in runs["none"] if k.endswith(("_ms", "_wall_s"))}

    def untimed(figures):     # NaN figures (a class with no cases) compare equal as JSON text
        return json.dumps({k: v for k, v in figures.items() if k not in timed}, sort_keys=True)
    for name in ("cold", "warm"):
        assert untimed(runs[name]) == untimed(runs["none"]), name


def test_a_network_read_back_predicts_what_the_trained_one_predicts(tmp_path):
    from sense_nodes.core.bsense.training import TrainConfig
    from sense_nodes.core.bsense.trajformer import N_FEATURES
    from sense_nodes.eval.bsense_verify import _trained

    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 6, N_FEATURES)).astype(np.float32)
    y = np.arange(64) % 2
    config = TrainConfig(epochs=1, seed=3, device="cpu")
    trained = _trained(X, y, config, StageCache(root=tmp_path))
    cache = StageCache(root=tmp_path)
    again = _trained(X, y, config, cache)
    assert cache.hits == 1 and again is not trained
    np.testing.assert_array_equal(again.predict_proba(X), trained.predict_proba(X))
    _trained(X, y, TrainConfig(epochs=1, seed=4, device="cpu"), cache)      # another seed: trained anew
    assert cache.misses == 1


def test_one_tracking_run_gives_the_windows_and_the_scored_tracks(case_and_model):
    """A case's windows made while replaying its clusters are those of a
    computed run, and its recorded windows scored by a network are the
    CaseTracks of running the full system (stage 5) with it, to the bit."""
    from sense_nodes.core.bsense.training import windows_from_cases
    from sense_nodes.core.bsense.trajformer import DEFAULT_CHECKPOINT, load_checkpoint
    from sense_nodes.eval.bsense_policy import record_tracks
    from sense_nodes.eval.bsense_record import case_windows, chain_config

    case, model = case_and_model
    net = load_checkpoint(DEFAULT_CHECKPOINT)
    clusters = case_clusters(case, model)
    for thresholds in ((0.1, 0.1), (0.3, 0.2)):
        cfg = chain_config(thresholds)
        X, y, record = case_windows(case, lambda c: model, cfg, None, lambda c: clusters)
        X0, y0, _ = windows_from_cases([(case.frames, model)], None, cfg)
        np.testing.assert_array_equal(X, X0)
        np.testing.assert_array_equal(y, y0)
        assert len(record.todo_ids) > 0
        replayed, run = record.tracks(net).frames, record_tracks(case, model, thresholds, net, clusters).frames
        assert len(replayed) == len(run) == len(case.frames)
        for a, b in zip(replayed, run):
            for u, v in zip(a, b):
                assert u.shape == v.shape
                np.testing.assert_array_equal(u, v)


@pytest.mark.slow
def test_quick_eval_in_worker_processes_gives_the_figures_of_one_process(tmp_path, monkeypatch):
    """`sense eval bsense --quick --no-cache` with --jobs 1 and --jobs 2:
    every figure but the wall and per-stage times is the same."""
    from sense_nodes.eval import bsense_eval

    monkeypatch.setenv("SENSE_CACHE", str(tmp_path / "cache"))
    parser = argparse.ArgumentParser()
    bsense_eval.add_arguments(parser)
    runs = {}
    for jobs in (1, 2):
        args = parser.parse_args(["--quick", "--plots", "", "--max-frames", "60", "--peer-cases", "1", "--no-cache",
                                  "--jobs", str(jobs)])
        runs[jobs] = json.loads(json.dumps(bsense_eval.main(args), default=float))
    timed = {k for k in runs[1] if k.endswith(("_ms", "_wall_s"))}

    def untimed(figures):
        return json.dumps({k: v for k, v in figures.items() if k not in timed}, sort_keys=True)
    assert untimed(runs[2]) == untimed(runs[1])
