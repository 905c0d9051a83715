"""Across hosts: the BS encoders (and the CSI) in one network namespace,
the fusion centre in another, joined by a veth pair; Fast DDS discovers
across it and the detections equal those of the single-process run."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rclpy.parameter import Parameter

from fwa_synthetic import bundle, run_nodes

pytestmark = pytest.mark.ros
HERE = Path(__file__).resolve().parent
SEEDS = (11, 12)


def _ip(*args):
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)


@pytest.fixture
def two_hosts():
    if shutil.which("ip") is None or os.geteuid() != 0:
        pytest.skip("needs root and iproute2 (ip netns)")
    tag = f"{os.getpid() % 100000}"
    a, b = f"snb{tag}", f"snc{tag}"
    va, vb = f"vb{tag}", f"vc{tag}"
    if _ip("netns", "add", a).returncode != 0:
        pytest.skip("ip netns is not permitted here")
    try:
        _ip("netns", "add", b)
        cmds = [("link", "add", va, "type", "veth", "peer", "name", vb),
                ("link", "set", va, "netns", a), ("link", "set", vb, "netns", b),
                ("-n", a, "addr", "add", "10.77.0.1/24", "dev", va),
                ("-n", b, "addr", "add", "10.77.0.2/24", "dev", vb),
                ("-n", a, "link", "set", va, "up"), ("-n", b, "link", "set", vb, "up"),
                ("-n", a, "link", "set", "lo", "up"), ("-n", b, "link", "set", "lo", "up"),
                ("-n", a, "route", "add", "239.0.0.0/8", "dev", va),
                ("-n", b, "route", "add", "239.0.0.0/8", "dev", vb)]
        for c in cmds:
            r = _ip(*c)
            if r.returncode != 0:
                pytest.skip(f"cannot build the veth link: ip {' '.join(c)}: {r.stderr.strip()}")
        yield a, b
    finally:
        _ip("netns", "del", a)
        _ip("netns", "del", b)


def test_encoders_and_centre_on_two_hosts_give_the_single_process_detections(two_hosts, ros_context, tmp_path):
    ns_bs, ns_centre = two_hosts
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="SUBNET",
               PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / "detections.jsonl"
    side = [sys.executable, str(HERE / "fwa_netns_side.py")]
    centre = subprocess.Popen(["ip", "netns", "exec", ns_centre, *side, "centre", str(out), str(len(SEEDS))],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    bs = subprocess.Popen(["ip", "netns", "exec", ns_bs, *side, "bs", str(out), *map(str, SEEDS)],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        rc_c = centre.wait(timeout=120)
        rc_b = bs.wait(timeout=30)
    finally:
        for p in (centre, bs):
            if p.poll() is None:
                p.kill()
    log = (centre.stdout.read() or "")[-2000:] + (bs.stdout.read() or "")[-2000:]
    assert rc_c == 0 and rc_b == 0, log
    remote = [json.loads(line) for line in out.read_text().splitlines()]
    local, *_nodes = run_nodes(ros_context, (0, 1), [Parameter("threshold", value=0.0),
                                                    Parameter("timeout_s", value=5.0)],
                               [bundle(s, 100 + i) for i, s in enumerate(SEEDS)], len(SEEDS))
    for n in _nodes[-1]:
        n.destroy_node()
    assert len(remote) == len(local) == len(SEEDS)
    for r, d in zip(sorted(remote, key=lambda r: r["stamp"]), sorted(local, key=lambda d: d.header.stamp.sec)):
        assert r["stamp"] == d.header.stamp.sec
        assert r["p"] == pytest.approx(d.presence_probability, abs=1e-6)
        assert np.allclose(r["attention"], d.attention, atol=1e-6)
        assert r["selected"] == list(d.selected_pairs) and r["valid"] and d.position_valid
        assert np.allclose(r["position"], [d.position.x, d.position.y, d.position.z], atol=1e-4)
