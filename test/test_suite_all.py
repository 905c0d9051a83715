"""The whole suite as one system: the `all` deployment holds every system's
nodes in their own namespaces, its parameter file is theirs (one clock),
and composed in one process every system publishes its results with no
topic, node or parameter claimed twice."""
import pytest
import yaml

from conftest import spin_until
from sense_nodes.runtime import deployment
from sense_nodes.runtime.compose import ROS_PARAMS, compose

SYSTEMS = ("bsense", "imaging", "diffloc", "fwa")
# the results a user watches, one per system
RESULTS = {"bsense": "/bs/tracks", "imaging": "/isac/image", "diffloc": "/diffloc/position",
           "fwa": "/fwa/detection"}
# topics every node may publish (ROS's own, the standard health topic)
SHARED = {"/rosout", "/parameter_events", "/diagnostics"}
SOURCES_OFF_CLOCK = ("/isac/isac_scene_source", "/diffloc/csi_source", "/fwa/csi_source")


def _params(name):
    return yaml.safe_load(deployment.load(name).params_file.read_text())


def test_all_holds_every_systems_nodes_with_their_own_parameters():
    suite = deployment.load("all")
    theirs = [spec for name in SYSTEMS for spec in deployment.load(name).nodes]
    assert sorted(suite.nodes, key=lambda s: s.fqn) == sorted(theirs, key=lambda s: s.fqn)
    assert len({s.namespace.split("/")[1] for s in suite.nodes}) == len(SYSTEMS)
    params = _params("all")
    for name in SYSTEMS:
        for fqn, section in _params(name).items():
            ours = dict(params[fqn]["ros__parameters"])
            ours.pop("publish_clock", None)
            if fqn == "/bs/bs_radar_source":  # the BSense site drawn in the map frame
                assert ours.pop("frame_id") == "map"
                section["ros__parameters"].pop("frame_id")
            assert ours == section["ros__parameters"], f"{fqn} differs from config/params/{name}.yaml"


def test_one_source_keeps_the_clock():
    params = _params("all")
    sources = [s.fqn for s in deployment.load("all").nodes if s.source]
    clocks = [fqn for fqn in sources if params[fqn]["ros__parameters"].get("publish_clock", True)]
    assert clocks == ["/bs/bs_radar_source"]
    assert set(sources) - set(clocks) == set(SOURCES_OFF_CLOCK)


def test_every_parameter_names_a_node_and_a_parameter_it_declares():
    suite = deployment.load("all")
    specs = {s.fqn: s for s in suite.nodes}
    for fqn, section in _params("all").items():
        assert fqn in specs, f"all.yaml sets parameters of {fqn}, which the deployment lacks"
        declared = {p.name for p in deployment.node_class(specs[fqn].executable).all_params()} | set(ROS_PARAMS)
        unknown = set(section["ros__parameters"]) - declared
        assert not unknown, f"{fqn}: all.yaml sets {sorted(unknown)}, which the node does not declare"


@pytest.mark.ros
def test_all_in_one_process_every_system_publishes_and_nothing_collides():
    comp = compose("all", rate=4.0, extra_params={"/diffloc/diffloc_server": {"draws": 2}})
    try:
        probe = comp.nodes[0]
        got = {name: 0 for name in SYSTEMS}
        for name, topic in RESULTS.items():
            pub = next(p for n in comp.nodes for p in n.publishers if p.topic_name == topic)
            probe.create_subscription(pub.msg_type, topic, lambda _m, k=name: got.__setitem__(k, got[k] + 1), 10)
        assert spin_until(comp.executor, lambda: all(v >= 2 for v in got.values()), 120), got

        fqns = [n.get_fully_qualified_name() for n in comp.nodes]
        assert len(set(fqns)) == len(fqns) == len(comp.deployment.nodes)
        graph = {(ns.rstrip("/") + "/" + n) for n, ns in probe.get_node_names_and_namespaces()}
        assert set(fqns) <= graph
        for topic, _types in probe.get_topic_names_and_types():
            if topic in SHARED:
                continue
            writers = {(i.node_namespace.rstrip("/") + "/" + i.node_name)
                       for i in probe.get_publishers_info_by_topic(topic)} & set(fqns)
            assert len(writers) <= 1, f"{topic} is published by {sorted(writers)}"
        assert {(i.node_namespace.rstrip("/") + "/" + i.node_name)
                for i in probe.get_publishers_info_by_topic("/clock")} == {"/bs/bs_radar_source"}
        services = [s for n in comp.nodes for s, _ in n.get_service_names_and_types_by_node(
            n.get_name(), n.get_namespace())]
        assert len(services) == len(set(services))
        # every system reads the one clock
        assert all(n.get_parameter("use_sim_time").value for n in comp.nodes if not hasattr(n, "finished"))
    finally:
        comp.close()
