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


def _record_bsense(bag, frames, *topics, env):
    """Record ``frames`` frames of the live bsense deployment (a frame count,
    not seconds: a loaded machine publishes fewer frames per second)."""
    return _sense("run", "bsense", "--duration", "120", "--rate", "4", "--until-sources-finish",
                  "--set", f"bs_radar_source:max_frames={frames}", "--record", str(bag),
                  "--record-topics", *topics, env=env)


def test_live_bsense_never_fits_noise_on_a_uav(fresh_cache):
    """The live scenario's UAV flies from about 19 s: a run of 150 frames
    (96 s of scenario time at 8x) has too few UAV-free frames to fit on, so
    it fits nothing, and says how to calibrate."""
    env, model = fresh_cache
    proc = _sense("run", "bsense", "--duration", "12", "--rate", "8", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not model.exists(), "a noise model was fitted on frames with a UAV"
    assert "sense calibrate" in proc.stderr
    status = [ln for ln in proc.stdout.splitlines() if ln.startswith("[") and "uav_tracker:" in ln]
    assert status and "verified UAV" in status[0] and "NO MODEL" in status[0], "no status line was printed"


def test_a_calibrated_model_is_used_and_says_where_it_came_from(fresh_cache):
    env, model = fresh_cache
    proc = _sense("calibrate", "--frames", "150", env=env)
    assert proc.returncode == 0 and model.exists(), proc.stderr
    before = model.read_bytes()
    proc = _sense("run", "bsense", "--duration", "4", "--rate", "4", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "made by" in proc.stderr and "sense calibrate" in proc.stderr
    assert model.read_bytes() == before


def test_a_replay_ends_by_itself_with_a_summary(fresh_cache, tmp_path):
    env, _ = fresh_cache
    bag = tmp_path / "run1"
    # enough frames that the replay outlasts the summary probe's discovery
    proc = _record_bsense(bag, 20, "/bs/points", "/bs/truth", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = _sense("run", "bsense", "--bag", str(bag), "--rate", "4", "--status-every", "1", env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "every source has finished" in out
    assert "/bs/uav_tracker" in out and "against the source's truth" in out and "f1_pct" in out
    assert "Destroyable" not in out + proc.stderr, "shutdown raced the executor's workers"


def test_sigterm_prints_the_summary_with_real_rates(fresh_cache):
    """SIGTERM once the object filter has taken a few frames (read from the
    run's status lines, so a slow start on a loaded machine does not leave
    it nothing to count): the run exits cleanly and its summary gives that
    node's frames and a rate measured over them."""
    import re
    import signal
    import time
    env, _ = fresh_cache
    proc = subprocess.Popen([sys.executable, "-m", "sense_nodes", "run", "bsense", "--rate", "4", "--status-every", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    seen, lines, deadline = 0, [], time.monotonic() + 90
    try:
        while seen <= 5 and time.monotonic() < deadline:
            ln = proc.stdout.readline()
            if not ln:
                break
            lines.append(ln)
            m = re.search(r"object_filter: (\d+) in", ln)
            seen = int(m.group(1)) if m else seen
        assert seen > 5, "the object filter took too few frames:\n" + "".join(lines[-5:])
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0
    line = next(ln for ln in out.splitlines() if ln.startswith("/bs/object_filter"))
    processed, rate = int(line.split()[1]), float(line.split()[2])
    assert processed > 5 and rate > 0.5, line


def test_record_alone_says_nothing_was_recorded(fresh_cache, tmp_path):
    env, _ = fresh_cache
    proc = _sense("record", "/bs/points", "-o", str(tmp_path / "empty"), "--duration", "2", env=env)
    assert proc.returncode == 1
    assert "never seen: /bs/points" in proc.stderr and "nothing was recorded" in proc.stderr


def test_recorded_frames_keep_their_stamps(fresh_cache, tmp_path):
    """Points and truth of one frame share its stamp in the bag (as on the
    wire), so a replay counts each frame once."""
    from sense_nodes.data import bags
    env, _ = fresh_cache
    bag = tmp_path / "run"
    proc = _record_bsense(bag, 6, "/bs/points", "/bs/truth", "/clock", env=env)
    assert proc.returncode == 0, proc.stderr[-1500:]
    times = {}
    for topic, _, t, _ in bags.read_raw(bag):
        times.setdefault(topic, []).append(t)
    points, truth = set(times["/bs/points"]), set(times["/bs/truth"])
    assert len(points) == len(times["/bs/points"]) >= 5, "two messages of one topic share a stamp"
    # the recording may stop between a frame's points and its truth: only the last frame may differ
    assert points ^ truth <= {max(points | truth)}
    assert "/clock" in times


def test_wrong_inputs_are_said(fresh_cache, tmp_path):
    env, _ = fresh_cache
    bag = tmp_path / "bs"
    proc = _record_bsense(bag, 4, "/bs/points", "/bs/truth", env=env)
    assert proc.returncode == 0
    proc = _sense("run", "imaging", "--bag", str(bag), "--rate", "8", env=env, timeout=120)
    assert "has no topic for csi" in proc.stderr
    assert "isac_imager received nothing" in proc.stdout
    (tmp_path / "empty").mkdir()
    proc = _sense("report", "--results", str(tmp_path / "empty"), "--out", str(tmp_path / "r.html"), env=env)
    assert proc.returncode == 2 and "no figures" in proc.stderr
    proc = _sense("eval", "imaging", "--tables", "6", "--canyon-dataset", str(tmp_path / "nope"), env=env)
    assert proc.returncode == 2 and "not an imaging CSI dataset" in proc.stderr


def test_echo_and_diag_show_a_running_deployment(fresh_cache):
    env, _ = fresh_cache
    run = subprocess.Popen([sys.executable, "-m", "sense_nodes", "run", "bsense", "--duration", "90", "--rate", "2"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        echo = _sense("echo", "/bs/tracks", "-n", "4", "--timeout", "15", env=env, timeout=60)
        assert echo.returncode == 0 and "tracks:" in echo.stdout and "position:" in echo.stdout
        diag = _sense("diag", "--duration", "6", env=env, timeout=60)
        assert diag.returncode == 0
        assert "/bs/uav_tracker" in diag.stdout and "rate_hz" in diag.stdout
    finally:
        run.terminate()
        run.wait(30)
    missing = _sense("echo", "/no/such/topic", "--timeout", "1", env=env)
    assert missing.returncode == 2 and "no publisher of /no/such/topic" in missing.stderr
