"""Across hosts: the whole suite split as config/sites/all.yaml says, two
base-station sites and the fusion centre in three network namespaces joined
by veth pairs to a bridge at the centre; Fast DDS discovers across them and
every system's results equal those of the single-process run. Prints the
bytes per second crossing each site's link, beside what the site's raw
point clouds and CSI would need."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sense_nodes.runtime import sites

pytestmark = pytest.mark.ros
HERE = Path(__file__).resolve().parent
HOSTS = ("site0", "site1", "centre")
FRAMES = 6


def test_every_node_of_all_runs_on_exactly_one_host():
    table = sites.hosts("all")
    assert set(table) == set(HOSTS)
    running = [n.spec.fqn for nodes in table.values() for n in nodes]
    assert len(running) == len(set(running)), "two hosts run a node under one name"
    centre = {n.original for n in table["centre"]}
    assert {"/bs/uav_tracker", "/isac/isac_imager", "/diffloc/diffloc_server", "/fwa/fwa_fusion_center"} == centre


def _ip(*args):
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)


@pytest.fixture
def three_hosts():
    """site0 and site1 each joined to a bridge in the centre's namespace by a
    veth pair; yields (namespaces by host, the centre-side veth by site)."""
    if shutil.which("ip") is None or os.geteuid() != 0:
        pytest.skip("needs root and iproute2 (ip netns)")
    tag = f"{os.getpid() % 10000}"
    ns = {h: f"sn{h[0]}{h[-1]}{tag}" for h in HOSTS}
    if _ip("netns", "add", ns["centre"]).returncode != 0:
        pytest.skip("ip netns is not permitted here")
    c = ns["centre"]
    ends = {}
    try:
        cmds = [("-n", c, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"),
                ("-n", c, "addr", "add", "10.78.0.3/24", "dev", "br0"), ("-n", c, "link", "set", "br0", "up"),
                ("-n", c, "link", "set", "lo", "up"), ("-n", c, "route", "add", "239.0.0.0/8", "dev", "br0")]
        for i, site in enumerate(("site0", "site1")):
            _ip("netns", "add", ns[site])
            s, cs = f"vs{i}{tag}", f"vc{i}{tag}"
            ends[site] = cs
            cmds += [("link", "add", s, "type", "veth", "peer", "name", cs),
                     ("link", "set", s, "netns", ns[site]), ("link", "set", cs, "netns", c),
                     ("-n", c, "link", "set", cs, "master", "br0"), ("-n", c, "link", "set", cs, "up"),
                     ("-n", ns[site], "addr", "add", f"10.78.0.{i + 1}/24", "dev", s),
                     ("-n", ns[site], "link", "set", s, "up"), ("-n", ns[site], "link", "set", "lo", "up"),
                     ("-n", ns[site], "route", "add", "239.0.0.0/8", "dev", s)]
        for cmd in cmds:
            r = _ip(*cmd)
            if r.returncode != 0:
                pytest.skip(f"cannot build the links: ip {' '.join(cmd)}: {r.stderr.strip()}")
        yield ns, ends
    finally:
        for n in ns.values():
            _ip("netns", "del", n)


def _link_bytes(ns, dev) -> int:
    r = _ip("-n", ns, "-j", "-s", "link", "show", dev)
    stats = json.loads(r.stdout)[0]["stats64"]
    return int(stats["rx"]["bytes"]) + int(stats["tx"]["bytes"])


def _side(host, out, ns=None, env=None):
    cmd = [sys.executable, str(HERE / "suite_netns_side.py"), host, str(out), str(FRAMES)]
    if ns is not None:
        cmd = ["ip", "netns", "exec", ns, *cmd]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _flat(rows) -> np.ndarray:
    return np.asarray([v for row in rows for v in row], float)


# frame period of each system's source on the embedded defaults (s)
PERIOD_S = {"/bs/detections": 0.64, "/bs/points": 0.64, "/fwa/bs0/features": 1.0, "/fwa/bs0/estimates": 1.0,
            "/fwa/csi": 1.0, "/diffloc/csi": 1.0, "/isac/csi": 0.5}


def test_suite_over_three_hosts_gives_the_single_process_results(three_hosts, tmp_path):
    ns, ends = three_hosts
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="SUBNET",
               PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    ref = _side("all", tmp_path / "all.json", env=env)
    assert ref.wait(timeout=200) == 0, ref.stdout.read()[-3000:]
    local = json.loads((tmp_path / "all.json").read_text())

    before = {s: _link_bytes(ns["centre"], ends[s]) for s in ends}
    t0 = time.monotonic()
    procs = {h: _side(h, tmp_path / "split.json", ns[h], env) for h in HOSTS}
    try:
        rc = {h: procs[h].wait(timeout=220) for h in ("centre", "site0", "site1")}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
    seconds = time.monotonic() - t0
    after = {s: _link_bytes(ns["centre"], ends[s]) for s in ends}
    logs = {h: "\n".join(line for line in p.stdout.read().splitlines()
                          if not line.startswith(("[INFO]", "[WARN]")))[-1500:] for h, p in procs.items()}
    assert all(v == 0 for v in rc.values()), logs
    split = json.loads((tmp_path / "split.json").read_text())

    for topic, by_stamp in local["results"].items():
        ours = split["results"][topic]
        common = sorted(set(by_stamp) & set(ours))
        assert len(common) >= FRAMES, f"{topic}: {len(common)} results in both runs"
        for stamp in common:
            a, b = _flat(ours[stamp]), _flat(by_stamp[stamp])
            assert a.shape == b.shape and np.allclose(a, b, atol=1e-3), \
                f"{topic} at {stamp}: {ours[stamp]} over hosts, {by_stamp[stamp]} in one process"

    sizes = local["sizes"]
    print(f"\nbytes per second over each site's link (the whole run, {seconds:.0f} s, discovery included):")
    for s in ends:
        print(f"  {s}: {(after[s] - before[s]) / seconds:,.0f} B/s")
    print("what a site sends in the split, and the raw input it replaces, at each system's frame rate:")
    for topic, period_s in PERIOD_S.items():
        per_msg = float(np.mean(sizes[topic])) if sizes[topic] else 0.0
        print(f"  {topic:<20} {per_msg:>12,.0f} B a message {per_msg / period_s:>14,.0f} B/s")
    assert all(after[s] > before[s] for s in ends)


def test_a_moved_node_keeps_its_parameters_and_an_unknown_host_is_refused():
    dep, extra = sites.host_deployment("all", "site1")
    assert "/fwa/site1/csi_source" in {s.fqn for s in dep.nodes}
    assert extra["/fwa/site1/csi_source"]["kind"] == "fwa"           # its section of all.yaml
    assert extra["/fwa/bs1/fwa_bs_encoder"]["csi_topic"] == "/fwa/site1/csi"
    with pytest.raises(sites.DeploymentError, match="no host 'site9'.*site0"):
        sites.host_deployment("all", "site9")
