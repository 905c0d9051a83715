"""The DiffLoc learning curve: training subsets, the checkpoints it finds,
and the power law it reads off the curve."""
from __future__ import annotations

import numpy as np
import pytest

from sense_nodes.core.diffloc.models import fraction_tag
from sense_nodes.core.diffloc.training import TrainConfig, training_subset
from sense_nodes.eval.diffloc_learning import checkpoint_fractions, loglog_slope, nearest_spacing_m


def test_training_subset_is_a_seeded_sorted_share():
    tr = np.arange(100, 900, 2)
    sub = training_subset(tr, 0.25, seed=3)
    assert len(sub) == 100
    assert np.all(np.isin(sub, tr)) and np.all(np.diff(sub) > 0)
    assert np.array_equal(sub, training_subset(tr, 0.25, seed=3))
    assert not np.array_equal(sub, training_subset(tr, 0.25, seed=4))
    assert np.array_equal(training_subset(tr, 1.0), tr)


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5])
def test_a_training_fraction_outside_its_range_is_refused(fraction):
    with pytest.raises(ValueError, match="train fraction"):
        TrainConfig(model="ct", train_fraction=fraction)


def test_checkpoints_of_each_fraction_are_found(tmp_path):
    for name in ("ct-beamdb.pt", f"ct-beamdb-{fraction_tag(0.25)}.pt", f"ct-beamdb-{fraction_tag(0.125)}.pt",
                 "ct-beamdb-user.pt", "ct.pt"):
        (tmp_path / name).write_bytes(b"")
    found = checkpoint_fractions(tmp_path, "ct-beamdb")
    assert list(found) == [0.125, 0.25, 1.0]
    assert found[0.125].name == "ct-beamdb-frac12p5.pt"


def test_a_power_law_curve_gives_its_slope_and_the_samples_for_ten_centimetres():
    n = np.array([250, 500, 1000])
    slope, need = loglog_slope(n, 5.0 * (n / 1000.0) ** -0.5)
    assert slope == pytest.approx(-0.5)
    assert need == pytest.approx(1000 * 50 ** 2, rel=1e-6)   # 5 m -> 0.1 m needs (50x)^2 the samples
    assert loglog_slope(n, [1.0, 1.0, 1.1])[1] is None      # not falling: no extrapolation
    assert loglog_slope([1000], [1.0]) == (None, None)


def test_spacing_is_the_median_nearest_training_distance():
    train = np.array([[0.0, 0.0], [10.0, 0.0]])
    test = np.array([[1.0, 0.0], [7.0, 0.0], [0.0, 2.0]])
    assert nearest_spacing_m(train, test) == pytest.approx(2.0)
