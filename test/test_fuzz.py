"""The standing hostile-input harness, a bounded run: nothing crashes, no
node publishes a non-finite value, no model file runs code or is overwritten,
memory stays flat."""
import json

import pytest

from sense_nodes.cli.main import main

pytestmark = pytest.mark.ros


def test_a_bounded_fuzz_run_finds_nothing(tmp_path):
    out = tmp_path / "fuzz.json"
    rc = main(["fuzz", "--cases", "250", "--no-progress", "--json", str(out)])
    figures = json.loads(out.read_text())
    assert rc in (0, 1) and figures["cases"] >= 240 and figures["message_cases"] >= 150
    assert figures["crashes"] == 0 and figures["nonfinite_published"] == 0, figures["failures"]
    assert figures["code_executed"] == 0 and figures["model_overwritten_by_bad_input"] == 0
    # a short attack cannot tell a leak from the allocator keeping blocks for
    # tensors of new shapes (tens of MB); a leak of the kind this guards
    # against (a frame's points kept per message) grows far faster
    assert figures["rss_growth_mb"] < 200
    assert figures["drops_counted"] > 0, "hostile input must be counted where it is dropped"
