"""Shared test setup: a private ROS domain, discovery kept on this host."""
import os
import random

import pytest

# A private domain per test session, so parallel runs (and anything else on
# the machine) never see each other's topics.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(30, 99)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
# Tests never read or write the user's cache (models, datasets, bags).
if "SENSE_CACHE" not in os.environ:
    import tempfile
    os.environ["SENSE_CACHE"] = tempfile.mkdtemp(prefix="sense-test-cache-")


@pytest.fixture
def ros_context():
    """A fresh rclpy context, shut down after the test."""
    import rclpy
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def spin_until(executor, predicate, timeout_s=10.0):
    """Spin an executor until ``predicate()`` is true; return whether it became true."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=0.05)
    return predicate()


def fwa_dataset(samples: int = 20):
    """A small ``fwa`` dataset (tiny ray tracing) at the default location of
    the test cache, made once per session: what the fwa deployment replays."""
    from sense_nodes.data.csi import fwa_pairs
    from sense_nodes.data.csi.dataset import default_dir
    path = default_dir("fwa", False, 0)
    if not (path / "manifest.json").exists():
        fwa_pairs.generate(path, seed=0, tiny=True, samples=samples, progress=False)
    return path


# Test modules that start every deployment on its defaults.
EVERY_DEPLOYMENT = ("test_deployments", "test_parameters_runtime", "test_fuzz")
# Test modules that start the whole suite (the all deployment).
SUITE_MODULES = ("test_suite_all", "test_suite_sites")


@pytest.fixture(autouse=True)
def _csi_deployments_ready(request):
    """The CSI deployments start on data in the (temporary) cache: a small
    synthetic diffloc dataset and model, a tiny ray-traced fwa dataset. Made
    once per session, for the tests that start those deployments."""
    module = request.node.module.__name__ if request.node.module else ""
    callspec = getattr(request.node, "callspec", None)
    name = callspec.params.get("name") if callspec is not None else None
    every = (module in EVERY_DEPLOYMENT and name is None) or name == "all" or module in SUITE_MODULES
    if every or name == "diffloc" or ("diffloc" in request.node.nodeid and module == "test_deployments"):
        from diffloc_helpers import ensure_default_cache
        ensure_default_cache()
    if every or name == "fwa":
        fwa_dataset()
