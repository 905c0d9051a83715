"""Deployment descriptions: one YAML file per deployment in ``config/deployments``.

A description lists the deployment's nodes (executable, name, namespace,
remappings), the parameter file they share (standard ``ros__parameters``
YAML in ``config/params``) and its RViz config. The ROS 2 launch files build
their ``Node`` actions from it (:mod:`sense_nodes.runtime.launch`) and
``sense run`` composes the same nodes in one process
(:mod:`sense_nodes.runtime.compose`), so the two never drift.

Example (``config/deployments/bsense.yaml``)::

    description: BSense UAV tracking from base-station point clouds
    params: bsense.yaml          # in config/params/
    rviz: bsense.rviz            # in config/rviz/
    nodes:
      - executable: bs_radar_source
        name: bs_radar_source
        namespace: /bs
        source: true             # replays --bag when one is given
        remappings: {}
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

PACKAGE = "sense_nodes"


class DeploymentError(ValueError):
    """A deployment description that is missing or wrong; names the file."""


def share_dir() -> Path:
    """Root holding ``config/``, ``launch/`` and ``executables.txt``.

    The source checkout when running from one (development), else the
    package's installed share directory.
    """
    source = Path(__file__).resolve().parents[2]
    if (source / "config" / "deployments").is_dir() and (source / "package.xml").is_file():
        return source
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory(PACKAGE))
    except Exception as exc:  # PackageNotFoundError, or ament_index missing
        raise DeploymentError(f"cannot find the {PACKAGE} share directory: {exc}") from exc


@lru_cache(maxsize=None)
def executables() -> dict[str, str]:
    """Executable name -> ``module:function`` from ``executables.txt``."""
    path = share_dir() / "executables.txt"
    if not path.is_file():
        raise DeploymentError(f"{path} not found")
    table = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, target = line.split()
            table[name] = target
    return table


def node_class(executable: str):
    """The SenseNode class behind an executable (its module's NODE_CLASS)."""
    target = executables().get(executable)
    if target is None:
        raise DeploymentError(
            f"no executable '{executable}' (known: {', '.join(sorted(executables())) or 'none'})")
    module = importlib.import_module(target.split(":")[0])
    try:
        return module.NODE_CLASS
    except AttributeError:
        raise DeploymentError(f"module {module.__name__} defines no NODE_CLASS") from None


@dataclass(frozen=True)
class NodeSpec:
    executable: str
    name: str
    namespace: str = "/"
    source: bool = False
    remappings: dict[str, str] = field(default_factory=dict)

    @property
    def fqn(self) -> str:
        ns = self.namespace.rstrip("/")
        return f"{ns}/{self.name}" if ns else f"/{self.name}"


@dataclass(frozen=True)
class Deployment:
    name: str
    description: str
    params_file: Path
    rviz_file: Path | None
    nodes: tuple[NodeSpec, ...]

    def cli_args(self, spec: NodeSpec, extra_params: dict | None = None) -> list[str]:
        """The ``--ros-args`` a node gets: parameter file, remappings, overrides."""
        args = ["--ros-args", "--params-file", str(self.params_file)]
        for src, dst in spec.remappings.items():
            args += ["-r", f"{src}:={dst}"]
        for key, value in (extra_params or {}).items():
            args += ["-p", f"{key}:={_param_literal(value)}"]
        return args


def _param_literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return yaml.safe_dump(value, default_style="'").strip()
    return str(value)


def names() -> list[str]:
    """The deployments that exist, sorted."""
    return sorted(p.stem for p in (share_dir() / "config" / "deployments").glob("*.yaml"))


def load(name: str) -> Deployment:
    """Read and check one deployment description."""
    root = share_dir()
    path = root / "config" / "deployments" / f"{name}.yaml"
    if not path.is_file():
        raise DeploymentError(f"unknown deployment '{name}' (known: {', '.join(names()) or 'none'})")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise DeploymentError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("nodes"), list) or not raw["nodes"]:
        raise DeploymentError(f"{path}: needs a non-empty 'nodes' list")
    params = root / "config" / "params" / str(raw.get("params", f"{name}.yaml"))
    if not params.is_file():
        raise DeploymentError(f"{path}: parameter file {params} does not exist")
    rviz = raw.get("rviz")
    rviz_path = root / "config" / "rviz" / rviz if rviz else None
    if rviz_path is not None and not rviz_path.is_file():
        raise DeploymentError(f"{path}: RViz config {rviz_path} does not exist")
    nodes = []
    for i, entry in enumerate(raw["nodes"]):
        if not isinstance(entry, dict) or "executable" not in entry:
            raise DeploymentError(f"{path}: node #{i} needs an 'executable'")
        unknown = set(entry) - {"executable", "name", "namespace", "source", "remappings"}
        if unknown:
            raise DeploymentError(f"{path}: node #{i} has unknown keys {sorted(unknown)}")
        nodes.append(NodeSpec(executable=entry["executable"], name=entry.get("name", entry["executable"]),
                              namespace=entry.get("namespace", "/"), source=bool(entry.get("source", False)),
                              remappings=dict(entry.get("remappings") or {})))
    fqns = [n.fqn for n in nodes]
    if len(set(fqns)) != len(fqns):
        raise DeploymentError(f"{path}: two nodes share a name: {fqns}")
    return Deployment(name=name, description=str(raw.get("description", "")), params_file=params,
                      rviz_file=rviz_path, nodes=tuple(nodes))
