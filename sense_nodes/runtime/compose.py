"""Run a deployment in one process: every node of its description on one
multi-threaded executor (what ``ros2 launch`` does in separate processes).

Each node gets its own namespace and arguments with
``use_global_arguments=False``, the deployment's parameter file and
remappings, exactly as the launch file passes them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

from sense_nodes.runtime.deployment import Deployment, DeploymentError, load, node_class


@dataclass
class Composition:
    """The nodes of one deployment, built and ready to spin."""

    deployment: Deployment
    context: Context
    nodes: list = field(default_factory=list)
    executor: MultiThreadedExecutor | None = None

    def spin(self, duration_s: float | None = None, until=None, tick=None) -> None:
        """Spin until ``duration_s`` passes, ``until()`` is true, or Ctrl-C;
        ``tick()`` is called between callbacks (status lines)."""
        deadline = None if duration_s is None else time.monotonic() + duration_s
        try:
            while self.context.ok():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if until is not None and until():
                    break
                self.executor.spin_once(timeout_sec=0.05)
                if tick is not None:
                    tick()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass

    def close(self) -> None:
        """Destroy every node on the executor (the deployment's and any added
        beside them, such as probes and recorders), then the context."""
        nodes = list(self.nodes)
        if self.executor is not None:
            nodes += [n for n in self.executor.get_nodes() if n not in nodes]
            for node in nodes:
                self.executor.remove_node(node)
            # rclpy's MultiThreadedExecutor.shutdown destroys its guard
            # condition before its worker threads finish the callbacks already
            # handed to them, which then fail on it ("cannot use Destroyable");
            # let the workers finish first.
            pool = getattr(self.executor, "_executor", None)
            if pool is not None:
                pool.shutdown(wait=True)
            self.executor.shutdown(timeout_sec=1.0)
        for node in nodes:
            node.destroy_node()
        self.nodes.clear()
        rclpy.try_shutdown(context=self.context)


# parameters every rclpy node declares itself
ROS_PARAMS = ("use_sim_time",)


def check_overrides(dep: Deployment, extra_params: dict[str, dict]) -> dict[str, dict]:
    """The overrides keyed by each node's fully qualified name. A node may be
    named bare (``uav_tracker``) where one node of the deployment has that
    name. An override for a node the deployment lacks or a parameter the node
    does not declare is refused, naming what exists (rclpy would ignore both)."""
    specs = {spec.fqn: spec for spec in dep.nodes}
    resolved: dict[str, dict] = {}
    for given, params in extra_params.items():
        fqn = given if given in specs else _by_bare_name(given, specs)
        if fqn is None:
            raise DeploymentError(f"deployment '{dep.name}' has no node '{given}' (its nodes: "
                                  f"{', '.join(specs)})")
        known = [p.name for p in node_class(specs[fqn].executable).all_params()] + list(ROS_PARAMS)
        for name in params:
            if name not in known:
                raise DeploymentError(f"node '{fqn}' has no parameter '{name}' (its parameters: "
                                      f"{', '.join(sorted(known))})")
        resolved.setdefault(fqn, {}).update(params)
    return resolved


def _by_bare_name(name: str, specs: dict) -> str | None:
    matches = [fqn for fqn, spec in specs.items() if spec.name == name.strip("/")]
    return matches[0] if len(matches) == 1 else None


def compose(deployment: str | Deployment, bag: str | None = None, rate: float | None = None,
            extra_params: dict[str, dict] | None = None, context: Context | None = None,
            threads: int = 4) -> Composition:
    """Build every node of a deployment in this process.

    ``bag`` makes the source nodes replay it; sources publish ``/clock``
    (simulation or bag time) and every other node runs on it with
    ``use_sim_time``. ``extra_params`` maps a node's fully qualified name to
    parameter overrides.
    """
    dep = load(deployment) if isinstance(deployment, str) else deployment
    extra_params = check_overrides(dep, extra_params or {})
    if context is None:
        context = Context()
        rclpy.init(context=context)
    comp = Composition(deployment=dep, context=context)
    comp.executor = MultiThreadedExecutor(num_threads=threads, context=context)
    try:
        for spec in dep.nodes:
            overrides = dict(extra_params.get(spec.fqn, {}))
            if spec.source:
                if bag:
                    overrides["bag"] = str(bag)
                if rate is not None:
                    overrides["rate"] = float(rate)
            else:
                overrides.setdefault("use_sim_time", True)
            node = node_class(spec.executable)(
                node_name=spec.name, namespace=spec.namespace, context=context,
                cli_args=dep.cli_args(spec, overrides), use_global_arguments=False)
            comp.nodes.append(node)
            comp.executor.add_node(node)
    except BaseException:
        comp.close()
        raise
    return comp
