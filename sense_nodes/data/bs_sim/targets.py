"""Moving objects and their direct returns (BSense paper, Sections 1, 3.3 and 4).

Object classes as in ``msg/GroundTruth.msg``: UAV=1, BIRD=2, VEHICLE=3.

* UAVs: DJI Mavic 3 class, RCS 0.01 m^2 (Swerling 1), below 20 m/s (3.3.2);
  they fly the paths of :mod:`.trajectories`.
* Birds: the paper saw "many birds" (4.2). RCS log-uniform in 0.005-0.05 m^2,
  6-14 m/s, 15-120 m altitude, wandering headings (our choices).
* Vehicles: on the site's roads (one is an overpass), 3-13 m/s, RCS 10 m^2
  (our choices); their multipath ghosts are in :mod:`.ghosts`.

A return is produced when the object is in the field of view, in line of
sight, its range rate is outside the clutter notch (a UAV flying tangentially
gives zero Doppler and vanishes, Section 5) and its Swerling-1 SNR clears the
detection threshold. Each frame's truth says which of these stopped it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sense_nodes.bs_sensor import BIRD, UAV, VEHICLE  # noqa: F401 - the truth's class codes

from .sensor import in_fov, measure, radial_velocity, snr_db, swerling1, to_polar
from .site import Site

CLASS_NAMES = {UAV: "uav", BIRD: "bird", VEHICLE: "vehicle"}
UAV_RCS_M2 = 0.01

# why an object gave no point (truth 'gap' field)
SEEN, OCCLUDED, OUT_OF_VIEW, TANGENTIAL, TOO_WEAK, INACTIVE = range(6)
GAP_NAMES = ("seen", "occluded", "out_of_view", "tangential", "too_weak", "inactive")


@dataclass
class Objects:
    """Kinematics of every object over the scenario (F frames, O objects)."""
    ids: np.ndarray        # (O,) uint32
    cls: np.ndarray        # (O,) uint8
    rcs_db: np.ndarray     # (O,) mean RCS, dB m^2
    pos: np.ndarray        # (F, O, 3)
    vel: np.ndarray        # (F, O, 3)
    active: np.ndarray     # (F, O) bool

    @staticmethod
    def concat(parts: list["Objects"]) -> "Objects":
        return Objects(ids=np.concatenate([p.ids for p in parts]).astype(np.uint32),
                       cls=np.concatenate([p.cls for p in parts]).astype(np.uint8),
                       rcs_db=np.concatenate([p.rcs_db for p in parts]),
                       pos=np.concatenate([p.pos for p in parts], axis=1),
                       vel=np.concatenate([p.vel for p in parts], axis=1),
                       active=np.concatenate([p.active for p in parts], axis=1))


def empty(n_frames: int) -> Objects:
    return Objects(np.zeros(0, np.uint32), np.zeros(0, np.uint8), np.zeros(0), np.zeros((n_frames, 0, 3)),
                   np.zeros((n_frames, 0, 3)), np.zeros((n_frames, 0), bool))


def birds(n_frames: int, dt: float, rng: np.random.Generator, mean_count: float = 4.0,
          first_id: int = 100) -> Objects:
    """Birds wandering through the field; about ``mean_count`` at any time."""
    n = int(rng.poisson(mean_count * max(1.0, n_frames / 300.0))) if n_frames > 0 else 0
    F = n_frames
    if n == 0:
        return empty(F)
    start = rng.integers(-150, max(F - 20, 1), n)
    dur = rng.integers(100, 400, n)
    k = np.arange(F)[:, None]
    active = (k >= start) & (k < start + dur)
    speed = rng.uniform(6, 14, n)
    heading = rng.uniform(-np.pi, np.pi, n) + np.cumsum(rng.normal(0, 0.18, (F, n)), axis=0)
    step = speed * dt
    xy0 = rng.uniform(150, 850, n)[:, None] * np.stack([np.cos(a := rng.uniform(-0.9, 0.9, n)), np.sin(a)], 1)
    dxy = np.stack([np.cos(heading), np.sin(heading)], -1) * step[None, :, None]
    xy = xy0[None] + np.cumsum(dxy, axis=0) - dxy[0]
    alt = np.clip(rng.uniform(15, 120, n) + np.cumsum(rng.normal(0, 0.8, (F, n)), axis=0), 5, 150)
    pos = np.concatenate([xy, alt[..., None]], axis=-1)
    vel = np.gradient(pos, dt, axis=0) if F > 1 else np.zeros_like(pos)
    rcs = rng.uniform(np.log10(0.005), np.log10(0.05), n) * 10
    return Objects(ids=np.arange(first_id, first_id + n, dtype=np.uint32), cls=np.full(n, BIRD, np.uint8),
                   rcs_db=rcs, pos=pos, vel=vel, active=active)


def vehicles(site: Site, n_frames: int, dt: float, rng: np.random.Generator,
             spacing_m: float = 180.0, first_id: int = 1000) -> Objects:
    """Vehicles driving the site's roads, one every ``spacing_m`` on average."""
    parts = []
    t = np.arange(n_frames) * dt
    nid = first_id
    for road in site.roads:
        seg = np.linalg.norm(np.diff(road[:, :2], axis=0), axis=1)
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        L = cum[-1]
        n = max(1, int(rng.poisson(L / spacing_m)))
        s0 = rng.uniform(0, L, n)
        v = rng.uniform(3, 13, n) * rng.choice([-1, 1], n)   # urban traffic, 10-47 km/h
        lane = np.where(v > 0, 3.0, -3.0)
        s = np.mod(s0[None] + v[None] * t[:, None], L)
        x = np.interp(s, cum, road[:, 0])
        y = np.interp(s, cum, road[:, 1])
        i = np.clip(np.searchsorted(cum, s) - 1, 0, len(seg) - 1)
        tang = (road[i + 1, :2] - road[i, :2]) / np.maximum(seg[i], 1e-9)[..., None]
        normal = np.stack([-tang[..., 1], tang[..., 0]], -1)
        pos = np.stack([x + lane * normal[..., 0], y + lane * normal[..., 1], np.interp(s, cum, road[:, 2]) + 1.0], -1)
        vel = np.concatenate([tang * v[None, :, None], np.zeros(s.shape + (1,))], -1)
        parts.append(Objects(ids=np.arange(nid, nid + n, dtype=np.uint32), cls=np.full(n, VEHICLE, np.uint8),
                             rcs_db=np.full(n, 10.0), pos=pos, vel=vel, active=np.ones(s.shape, bool)))
        nid += n
    return Objects.concat(parts) if parts else empty(n_frames)


