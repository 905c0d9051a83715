"""The background-nulling FWA detector and the bistatic localiser on
hand-made pairs: a static background of a few paths with fresh random
phases per scene (Eq. 27), receiver noise, and one UAV echo."""
from __future__ import annotations

import numpy as np
import pytest

from sense_nodes.core.fwa.bistatic import bistatic_range, locate, refine_delay
from sense_nodes.core.fwa.subspace import BackgroundSubspace, SubspaceDetector, pair_statistics
from sense_nodes.data.csi.cfr import dirichlet

K, N_TAPS, N_T = 512, 64, 4


def _path(rng, u=None):
    """One path's taps [64, 4, 64]: BS UPA response x CPE response x delay response."""
    ux, uy = rng.uniform(-1, 1, 2)
    bs = np.exp(1j * np.pi * (ux * np.arange(8)[:, None] + uy * np.arange(8)[None, :])).reshape(64)
    cpe = np.exp(1j * rng.uniform(0, 2 * np.pi, N_T))
    u = rng.uniform(2, 40) if u is None else u
    d = dirichlet((np.arange(N_TAPS) - u) / K, K)
    return (bs[:, None, None] * cpe[None, :, None] * d[None, None, :]).astype(np.complex64)


def _scenes(rng, paths, amps, n, noise_var, echo=None):
    """n scenes [n, 1, D]: the paths with random phases, plus noise (and the echo)."""
    out = []
    for _ in range(n):
        ph = np.exp(1j * rng.uniform(0, 2 * np.pi, len(paths)))
        t = sum(a * p_ * f for a, p_, f in zip(amps, paths, ph))
        if echo is not None:
            t = t + echo
        w = np.sqrt(noise_var / 2) * (rng.standard_normal(t.shape) + 1j * rng.standard_normal(t.shape))
        out.append((t + w).reshape(1, -1))
    return np.stack(out).astype(np.complex64)


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    paths = [_path(rng) for _ in range(12)]
    amps = 10 ** (rng.uniform(0, 3, 12) / 2)      # 30 dB of spread, the strongest far above the echo
    noise_var = 1e-2
    sub = BackgroundSubspace.fit(_scenes(rng, paths, amps, 60, noise_var), [noise_var])
    return rng, paths, amps, noise_var, SubspaceDetector(sub, N_T, N_TAPS)


def test_the_fitted_span_has_one_dimension_per_background_path(pair):
    _rng, paths, _amps, _nv, det = pair
    assert det.subspace.ranks.tolist() == [len(paths)]


def test_nulling_leaves_noise_in_an_empty_scene_and_finds_a_weak_echo(pair):
    rng, paths, amps, nv, det = pair
    empty = det.pair_stats(_scenes(rng, paths, amps, 1, nv)[0]).z[0]
    # an echo 40 dB below the strongest background path, at -13 dB per entry against the noise
    echo = 10 ** (-40 / 20) * amps.max() * _path(rng, u=17.3)
    with_uav = det.pair_stats(_scenes(rng, paths, amps, 1, nv, echo)[0])
    assert empty < 30                      # the largest of 4096 cells of unit-mean noise
    assert with_uav.z[0] > 10 * empty
    assert abs(int(with_uav.tap[0]) - 17) <= 1


def test_without_nulling_the_background_hides_the_same_echo(pair):
    rng, paths, amps, nv, det = pair
    echo = 10 ** (-40 / 20) * amps.max() * _path(rng, u=17.3)
    raw = _scenes(rng, paths, amps, 1, nv, echo)[0]
    stats = pair_statistics(raw, np.array([nv]), N_T, N_TAPS)
    assert stats.tap[0] != 17                 # the strongest cell is a background path's


def test_the_delay_fit_finds_a_fractional_delay():
    rng = np.random.default_rng(1)
    r = _path(rng, u=23.37)
    assert refine_delay(r, 23, K) == pytest.approx(23.37, abs=0.02)


def test_a_position_from_bistatic_ranges_survives_one_wrong_pair():
    b = np.array([[-50.0, 0, 100]] * 3 + [[50.0, 0, 100]] * 3)
    c = np.array([[-70.0, -60, 18], [0, 70, 18], [65, 40, 18], [-60, 60, 18], [10, -70, 18], [70, -50, 18]])
    p = np.array([12.0, -31.0, 60.0])
    ranges = bistatic_range(p, b, c)
    ranges[2] -= 80.0                          # a peak that was not the echo
    est = locate(b, c, ranges, 60.0, np.array([-80.0, -80.0]), np.array([80.0, 80.0]))
    assert np.linalg.norm(est - p) < 0.05


def test_a_missing_pair_does_not_vote():
    z = np.array([[1.0, 50.0, 2.0]])
    assert SubspaceDetector.scene_score(z)[0] == 50.0
    assert SubspaceDetector.scene_score(z, np.array([True, False, True]))[0] == 2.0


def test_too_few_scenes_are_refused():
    with pytest.raises(ValueError, match="UAV-free"):
        BackgroundSubspace.fit(np.zeros((1, 2, 8), np.complex64), [1.0, 1.0])


