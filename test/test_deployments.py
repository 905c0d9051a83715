"""Deployments: launch files refer only to installed executables and existing
files, `sense run` starts every node of every deployment, and the RViz views
subscribe with the QoS their publishers offer."""
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import yaml
from rclpy.qos import ReliabilityPolicy

from conftest import spin_until
from sense_nodes.runtime import deployment
from sense_nodes.runtime.compose import compose

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENTS = deployment.names()


class _Recorded:
    """Stands in for a launch action or substitution and keeps its arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def _run_launch_file(path: Path, monkeypatch):
    """Evaluate a launch file with `launch`/`launch_ros` replaced by recorders
    (they ship with a ROS install, not with the PyPI wheels)."""
    nodes = []

    class Node(_Recorded):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            nodes.append(kw)

    mods = {
        "launch": types.SimpleNamespace(LaunchDescription=lambda actions: list(actions)),
        "launch.actions": types.SimpleNamespace(DeclareLaunchArgument=_Recorded),
        "launch.conditions": types.SimpleNamespace(IfCondition=_Recorded),
        "launch.substitutions": types.SimpleNamespace(LaunchConfiguration=_Recorded, PythonExpression=_Recorded),
        "launch_ros": types.SimpleNamespace(),
        "launch_ros.actions": types.SimpleNamespace(Node=Node),
    }
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    actions = module.generate_launch_description()
    return actions, nodes


def test_every_deployment_has_a_launch_file_and_back():
    launch_files = {p.name.removesuffix(".launch.py") for p in (ROOT / "launch").glob("*.launch.py")}
    assert DEPLOYMENTS, "no deployment described in config/deployments"
    assert launch_files == set(DEPLOYMENTS)


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_launch_file_uses_installed_executables_and_existing_files(name, monkeypatch):
    actions, nodes = _run_launch_file(ROOT / "launch" / f"{name}.launch.py", monkeypatch)
    installed = deployment.executables()
    dep = deployment.load(name)
    ours = [n for n in nodes if n["package"] == "sense_nodes"]
    assert [(n["executable"], n["name"], n["namespace"]) for n in ours] == \
        [(s.executable, s.name, s.namespace) for s in dep.nodes]
    for n in ours:
        assert n["executable"] in installed, f"{n['executable']} is not in executables.txt"
        files = [p for p in n["parameters"] if isinstance(p, str)]
        assert files and all(Path(f).is_file() for f in files), files
    for n in nodes:
        if n["package"] == "rviz2":
            assert Path(n["arguments"][1]).is_file()
    params = yaml.safe_load(dep.params_file.read_text())
    for spec in dep.nodes:
        assert spec.fqn in params, f"{dep.params_file.name} has no section for {spec.fqn}"


@pytest.mark.ros
@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_sense_run_starts_every_node_of_the_deployment(name):
    comp = compose(name)
    try:
        probe = comp.nodes[0]
        wanted = {(s.name, s.namespace) for s in comp.deployment.nodes}
        assert spin_until(comp.executor, lambda: wanted <= set(probe.get_node_names_and_namespaces()), 10)
        # each node got its own namespace and parameter file
        for node, spec in zip(comp.nodes, comp.deployment.nodes):
            assert node.get_fully_qualified_name() == spec.fqn
    finally:
        comp.close()


def _rviz_topics(path: Path):
    doc = yaml.safe_load(path.read_text())
    for display in doc["Visualization Manager"]["Displays"]:
        topic = display.get("Topic")
        if isinstance(topic, dict):
            yield display["Name"], topic["Value"], topic.get("Reliability Policy", "Reliable")


@pytest.mark.ros
@pytest.mark.parametrize("name", [d for d in DEPLOYMENTS if deployment.load(d).rviz_file])
def test_rviz_view_qos_matches_the_publishers(name):
    comp = compose(name)
    try:
        probe = comp.nodes[0]
        for display, topic, reliability in _rviz_topics(comp.deployment.rviz_file):
            assert spin_until(comp.executor, lambda: probe.get_publishers_info_by_topic(topic), 10), \
                f"RViz display '{display}' shows {topic}, which nothing in '{name}' publishes"
            for info in probe.get_publishers_info_by_topic(topic):
                offered = info.qos_profile.reliability
                if reliability == "Reliable":
                    assert offered == ReliabilityPolicy.RELIABLE, \
                        f"'{display}' subscribes reliable but {topic} is published best effort: RViz shows nothing"
    finally:
        comp.close()


def test_rviz_views_show_detections_and_truth():
    """Every marker topic the views subscribe to is published by a node of
    the deployment: BSense's detections and imaging's truth among them."""
    views = {name: yaml.safe_load((ROOT / "config" / "rviz" / f"{name}.rviz").read_text()) for name in DEPLOYMENTS}
    topics = {name: {d["Topic"]["Value"] for d in v["Visualization Manager"]["Displays"] if "Topic" in d}
              for name, v in views.items()}
    assert "/bs/detection_markers" in topics["bsense"]
    assert "/isac/truth_markers" in topics["imaging"]
    for name in DEPLOYMENTS:
        comp = compose(name)
        try:
            published = {p.topic_name for n in comp.nodes for p in n.publishers}
        finally:
            comp.close()
        assert topics[name] <= published, f"{name}: the view shows topics no node publishes"
