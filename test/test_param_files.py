"""Every parameter file in config/params/ names parameters its nodes declare,
and each value equals the default it overrides unless the line says why it
differs (a comment starting ``# differs:``): one default, stated once, and a
deliberate deviation visible where it is made."""
import re
from pathlib import Path

import pytest
import yaml

from sense_nodes.runtime import deployment

CONFIG = Path(__file__).resolve().parent.parent / "config"


def _deployments():
    return [deployment.load(name) for name in deployment.names()]


def _reason(text: str, key: str, line_after: int) -> str | None:
    """The ``# differs: ...`` comment on the line setting ``key`` (searched
    from the node's block on), or None."""
    for line in text.splitlines()[line_after:]:
        m = re.match(rf"\s+{re.escape(key)}:[^#]*#\s*differs:\s*(.+)$", line)
        if m:
            return m.group(1).strip()
        if re.match(rf"\s+{re.escape(key)}:", line):
            return None
    return None


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


@pytest.mark.parametrize("dep", _deployments(), ids=lambda d: d.name)
def test_parameter_files_agree_with_the_node_defaults(dep):
    path = CONFIG / "params" / dep.params_file
    text = path.read_text()
    table = yaml.safe_load(text) or {}
    problems = []
    for spec in dep.nodes:
        block = table.get(spec.fqn, {}).get("ros__parameters", {})
        start = next((i for i, line in enumerate(text.splitlines()) if line.startswith(f"{spec.fqn}:")), 0)
        declared = {p.name: p for p in deployment.node_class(spec.executable).all_params()}
        for key, value in block.items():
            if key not in declared:
                problems.append(f"{spec.fqn}: '{key}' is not a parameter of {spec.executable}")
            elif not _same(value, declared[key].default) and not _reason(text, key, start):
                problems.append(f"{spec.fqn}: {key} = {value!r} but the default is {declared[key].default!r} "
                                f"(make them one, or say why on the line: '# differs: ...')")
    assert problems == [], f"{path}:\n" + "\n".join(problems)


def test_sensor_constants_are_the_ones_everything_uses():
    """The simulator's sensor, the core's filters, the nodes and the truth
    messages take the geometry and class codes of ``bs_sensor``."""
    from sense_nodes import bs_sensor as s
    from sense_nodes.core.bsense.object_filter import ObjectFilterConfig
    from sense_nodes.core.bsense.tracker import TrackerConfig
    from sense_nodes.data.bs_sim.sensor import DEFAULT_SENSOR
    from sense_nodes.msg import GroundTruth
    from sense_nodes.nodes.uav_tracker import UavTracker

    assert (GroundTruth.UNKNOWN, GroundTruth.UAV, GroundTruth.BIRD, GroundTruth.VEHICLE) == (
        s.UNKNOWN, s.UAV, s.BIRD, s.VEHICLE)
    assert DEFAULT_SENSOR.frame_s == TrackerConfig().dt == s.FRAME_S
    assert next(p.default for p in UavTracker.all_params() if p.name == "frame_s") == s.FRAME_S
    assert (0.0, 0.0, DEFAULT_SENSOR.height_m) == tuple(ObjectFilterConfig().origin) == tuple(
        TrackerConfig().origin) == s.ANTENNA_POS