def test_the_nulled_input_is_blank_without_a_uav_and_lights_the_echo_cell(pair):
    from sense_nodes.core.fwa.nulled import cells_to_input, nulled_maps
    from sense_nodes.core.fwa.subspace import beam_cells
    rng, paths, amps, nv, det = pair
    scene = _scenes(rng, paths, amps, 1, nv)[0]
    empty = nulled_maps(det.subspace, scene, N_T, N_TAPS)
    raw = cells_to_input(beam_cells(scene, N_T, N_TAPS) / (64 * N_T * nv))
    echo = 10 ** (-40 / 20) * amps.max() * _path(rng, u=17.3)
    lit = nulled_maps(det.subspace, _scenes(rng, paths, amps, 1, nv, echo)[0], N_T, N_TAPS)
    assert empty.shape == lit.shape == (1, 8, 8, N_TAPS)
    assert (raw > 0).mean() > 0.5               # un-nulled, the background lights most cells
    assert (empty > 0).mean() < 0.25            # nulled, noise peaks and a little leakage pass the floor
    assert lit.max() > 2 * empty.max()
    assert abs(int(np.unravel_index(lit[0].argmax(), lit[0].shape)[2]) - 17) <= 1


def _nulled_models(tmp_path, digest, dataset="fwa-seed0"):
    from sense_nodes.core.fwa import pipeline as pl
    pl.save_model(tmp_path / "detector.pt", "fwa_detector", pl.Detector(input="nulled"),
                  {"n_embed": 32, "width": 8, "input": "nulled"},
                  {"threshold": 0.5, "calibration_digest": digest, "dataset": dataset})
    pl.save_model(tmp_path / "ulocnet.pt", "fwa_ulocnet", pl.IULocNet(input="nulled"),
                  {"n_feature": 64, "width": 8, "input": "nulled"})
    pl.save_model(tmp_path / "culocnet.pt", "fwa_culocnet", pl.CULocNet(n_feature=64), {"n_feature": 64})
    return tmp_path


class _Nuller:
    def __init__(self, digest):
        self.digest = digest


def test_models_on_nulled_input_refuse_to_load_without_their_calibration(tmp_path):
    from sense_nodes.core.checkpoint import CheckpointError
    from sense_nodes.core.fwa.pipeline import Models
    d = _nulled_models(tmp_path, "abc")
    with pytest.raises(CheckpointError, match="calibration"):
        Models.load(d)
    with pytest.raises(CheckpointError, match="abc"):
        Models.load(d, nuller=lambda _ds: _Nuller("other"))
    asked = []
    assert Models.load(d, nuller=lambda ds: asked.append(ds) or _Nuller("abc")).input == "nulled"
    assert asked == ["fwa-seed0"], "the calibration was not asked for the models' own dataset"
    assert Models.load(d, inputs=False).nuller is None    # the centre makes no inputs


def test_the_calibration_digest_tells_calibrations_apart():
    from types import SimpleNamespace
    from sense_nodes.core.fwa.nulled import calibration_digest
    info = {"seed": 0, "samples": 2000, "noise": True, "snr_offset_db": 0.0, "calibration_scenes": 300}
    a = SimpleNamespace(info=info, noise_var=np.array([1e-3, 2e-3]), n_t=4, n_taps=64, num_subcarriers=512)
    b = SimpleNamespace(**{**vars(a), "noise_var": np.array([1e-3, 3e-3])})
    c = SimpleNamespace(**{**vars(a), "info": {**info, "calibration_scenes": 200}})
    assert calibration_digest(a) == calibration_digest(SimpleNamespace(**vars(a)))
    assert len({calibration_digest(a), calibration_digest(b), calibration_digest(c)}) == 3


def test_each_dataset_has_its_own_default_calibration(tmp_path, monkeypatch):
    monkeypatch.setenv("SENSE_CACHE", str(tmp_path))
    from sense_nodes.core.fwa.calibration import default_path
    assert default_path().name == default_path("fwa-seed0").name == "subspace.npz"
    assert default_path("/data/fwa-seed0-n10000").name == "subspace-fwa-seed0-n10000.npz"
    assert default_path().parent == default_path("fwa-seed0-n10000").parent


def test_models_of_a_dataset_not_in_the_cache_say_how_to_make_it(tmp_path, monkeypatch):
    monkeypatch.setenv("SENSE_CACHE", str(tmp_path / "cache"))
    from sense_nodes.errors import UserError
    from sense_nodes.eval.fwa_eval import models_dataset
    d = _nulled_models(tmp_path, "abc", dataset="fwa-seed0-n10000")
    with pytest.raises(UserError, match="sense data generate --kind fwa --samples 10000"):
        models_dataset(d)
    assert models_dataset(_nulled_models(tmp_path, "abc")) is None  # the default dataset: nothing to say


def test_eval_fwa_by_default_measures_the_nulled_set_and_says_what_it_needs(tmp_path, monkeypatch, capsys):
    """A plain `sense eval fwa` evaluates the shipped set that meets the
    targets; on a machine without its dataset it stops and names the
    command that makes it, before any work."""
    monkeypatch.setenv("SENSE_CACHE", str(tmp_path / "cache"))
    from sense_nodes.cli.main import main
    from sense_nodes.core.fwa.pipeline import checkpoint_dir, trained_on
    rc = main(["eval", "fwa", "--json", str(tmp_path / "f.json")])
    assert rc not in (0, None) and not (tmp_path / "f.json").exists()
    err = capsys.readouterr().err
    assert str(checkpoint_dir("nulled")) in err and "sense data generate --kind fwa --samples" in err
    assert trained_on("nulled") != trained_on("bdz") and checkpoint_dir("bdz") == checkpoint_dir("")
