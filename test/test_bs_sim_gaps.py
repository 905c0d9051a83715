"""UAVs vanish when occluded or flying tangentially (BSense paper, Section 5)."""
import numpy as np

from sense_nodes.data.bs_sim import scenario as scn
from sense_nodes.data.bs_sim.scenario import Scenario, ScenarioSpec, UavSpec
from sense_nodes.data.bs_sim.targets import OCCLUDED, TANGENTIAL


def _uav_rows(sc, k):
    f = sc.frame(k)
    rows = f.truth[f.truth["object_class"] == scn.UAV]
    if rows.size == 0:
        return None, False
    row = rows[0]
    has_point = bool(np.any(f.labels["source"][f.labels["object_id"] == row["id"]] == scn.UAV))
    return row, has_point


def test_uav_behind_a_building_leaves_a_gap():
    base = Scenario(ScenarioSpec("probe", "shape", "straight", (), n_frames=1))
    site = base.site
    o = site.sensor.origin
    # the tallest building 200-450 m out within the field of view
    b = max((b for b in site.boxes if 200 < (b[0] + b[1]) / 2 < 450
             and abs(np.arctan2((b[2] + b[3]) / 2, (b[0] + b[1]) / 2)) < 0.8), key=lambda b: b[5])
    c = np.array([(b[0] + b[1]) / 2, (b[2] + b[3]) / 2])
    r_box = np.hypot(*c)
    az = np.degrees(np.arctan2(c[1], c[0]))
    r_uav = 1.6 * r_box
    alt = o[2] + (b[5] - o[2]) * 1.3          # below the building's shadow at that range
    uav = UavSpec("straight", 400.0, r_uav, az, az + 90.0, alt, 6.0, start_frame=0)
    sc = Scenario(ScenarioSpec("probe", "shape", "straight", (uav,), seed=5))
    rows = [rp for rp in (_uav_rows(sc, k) for k in range(len(sc))) if rp[0] is not None]
    gaps = np.array([r["gap"] for r, _ in rows])
    occluded = gaps == OCCLUDED
    assert not any(p for (r, p), occ in zip(rows, occluded) if occ)      # no UAV point while hidden
    assert not any(r["visible"] for (r, _), occ in zip(rows, occluded) if occ)
    assert (~occluded).sum() > 5                                          # and seen elsewhere
    # every frame in which the UAV is right behind that building is a gap
    corners = np.arctan2([b[2], b[2], b[3], b[3]], [b[0], b[1], b[0], b[1]])
    pos = np.array([r["position"] for r, _ in rows])
    behind = (np.arctan2(pos[:, 1], pos[:, 0]) > corners.min() + 0.01) & (
        np.arctan2(pos[:, 1], pos[:, 0]) < corners.max() - 0.01)
    assert behind.sum() >= 2
    assert occluded[behind].all()
    # that gap is a stretch of the path tens of metres long
    idx = np.flatnonzero(behind)
    length = np.linalg.norm(pos[idx[-1]] - pos[idx[0]])
    assert 10 < length < 300


def test_tangential_flight_gives_no_doppler_and_no_points():
    # a circle centred on the base station: range rate zero all the way round
    uav = UavSpec("circle", 2 * np.pi * 500, 0.0, 0.0, 0.0, 120.0, 8.0, start_frame=0)
    sc = Scenario(ScenarioSpec("ring", "shape", "circle", (uav,), n_frames=60, seed=2))
    rows = [_uav_rows(sc, k) for k in range(60)]
    in_view = [(r, p) for r, p in rows if abs(np.arctan2(r["position"][1], r["position"][0])) < 1.0]
    assert len(in_view) > 10
    assert all(r["gap"] in (TANGENTIAL, OCCLUDED) and not p for r, p in in_view)
