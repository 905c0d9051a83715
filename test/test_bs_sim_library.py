"""Scenario library and its case-level folds (BSense paper, Section 4.1)."""
import pytest

from sense_nodes.data.bs_sim import library


def test_library_has_the_papers_cases():
    cases = library.cases()
    assert len(library.trajectories()) == 25
    assert len(cases) == 54
    names = {c.name for c in cases}
    assert {"multi_uav", "cross_site", "uav_free_calib", "uav_free_eval"} <= names
    assert len(library.scenario("uav_free_calib")) == 938       # 10 min
    assert len(library.scenario("uav_free_eval")) == 1407       # 15 min
    assert len(library.spec("multi_uav").uavs) == 2
    assert library.spec("cross_site").site_kind == "B"
    assert library.spec("eval_straight_0").name == "straight_0_r1"
    # both repetitions fly the same path, with different noise
    r1, r2 = library.spec("M_2_r1"), library.spec("M_2_r2")
    assert r1.uavs == r2.uavs and r1.seed != r2.seed


def test_unknown_names_are_refused_with_the_choices():
    with pytest.raises(KeyError, match="sense sim list"):
        library.spec("straight_7_r1")
    with pytest.raises(KeyError, match="families"):
        library.cases("hexagon")


def test_folds_never_share_a_trajectory_type():
    folds = library.folds(5)
    assert len(folds) == 5
    by_name = {c.name: c for c in library.cases()}
    tested = [n for f in folds for n in f.test]
    path_cases = [c.name for c in library.cases() if c.family in ("straight", "shape")]
    assert len(path_cases) == 50
    assert sorted(tested) == sorted(path_cases)            # every path case tested exactly once
    for f in folds:
        train_types = {by_name[n].traj_type for n in f.train}
        test_types = {by_name[n].traj_type for n in f.test}
        assert not train_types & test_types
        assert set(f.train) | set(f.test) == set(path_cases)


def test_special_cases_are_in_no_fold():
    """The multi-UAV, cross-site and UAV-free cases are scored apart
    (Section 4.5): no fold trains on them or tests them as path cases."""
    specials = {c.name for c in library.cases() if c.family not in ("straight", "shape")}
    assert specials == {"multi_uav", "cross_site", "uav_free_calib", "uav_free_eval"}
    for k in (2, 5):
        for f in library.folds(k):
            assert not specials & (set(f.train) | set(f.test))
    with pytest.raises(KeyError, match="not fold cases"):
        library.folds(2, names=["circle_1_r1", "star_1_r1", "multi_uav"])


def test_fold_count_is_checked():
    with pytest.raises(ValueError):
        library.folds(1)
