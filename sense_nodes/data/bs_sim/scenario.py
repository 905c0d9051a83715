"""A scenario: a site, its objects and noise, frame by frame (BSense paper,
Sections 2 and 4.1).

Frames are 0.64 s apart. ``Scenario.frame(k)`` is random access and
deterministic: frame ``k`` depends only on (seed, site seed, k), so frames can
be drawn in any order, in parallel, or live, and the same seeds give the same
bytes. Each frame has

* ``points``: structured array of ``BS_POINT_DTYPE`` (x y z doppler snr scr
  noise signal_power rx_power), in random order;
* ``labels``: per point ``source`` (UAV/BIRD/VEHICLE direct returns, or
  CLUTTER/MULTIPATH/SIDELOBE/FALSE_ALARM) and ``object_id`` (the truth object
  the point or its ghost came from, -1 for clutter and false alarms);
* ``truth``: one row per object present (id, object_class, position,
  velocity, visible, gap) where ``visible`` is False while the object returns
  no point and ``gap`` says why (occluded, out of view, tangential, too weak).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np


from . import clutter as _clutter
from . import ghosts as _ghosts
from . import targets as _targets
from .fingerprint import points_from
from .sensor import DEFAULT_SENSOR, SensorConfig
from .site import make_site
from .trajectories import fly, place

# point sources (labels['source']); 1-3 are the GroundTruth object classes
UAV, BIRD, VEHICLE = _targets.UAV, _targets.BIRD, _targets.VEHICLE
CLUTTER, MULTIPATH, SIDELOBE, FALSE_ALARM = 10, 11, 12, 13
SOURCE_NAMES = {UAV: "uav", BIRD: "bird", VEHICLE: "vehicle", CLUTTER: "clutter",
                MULTIPATH: "multipath", SIDELOBE: "sidelobe", FALSE_ALARM: "false_alarm"}
LABEL_DTYPE = np.dtype([("source", "u1"), ("object_id", "<i4")])
TRUTH_DTYPE = np.dtype([("id", "<u4"), ("object_class", "u1"), ("position", "<f8", (3,)),
                        ("velocity", "<f8", (3,)), ("visible", "?"), ("gap", "i1")])
EPOCH_NS = 1_750_000_000 * 10**9   # sim time of day 0, frame 0 (an arbitrary fixed date)


@dataclass(frozen=True)
class UavSpec:
    """One UAV flight: a shape placed in the field (Section 4.1)."""
    shape: str
    length_m: float
    centre_range_m: float
    centre_az_deg: float
    heading_deg: float
    altitude_m: float
    speed_mps: float
    start_frame: int = 10


@dataclass(frozen=True)
class ScenarioSpec:
    """Everything that defines a scenario; ``Scenario(spec)`` draws it."""
    name: str
    family: str
    traj_type: str              # for the case-level folds ('none' when UAV-free)
    uavs: tuple = ()
    n_frames: int | None = None  # default: until the last UAV lands (+10 frames)
    seed: int = 0
    site_seed: int = 0
    site_kind: str = "A"
    day: float = 0.0
    birds_mean: float = 8.0

    def with_seeds(self, seed: int | None = None, site_seed: int | None = None) -> "ScenarioSpec":
        return replace(self, seed=self.seed if seed is None else int(seed),
                       site_seed=self.site_seed if site_seed is None else int(site_seed))


@dataclass
class Frame:
    index: int
    stamp_ns: int
    points: np.ndarray
    labels: np.ndarray
    truth: np.ndarray = field(repr=False)


_SITES: dict = {}


def site_for(seed: int, kind: str, sensor: SensorConfig = DEFAULT_SENSOR):
    """The site and its clutter model (cached: both are pure functions of the seed)."""
    key = (int(seed), kind, sensor)
    if key not in _SITES:
        if len(_SITES) > 8:
            _SITES.clear()
        site = make_site(seed, kind, sensor)
        _SITES[key] = (site, _clutter.build_clutter(site))
    return _SITES[key]


class Scenario:
    """A drawn scenario; iterate it or call :meth:`frame`."""

    def __init__(self, spec: ScenarioSpec, sensor: SensorConfig = DEFAULT_SENSOR):
        self.spec = spec
        self.sensor = sensor
        self.dt = sensor.frame_s
        self.site, self.clutter = site_for(spec.site_seed, spec.site_kind, sensor)
        rng = np.random.default_rng([spec.seed, spec.site_seed, 11])
        uav_parts = []
        flights = [place(u.shape, u.length_m, u.centre_range_m, np.radians(u.centre_az_deg),
                         np.radians(u.heading_deg)) for u in spec.uavs]
        ends = [u.start_frame + int(np.ceil(_len(p) / (u.speed_mps * self.dt))) + 1
                for u, p in zip(spec.uavs, flights)]
        n = spec.n_frames if spec.n_frames is not None else (max(ends) + 10 if ends else 300)
        self.n_frames = int(n)
        for i, (u, path) in enumerate(zip(spec.uavs, flights)):
            wob = np.cumsum(rng.normal(0, 0.05, (self.n_frames, 3)), axis=0)   # wind, GPS: our choice
            wob -= wob.mean(axis=0)
            pos, vel, act = fly(path, u.altitude_m, u.speed_mps, self.dt, u.start_frame, self.n_frames, wob)
            uav_parts.append(_targets.Objects(ids=np.array([i + 1], np.uint32), cls=np.array([UAV], np.uint8),
                                              rcs_db=np.array([10 * np.log10(_targets.UAV_RCS_M2)]),
                                              pos=pos[:, None], vel=vel[:, None], active=act[:, None]))
        self.uav_paths = flights
        self.birds = _targets.birds(self.n_frames, self.dt, rng, spec.birds_mean)
        self.vehicles = _targets.vehicles(self.site, self.n_frames, self.dt, rng)
        self.ghost_states = _ghosts.ghost_states(
            self.n_frames, self.vehicles.ids.shape[0] * _ghosts.GHOSTS_PER_VEHICLE, rng)
        self.objects = _targets.Objects.concat(uav_parts + [self.birds, self.vehicles])

    @property
    def name(self) -> str:
        return self.spec.name

    def __len__(self) -> int:
        return self.n_frames

    def __iter__(self):
        for k in range(self.n_frames):
            yield self.frame(k)

    def stamp_ns(self, k: int) -> int:
        return EPOCH_NS + int(round(self.spec.day * 86400 * 1e9)) + int(round(k * self.dt * 1e9))

    @cached_property
    def uav_track(self) -> np.ndarray:
        """(F, U, 3) true UAV positions (NaN while a UAV is not flying)."""
        m = self.objects.cls == UAV
        p = self.objects.pos[:, m].copy()
        p[~self.objects.active[:, m]] = np.nan
        return p

    def frame(self, k: int) -> Frame:
        if not 0 <= k < self.n_frames:
            raise IndexError(f"frame {k} out of range 0..{self.n_frames - 1}")
        rng = np.random.default_rng([self.spec.seed, self.spec.site_seed, k, 99])
        site, ob = self.site, self.objects
        chunks = []   # (pos, doppler, snr, source, object_id)

        cpos, cdop, csnr, cnoff, ccoff, _reg = self.clutter.sample(site, rng, self.spec.day)
        gap, (dpos, ddop, dsnr, owner) = _targets.direct_returns(
            site, ob.pos[k], ob.vel[k], ob.rcs_db, ob.active[k], rng)
        chunks.append((dpos, ddop, dsnr, ob.cls[owner], ob.ids[owner].astype(np.int64)))
        nv = self.vehicles.ids.shape[0]
        voff = ob.ids.shape[0] - nv
        mpos, mdop, msnr, vi = _ghosts.multipath(site, ob.pos[k, voff:], ob.vel[k, voff:], self.ghost_states, k, rng)
        chunks.append((mpos, mdop, msnr, np.full(vi.shape, MULTIPATH), self.vehicles.ids[vi].astype(np.int64)))
        # sidelobes of the direct echoes (strong ones: the vehicles')
        gpos, gdop, gsnr, parent = _ghosts.sidelobes(site, dpos, ddop, dsnr, rng)
        chunks.append((gpos, gdop, gsnr, np.full(parent.shape, SIDELOBE), ob.ids[owner[parent]].astype(np.int64)))
        fpos, fdop, fsnr = _ghosts.false_alarms(site, rng)
        chunks.append((fpos, fdop, fsnr, np.full(fpos.shape[0], FALSE_ALARM), np.full(fpos.shape[0], -1)))

        chunks.insert(0, (cpos, cdop, csnr, None, None))
        pos = np.concatenate([c[0] for c in chunks])
        dop = np.concatenate([c[1] for c in chunks])
        snr = np.concatenate([c[2] for c in chunks])
        # latent noise and clutter powers: the maps of the reported cell, with
        # the clutter region's fingerprint offsets or a per-point spread
        noff = rng.normal(0, 1.0, pos.shape[0])
        coff = rng.normal(0, 2.0, pos.shape[0])
        noff[:cpos.shape[0]] = cnoff
        coff[:cpos.shape[0]] = ccoff
        n = site.noise_dbm(pos, dop) + noff
        c = site.clutter_dbm(pos) + coff
        pts = points_from(pos, dop, n + snr, n, c, rng)
        chunks.pop(0)
        lab = np.empty(pts.shape[0], LABEL_DTYPE)
        lab["source"] = np.concatenate([np.full(cpos.shape[0], CLUTTER)] + [c[3] for c in chunks])
        lab["object_id"] = np.concatenate([np.full(cpos.shape[0], -1)] + [c[4] for c in chunks])
        order = rng.permutation(pts.shape[0])
        pts, lab = pts[order], lab[order]

        act = np.flatnonzero(ob.active[k])
        truth = np.empty(act.size, TRUTH_DTYPE)
        truth["id"] = ob.ids[act]
        truth["object_class"] = ob.cls[act]
        truth["position"] = ob.pos[k, act]
        truth["velocity"] = ob.vel[k, act]
        truth["gap"] = gap[act]
        truth["visible"] = gap[act] == _targets.SEEN
        return Frame(index=k, stamp_ns=self.stamp_ns(k), points=pts, labels=lab, truth=truth)


def _len(path) -> float:
    return float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum())
