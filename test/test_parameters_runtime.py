"""Every parameter of every node of every deployment, set while the node
runs: it either takes effect (the values the node computes with change) or
is refused with a reason that names it. Nothing is accepted and ignored."""
import pytest
from rclpy.parameter import Parameter

from sense_nodes.runtime import deployment
from sense_nodes.runtime.compose import compose

pytestmark = pytest.mark.ros


def _another_value(spec, current):
    """A valid value different from ``current``."""
    if isinstance(spec.default, bool):
        return not current
    if spec.choices:
        return next(c for c in spec.choices if c != current)
    if isinstance(spec.default, int):
        hi = spec.range[1] if spec.range else current + 2
        return current + 1 if current + 1 <= hi else current - 1
    if isinstance(spec.default, float):
        lo, hi = spec.range if spec.range else (current - 1.0, current + 1.0)
        return (current + hi) / 2 if hi > current else (current + lo) / 2
    return f"{current}-changed"


@pytest.mark.parametrize("name", deployment.names())
def test_every_parameter_takes_effect_or_is_refused_naming_it(name):
    comp = compose(name)
    try:
        checked = 0
        for node in comp.nodes:
            for spec in node.all_params():
                current = getattr(node.p, spec.name)
                new = _another_value(spec, current)
                [result] = node.set_parameters([Parameter(spec.name, value=new)])
                where = f"{node.get_fully_qualified_name()}:{spec.name}"
                if spec.runtime:
                    assert result.successful, f"{where}: {result.reason}"
                    want = pytest.approx(new, rel=1e-5) if isinstance(new, float) else new
                    assert node.effective_parameters()[spec.name] == want, f"{where} accepted but not in effect"
                else:
                    assert not result.successful, f"{where} accepted while read-only"
                    assert spec.name in result.reason, f"{where}: refusal does not name it: {result.reason}"
                    assert getattr(node.p, spec.name) == current
                checked += 1
        assert checked >= len(comp.nodes)
    finally:
        comp.close()


def test_a_refused_value_leaves_the_node_as_it_was():
    comp = compose("bsense")
    try:
        tracker = next(n for n in comp.nodes if n.get_name() == "uav_tracker")
        [r] = tracker.set_parameters([Parameter("gate_m", value=1e9)])
        assert not r.successful and "gate_m" in r.reason
        assert tracker.effective_parameters()["gate_m"] == tracker.p.gate_m != 1e9
        [r] = tracker.set_parameters([Parameter("window", value=10)])
        assert not r.successful and "window" in r.reason
    finally:
        comp.close()
