"""The package's import graph follows the layers of the design (each layer a
folder, arrows only downward): a node converts and calls the core, the core
is testable without ROS, the evaluation judges the core on the data, and
only the command line sits on top. Every ``import`` of a ``sense_nodes``
module, at module level or inside a function, is checked."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "sense_nodes"

# layer -> the layers it may import (besides itself and the bottom)
MAY_IMPORT = {
    "cli": {"eval", "runtime", "nodes", "core", "data"},
    "eval": {"runtime", "core", "data"},          # runs a deployment as a whole, never a node directly
    "runtime": {"nodes", "core", "data"},         # composes the nodes
    "nodes": {"core", "data"},                    # thin adapters
    "core": {"data"},                             # no rclpy, no messages, no nodes
    "data": set(),
}
# the bottom: imports nothing of the package's layers, importable by all
BOTTOM = {"errors", "bs_sensor", "msg", "srv"}
NO_ROS = {"core", "data", "eval"}                 # layers that must run without rclpy at import time


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "sense_nodes" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path):
    """(line, imported module) of every import in the file, relative ones resolved."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                yield node.lineno, mod, [a.name for a in node.names]
            elif node.module:
                yield node.lineno, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name, []


def _violations():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if len(rel.parts) < 2:
            src = rel.stem
            if src not in BOTTOM:
                continue                      # __init__ / __main__ (the entry point)
        else:
            src = rel.parts[0]
        for line, mod, names in _imports(path):
            dst = _layer(mod)
            if dst is None and mod == "sense_nodes":   # `from sense_nodes import msg`
                dst = names[0] if len(names) == 1 else None
            if dst is None or dst == src or dst in BOTTOM:
                if src in BOTTOM and dst is not None and dst != src:
                    bad.append(f"{rel}:{line} imports {mod}: the bottom imports no layer")
                continue
            if src in BOTTOM or dst not in MAY_IMPORT.get(src, set()):
                bad.append(f"{rel}:{line}: {src} imports {mod} ({dst})")
    return bad


def test_imports_point_only_down_the_layers():
    assert _violations() == []


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The checker itself: a core module importing a node is caught."""
    fake = tmp_path / "sense_nodes"
    (fake / "core").mkdir(parents=True)
    (fake / "nodes").mkdir()
    (fake / "core" / "x.py").write_text("def f():\n    from sense_nodes.nodes.base import SenseNode\n")
    (fake / "nodes" / "y.py").write_text("from ..core import x\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert _violations() == ["core/x.py:2: core imports sense_nodes.nodes.base (nodes)"]


def test_core_data_and_eval_import_no_rclpy_at_module_level():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] not in NO_ROS:
            continue
        for node in ast.parse(path.read_text()).body:        # module level only
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            bad += [f"{rel}:{node.lineno} imports {n}" for n in names
                    if n.split(".")[0] in ("rclpy", "sensor_msgs", "std_msgs", "geometry_msgs")]
    assert bad == []
