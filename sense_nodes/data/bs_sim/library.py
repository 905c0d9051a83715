"""The scenario library (BSense paper, Section 4.1) and its case-level folds.

The paper's dataset: 25 trajectories (straight lines at five
trajectory-boresight angles and shaped paths), each flown twice (50 cases,
600-2,300 m), a multi-UAV case with two UAVs close together, a cross-site
case from another base station, and two UAV-free cases (10 minutes to fit the
noise fingerprints, 15 minutes to count false alarms); 54 cases over 7 days.

Every case here has a default seed, so ``scenario("circle_1_r1")`` is always
the same scenario. ``seed=N`` draws the case afresh (flight geometry, birds,
vehicles, ghosts, noise) keeping its trajectory type; ``site_seed=N`` draws a
new site clutter map. Same seeds, same bytes.

Names: ``<trajectory>_r<repetition>`` (e.g. ``straight_45_r2``, ``star_3_r1``),
``multi_uav``, ``cross_site``, ``uav_free_calib``, ``uav_free_eval``; and
``eval_<trajectory>`` as another name for ``<trajectory>_r1``.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from sense_nodes.bs_sensor import ANTENNA_HEIGHT_M

from .scenario import Scenario, ScenarioSpec, UavSpec
from .trajectories import LINE_ANGLES_DEG, place

FAMILIES = ("straight", "shape", "multi_uav", "uav_free", "cross_site")
FOLD_FAMILIES = ("straight", "shape")   # the 50 flown path cases; the others are evaluated apart
# shaped trajectories per shape: 20 shaped + 5 straight = the paper's 25
_SHAPE_COUNT = {"circle": 3, "square": 3, "triangle": 3, "S": 3, "M": 3, "star": 3, "zigzag": 2}
CALIB_FRAMES = 938     # 10 min at 0.64 s (Section 3.2.1)
EVAL_FREE_FRAMES = 1407  # 15 min (Section 4.5)
CROSS_SITE_SHAPE = "square"   # the paper's glyph did not survive: our choice
MULTI_SHAPE = "zigzag"        # our choice


def trajectories() -> list[str]:
    """The 25 trajectory names."""
    out = [f"straight_{a}" for a in LINE_ANGLES_DEG]
    for shape, n in _SHAPE_COUNT.items():
        out += [f"{shape}_{i}" for i in range(1, n + 1)]
    return out


def traj_type(traj: str) -> str:
    return traj.rsplit("_", 1)[0]


def _seed_of(text: str) -> int:
    return zlib.crc32(text.encode()) & 0x7FFFFFFF


def _geometry(traj: str, rng: np.random.Generator) -> dict:
    """Placement of a trajectory: length 600-2,300 m (paper), 3-10 m/s (our
    choice), the whole path 150-980 m from the base station within +-55 deg
    of boresight (drawn again until it fits; a path too long to fit is
    shortened by a tenth at a time). Altitude 50-350 m, below about 35 deg
    elevation: the paper gives no altitude; its false objects appear at
    100-300 m and "often occur in plausible UAV locations" (Sections 1 and
    3.3), so the UAVs here cover the whole volume the ghosts occupy (our
    choice)."""
    shape = traj_type(traj)
    length = rng.uniform(600, 2300)
    if shape == "straight":
        length = min(length, 900.0)
    for attempt in range(400):
        if attempt and attempt % 40 == 0:
            length *= 0.9
        heading = float(traj.rsplit("_", 1)[1]) if shape == "straight" else rng.uniform(0, 180)
        centre = rng.uniform(300, 800)
        az = rng.uniform(-25, 25)
        path = place(shape, length, centre, np.radians(az), np.radians(heading))
        r = np.hypot(path[:, 0], path[:, 1])
        a = np.degrees(np.abs(np.arctan2(path[:, 1], path[:, 0])))
        if r.min() >= 150 and r.max() <= 980 and a.max() <= 55:
            break
    top = min(350.0, ANTENNA_HEIGHT_M + 0.7 * float(r.min()))   # stay below about 35 deg elevation
    return dict(shape=shape, length_m=float(length), centre_range_m=float(centre),
                centre_az_deg=float(az), heading_deg=float(heading),
                altitude_m=float(rng.uniform(50, max(top, 80.0))), speed_mps=float(rng.uniform(3, 10)))


@dataclass(frozen=True)
class Case:
    name: str
    family: str
    traj_type: str


def cases(family: str | None = None) -> list[Case]:
    """Every named case, or those of one family."""
    out = []
    for t in trajectories():
        fam = "straight" if t.startswith("straight") else "shape"
        out += [Case(f"{t}_r{r}", fam, traj_type(t)) for r in (1, 2)]
    out += [Case("multi_uav", "multi_uav", MULTI_SHAPE), Case("cross_site", "cross_site", CROSS_SITE_SHAPE),
            Case("uav_free_calib", "uav_free", "none"), Case("uav_free_eval", "uav_free", "none")]
    if family is not None:
        if family not in FAMILIES:
            raise KeyError(f"unknown family '{family}'; families: {', '.join(FAMILIES)}")
        out = [c for c in out if c.family == family]
    return out


def _resolve(name: str) -> str:
    if name.startswith("eval_"):
        return name[len("eval_"):] + "_r1"
    return name


def spec(name: str, seed: int | None = None, site_seed: int | None = None) -> ScenarioSpec:
    """The spec of a named case (KeyError naming the choices if unknown)."""
    name = _resolve(name)
    by_name = {c.name: c for c in cases()}
    if name not in by_name:
        raise KeyError(f"unknown scenario '{name}'; see `sense sim list` "
                       f"(e.g. straight_0_r1, circle_1_r2, multi_uav, cross_site, uav_free_eval)")
    case = by_name[name]
    default_seed = _seed_of(name)
    s = default_seed if seed is None else int(seed)
    idx = [c.name for c in cases()].index(name)
    day = float(idx % 7) + 0.25   # cases spread over the paper's 7 days
    if case.family in ("straight", "shape"):
        traj = name.rsplit("_", 1)[0]
        # the two repetitions of a trajectory fly the same path unless redrawn
        grng = np.random.default_rng([_seed_of(traj)] if seed is None else [s, _seed_of(traj)])
        g = _geometry(traj, grng)
        return ScenarioSpec(name=name, family=case.family, traj_type=case.traj_type, uavs=(UavSpec(**g),),
                            seed=s, site_seed=0 if site_seed is None else int(site_seed), day=day)
    if case.family == "multi_uav":
        grng = np.random.default_rng([s, 5])
        g = _geometry(f"{MULTI_SHAPE}_1", grng)
        sep = grng.uniform(20, 40)   # "two UAVs fly in close proximity" (Section 4.5)
        u1 = UavSpec(**g)
        u2 = UavSpec(**{**g, "centre_range_m": g["centre_range_m"] + sep, "altitude_m": g["altitude_m"] + 10})
        return ScenarioSpec(name=name, family=case.family, traj_type=case.traj_type, uavs=(u1, u2), seed=s,
                            site_seed=0 if site_seed is None else int(site_seed), day=day)
    if case.family == "cross_site":
        g = _geometry(f"{CROSS_SITE_SHAPE}_1", np.random.default_rng([s, 6]))
        return ScenarioSpec(name=name, family=case.family, traj_type=case.traj_type, uavs=(UavSpec(**g),),
                            seed=s, site_seed=1 if site_seed is None else int(site_seed), site_kind="B", day=day)
    n = CALIB_FRAMES if name == "uav_free_calib" else EVAL_FREE_FRAMES
    return ScenarioSpec(name=name, family=case.family, traj_type="none", uavs=(), n_frames=n, seed=s,
                        site_seed=0 if site_seed is None else int(site_seed),
                        day=0.0 if name == "uav_free_calib" else 3.5)


def scenario(name: str, seed: int | None = None, site_seed: int | None = None) -> Scenario:
    """The named case as a drawn :class:`Scenario` (KeyError if unknown)."""
    return Scenario(spec(name, seed, site_seed))


def family(name: str, seed: int | None = None, site_seed: int | None = None) -> list[Scenario]:
    """Every case of a family, drawn with the given seeds."""
    return [scenario(c.name, seed, site_seed) for c in cases(name)]


@dataclass(frozen=True)
class Fold:
    train: tuple
    test: tuple
    test_types: tuple


def folds(k: int = 5, names: list[str] | None = None) -> list[Fold]:
    """Case-level k-fold split (Section 4.1) of the 50 flown path cases
    (families ``straight`` and ``shape``): cases of one trajectory type are
    never in both the training and the test part of a fold. Types are dealt
    to folds largest first, each to the fold with fewest cases. The special
    cases are in no fold, neither trained on nor tested as path cases: the
    paper evaluates them apart (Section 4.5), so a fold whose training part
    held the multi-UAV or cross-site case could not score it unseen;
    ``uav_free_calib`` fits the fingerprints and ``uav_free_eval`` counts
    false alarms. ``names``: a subset of the path cases to split."""
    all_cases = [c for c in cases() if c.family in FOLD_FAMILIES]
    if names is not None:
        known = {c.name: c for c in all_cases}
        missing = [n for n in names if _resolve(n) not in known]
        if missing:
            raise KeyError(f"not fold cases (only the {', '.join(FOLD_FAMILIES)} families are): {missing}")
        all_cases = [known[_resolve(n)] for n in names]
    groups: dict[str, list[str]] = {}
    for c in all_cases:
        groups.setdefault(c.traj_type, []).append(c.name)
    if not 2 <= k <= len(groups):
        raise ValueError(f"k must be between 2 and the number of trajectory types ({len(groups)}), got {k}")
    bins: list[list[str]] = [[] for _ in range(k)]
    types: list[list[str]] = [[] for _ in range(k)]
    for t in sorted(groups, key=lambda t: (-len(groups[t]), t)):
        i = min(range(k), key=lambda j: (len(bins[j]), j))
        bins[i] += groups[t]
        types[i].append(t)
    every = [c.name for c in all_cases]
    return [Fold(train=tuple(n for n in every if n not in set(b)), test=tuple(b), test_types=tuple(ty))
            for b, ty in zip(bins, types)]
