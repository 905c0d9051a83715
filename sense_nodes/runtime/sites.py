"""Sites and centre: how a deployment splits over machines
(``config/sites/<deployment>.yaml``).

Each host runs its share of the deployment's nodes, composed in one process
as ``sense run`` composes the whole, and the hosts talk DDS over the
network. A node may take another namespace on its host (one copy of a
source per site) and parameter overrides; it keeps the parameter-file
section of the node it stands for.
"""
from __future__ import annotations

from dataclasses import dataclass

import yaml

from sense_nodes.runtime.deployment import Deployment, DeploymentError, NodeSpec, load, share_dir


@dataclass(frozen=True)
class HostNode:
    spec: NodeSpec          # the node as it runs on the host
    original: str           # fully qualified name in the deployment (its parameter section)
    params: dict


def sites_file(deployment: str):
    return share_dir() / "config" / "sites" / f"{deployment}.yaml"


def hosts(deployment: str) -> dict[str, list[HostNode]]:
    """Host name -> its nodes; every node of the deployment runs on some host."""
    path = sites_file(deployment)
    if not path.is_file():
        raise DeploymentError(f"deployment '{deployment}' has no split over hosts ({path} does not exist)")
    dep = load(deployment)
    specs = {s.fqn: s for s in dep.nodes}
    raw = yaml.safe_load(path.read_text()) or {}
    out: dict[str, list[HostNode]] = {}
    for host, entries in (raw.get("hosts") or {}).items():
        out[host] = []
        for entry in entries or []:
            entry = {"node": entry} if isinstance(entry, str) else dict(entry)
            fqn = entry.get("node")
            if fqn not in specs:
                raise DeploymentError(f"{path}: host '{host}' names '{fqn}', not a node of '{deployment}'")
            spec = specs[fqn]
            if "namespace" in entry:
                spec = NodeSpec(spec.executable, spec.name, entry["namespace"], spec.source, spec.remappings)
            out[host].append(HostNode(spec, fqn, dict(entry.get("params") or {})))
    placed = {n.original for nodes in out.values() for n in nodes}
    if placed != set(specs):
        raise DeploymentError(f"{path}: nodes on no host: {sorted(set(specs) - placed)}")
    return out


def host_deployment(deployment: str, host: str) -> tuple[Deployment, dict[str, dict]]:
    """The part of ``deployment`` that runs on ``host``, and the parameter
    overrides its nodes need (a moved node's section of the parameter file,
    then the host's own changes)."""
    table = hosts(deployment)
    if host not in table:
        raise DeploymentError(f"deployment '{deployment}' has no host '{host}' (its hosts: {', '.join(table)})")
    dep = load(deployment)
    sections = yaml.safe_load(dep.params_file.read_text()) or {}
    extra: dict[str, dict] = {}
    for n in table[host]:
        params = {}
        if n.spec.fqn != n.original:
            params.update((sections.get(n.original) or {}).get("ros__parameters") or {})
        params.update(n.params)
        if params:
            extra[n.spec.fqn] = params
    part = Deployment(name=f"{dep.name}@{host}", description=f"{dep.description} ({host})",
                      params_file=dep.params_file, rviz_file=dep.rviz_file,
                      nodes=tuple(n.spec for n in table[host]))
    return part, extra
