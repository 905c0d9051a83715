"""What a new user meets, run as the README writes it (real processes, real
topics): live BSense never learns noise from a UAV, a calibrated model is
used and says where it came from."""
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.ros


def _sense(*argv, env, timeout=300):
    return subprocess.run([sys.executable, "-m", "sense_nodes", *argv], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture
def fresh_cache(tmp_path):
    env = dict(os.environ, SENSE_CACHE=str(tmp_path / "cache"))
    return env, tmp_path / "cache" / "bsense" / "noise_model.npz"


def test_live_bsense_never_fits_noise_on_a_uav(fresh_cache):
    """The live scenario's UAV flies from about 19 s: a run of 150 frames
    (96 s of scenario time at 8x) has too few UAV-free frames to fit on, so
    it fits nothing, and says how to calibrate."""
    env, model = fresh_cache
    proc = _sense("run", "bsense", "--duration", "12", "--rate", "8", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not model.exists(), "a noise model was fitted on frames with a UAV"
    assert "sense calibrate" in proc.stderr


def test_a_calibrated_model_is_used_and_says_where_it_came_from(fresh_cache):
    env, model = fresh_cache
    proc = _sense("calibrate", "--frames", "150", env=env)
    assert proc.returncode == 0 and model.exists(), proc.stderr
    before = model.read_bytes()
    proc = _sense("run", "bsense", "--duration", "4", "--rate", "4", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "made by" in proc.stderr and "sense calibrate" in proc.stderr
    assert model.read_bytes() == before
