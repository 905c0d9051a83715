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


@pytest.fixture(autouse=True)
def _diffloc_default_cache(request):
    """Deployment tests of diffloc start its nodes on their defaults: a small
    synthetic dataset and model in the temporary cache."""
    if "diffloc" in request.node.nodeid and "test_deployments" in request.node.nodeid:
        from diffloc_helpers import ensure_default_cache
        ensure_default_cache()