def direct_returns(site: Site, pos, vel, rcs_db, active, rng: np.random.Generator):
    """Direct returns of the objects of one frame.

    Returns (gap (O,), measured points as (pos, doppler, snr, owner index)).
    UAVs sometimes give a second point in a neighbouring range cell when the
    echo is strong (our choice: half the time above 25 dB)."""
    sensor = site.sensor
    O = pos.shape[0]
    gap = np.full(O, INACTIVE, np.int8)
    if O == 0:
        return gap, (np.zeros((0, 3)), np.zeros(0), np.zeros(0), np.zeros(0, int))
    r, az, el = to_polar(pos, sensor)
    vr = radial_velocity(pos, vel, sensor)
    fov = in_fov(r, az, el, sensor)
    los = np.ones(O, bool)
    cand = np.flatnonzero(active & fov)
    los[cand] = site.line_of_sight(pos[cand])
    tang = np.abs(vr) < sensor.notch_mps
    snr = swerling1(snr_db(r, 10.0 ** (rcs_db / 10.0), sensor), rng)
    weak = snr < sensor.threshold_db
    gap[active] = TOO_WEAK
    gap[active & ~weak] = SEEN
    gap[active & tang] = TANGENTIAL
    gap[active & ~los] = OCCLUDED
    gap[active & ~fov] = OUT_OF_VIEW
    seen = np.flatnonzero(gap == SEEN)
    owner = seen
    extra = seen[(snr[seen] > 25.0) & (rng.random(seen.shape[0]) < 0.5)]
    owner = np.concatenate([owner, extra])
    p = pos[owner].copy()
    if extra.size:
        # neighbouring range cell: push the extra point one range bin out
        d = p[seen.size:] - sensor.origin
        p[seen.size:] += d / np.linalg.norm(d, axis=1, keepdims=True) * sensor.range_res_m
    s = snr[owner] - np.concatenate([np.zeros(seen.size), rng.uniform(3, 8, extra.size)])
    # Every direct echo is a point target for the elevation estimate: a car
    # 1.5 m tall at 200 m spans 0.4 deg of a 6 deg beam, so its grating-lobe
    # errors are those of a strong point (clutter on facades tens of metres
    # tall is the extended case).
    mpos, dop = measure(p, vr[owner], s, rng, sensor)
    return gap, (mpos, dop, s, owner)
