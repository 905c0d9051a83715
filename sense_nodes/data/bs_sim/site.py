"""The site map around the base station (BSense paper, Sections 1 and 4.1).

The paper's coverage area "encompassed residential buildings, factories,
overpasses, and a river" (Figure 1). A site here is drawn from a seed: a river
crossing the field, roads (one of them an overpass), residential towers,
factories, low-rise blocks, tree clusters and open terrain. The map drives
occlusion (line of sight from the antenna), the local noise and clutter power
that every point's signal metrics are read against, the static clutter cells
(:mod:`.clutter`), the vehicles and their multipath ghosts (:mod:`.ghosts`).

Kind ``"A"`` is the main site; kind ``"B"`` is the cross-site base station
(Section 4.5): fewer towers, more trees and factories, the river elsewhere.
The layout numbers (counts, sizes, heights) are our choices; the paper gives
none.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .sensor import DEFAULT_SENSOR, SensorConfig

# Materials of clutter regions.
BUILDING, FACTORY, TREE, RIVER, TERRAIN, OVERPASS = range(6)
MATERIAL_NAMES = ("building", "factory", "tree", "river", "terrain", "overpass")

GRID_M = 20.0          # height-map cell, m
POLAR_DR = 25.0        # range-azimuth clutter map cell: 25 m x 2 deg
POLAR_DA = np.radians(2.0)
POLAR_AMAX = np.radians(64.0)
X_MAX = 1050.0
Y_MAX = 950.0


@dataclass
class Site:
    """A drawn site. Boxes are (xmin, xmax, ymin, ymax, zmin, zmax)."""
    seed: int
    kind: str
    boxes: np.ndarray                  # (B, 6) buildings/factories/overpass deck
    box_material: np.ndarray           # (B,)
    trees: np.ndarray                  # (T, 4) cx, cy, radius, height
    river: np.ndarray                  # (K, 2) centre line
    river_half_width: float
    roads: list                        # list of (K, 3) polylines (z = road height)
    height_map: np.ndarray             # (nx, ny) structure height, m
    polar_map: np.ndarray              # (nr, na) structure density per range-azimuth cell
    field_coef: np.ndarray             # smooth random field for noise/clutter maps
    sensor: SensorConfig = field(default=DEFAULT_SENSOR)

    # ---- map lookups -------------------------------------------------
    def structure_height(self, x, y):
        ix = np.clip(((np.asarray(x) + 0.0) / GRID_M).astype(int), 0, self.height_map.shape[0] - 1)
        iy = np.clip(((np.asarray(y) + Y_MAX) / GRID_M).astype(int), 0, self.height_map.shape[1] - 1)
        return self.height_map[ix, iy]

    def _field(self, x, y, which: int):
        c = self.field_coef[which]
        return (c[:, 0, None] * np.sin(c[:, 1, None] * np.asarray(x)[None] + c[:, 2, None] * np.asarray(y)[None]
                                       + c[:, 3, None])).sum(axis=0)

    def clutter_density(self, pos):
        """Structure density of the range-azimuth cell of ``pos`` (sum of
        structure heights in it, m): the clutter the cell's echo competes with."""
        pos = np.asarray(pos)
        d = pos - self.sensor.origin
        r = np.hypot(d[:, 0], d[:, 1])
        ir = np.clip((r / POLAR_DR).astype(int), 0, self.polar_map.shape[0] - 1)
        ia = np.clip(((np.arctan2(d[:, 1], d[:, 0]) + POLAR_AMAX) / POLAR_DA).astype(int), 0,
                     self.polar_map.shape[1] - 1)
        return self.polar_map[ir, ia]

    def noise_dbm(self, pos, doppler):
        """Noise level (dBm) the CFAR estimates for a detection at ``pos`` with
        ``doppler``: thermal noise, raised in low-Doppler cells of range-azimuth
        cells that hold clutter (its leakage), plus a smooth site field. The
        estimate is made in range-Doppler per beam, so it does not depend on
        the point's height."""
        pos = np.asarray(pos)
        dens = 10.0 * np.log10(1.0 + self.clutter_density(pos) / 100.0)
        leak = np.exp(-np.abs(np.asarray(doppler)) / 2.0)
        return self.sensor.noise_dbm + 0.6 * dens * (0.4 + leak) + self._field(pos[:, 0], pos[:, 1], 0)

    def clutter_dbm(self, pos):
        """Clutter power (dBm) of the range-azimuth cell of ``pos`` (the
        zero-Doppler power the SCR is measured against)."""
        pos = np.asarray(pos)
        r = np.maximum(np.linalg.norm(pos - self.sensor.origin, axis=1), 30.0)
        dens = 10.0 * np.log10(1.0 + self.clutter_density(pos) / 100.0)
        return (self.sensor.noise_dbm + 3.0 + dens - 20.0 * np.log10(r / 300.0)
                + self._field(pos[:, 0], pos[:, 1], 1))

    def line_of_sight(self, pos) -> np.ndarray:
        """True where the straight path from the antenna to ``pos`` (N, 3)
        misses every building box (slab test)."""
        pos = np.asarray(pos, dtype=float)
        if pos.shape[0] == 0 or self.boxes.shape[0] == 0:
            return np.ones(pos.shape[0], dtype=bool)
        o = self.sensor.origin
        d = pos - o                                       # (N, 3)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / np.where(np.abs(d) < 1e-9, 1e-9, d)
        lo = self.boxes[:, [0, 2, 4]]                     # (B, 3)
        hi = self.boxes[:, [1, 3, 5]]
        t1 = (lo[None] - o) * inv[:, None]                # (N, B, 3)
        t2 = (hi[None] - o) * inv[:, None]
        tmin = np.minimum(t1, t2).max(axis=2)
        tmax = np.maximum(t1, t2).min(axis=2)
        # a hit strictly between the antenna and the point (a point on a
        # surface is not hidden by its own box)
        hit = (tmax >= tmin) & (tmax > 1e-3) & (tmin < 0.995)
        return ~hit.any(axis=1)

    def river_distance(self, x, y):
        """Distance (m) of (x, y) to the river centre line (approximate)."""
        pts = np.stack([np.asarray(x, float), np.asarray(y, float)], axis=-1).reshape(-1, 1, 2)
        return np.min(np.linalg.norm(pts - self.river[None], axis=2), axis=1)


def _polyline_dist(px, py, line):
    pts = np.stack([px, py], axis=-1)[:, None, :]
    a = line[None, :-1, :2]
    b = line[None, 1:, :2]
    ab = b - a
    t = np.clip(((pts - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-9), 0, 1)
    proj = a + t[..., None] * ab
    return np.min(np.linalg.norm(pts - proj, axis=-1), axis=1)


def make_site(seed: int = 0, kind: str = "A", sensor: SensorConfig = DEFAULT_SENSOR) -> Site:
    """Draw a site map from ``seed``; same seed and kind, same site."""
    if kind not in ("A", "B"):
        raise ValueError(f"site kind must be 'A' or 'B', got {kind!r}")
    rng = np.random.default_rng([int(seed), 0 if kind == "A" else 1, 1705])
    # river: a meandering band crossing the field
    if kind == "A":
        xs = np.linspace(0, X_MAX, 60)
        y0, amp = rng.uniform(150, 350) * rng.choice([-1, 1]), rng.uniform(40, 120)
        river = np.stack([xs, y0 + amp * np.sin(xs / rng.uniform(200, 400) + rng.uniform(0, 6))], 1)
    else:
        ys = np.linspace(-Y_MAX, Y_MAX, 60)
        x0, amp = rng.uniform(550, 800), rng.uniform(40, 100)
        river = np.stack([x0 + amp * np.sin(ys / rng.uniform(200, 400) + rng.uniform(0, 6)), ys], 1)
    half_w = float(rng.uniform(30, 50))
    # roads: two radial, two or three cross roads; one overpass at 12 m
    roads = []
    for _ in range(2):
        az = rng.uniform(-0.8, 0.8)
        r = np.linspace(60, X_MAX, 30)
        bend = rng.uniform(-0.15, 0.15)
        a = az + bend * r / X_MAX
        roads.append(np.stack([r * np.cos(a), r * np.sin(a), np.zeros_like(r)], 1))
    for _ in range(3 if kind == "A" else 2):
        x0 = rng.uniform(150, 900)
        y = np.linspace(-Y_MAX, Y_MAX, 40)
        roads.append(np.stack([x0 + rng.uniform(-0.2, 0.2) * y, y, np.zeros_like(y)], 1))
    overpass = roads[2].copy()
    overpass[:, 2] = 12.0
    roads[2] = overpass
    # buildings
    n_tower, n_factory, n_low = (45, 18, 60) if kind == "A" else (20, 35, 50)
    boxes, mats = [], []

    def free(cx, cy, size):
        if _polyline_dist(np.array([cx]), np.array([cy]), river)[0] < half_w + size:
            return False
        for rd in roads:
            if _polyline_dist(np.array([cx]), np.array([cy]), rd)[0] < 15 + size:
                return False
        return np.hypot(cx, cy) > 80
    for n, mat, wl, hl in ((n_tower, BUILDING, (12, 25, 25, 45), (30, 75)),
                           (n_factory, FACTORY, (40, 90, 50, 120), (8, 22)),
                           (n_low, BUILDING, (10, 25, 10, 25), (8, 25))):
        placed, tries = 0, 0
        while placed < n and tries < n * 40:
            tries += 1
            r, a = rng.uniform(80, X_MAX), rng.uniform(-1.05, 1.05)
            cx, cy = r * np.cos(a), r * np.sin(a)
            w, l = rng.uniform(*wl[:2]), rng.uniform(*wl[2:])
            if rng.random() < 0.5:
                w, l = l, w
            if not free(cx, cy, max(w, l) / 2):
                continue
            # the antenna is sited for a clear view: nothing near it rises far
            # above the line from it at about 8.5 deg (our choice)
            h = min(rng.uniform(*hl), 20.0 + 0.15 * (r - 80.0))
            boxes.append((cx - w / 2, cx + w / 2, cy - l / 2, cy + l / 2, 0.0, h))
            mats.append(mat)
            placed += 1
    # overpass deck as thin boxes along the road (it occludes too)
    for p, q in zip(overpass[:-1], overpass[1:]):
        boxes.append((min(p[0], q[0]) - 6, max(p[0], q[0]) + 6, min(p[1], q[1]), max(p[1], q[1]), 10.5, 12.0))
        mats.append(OVERPASS)
    boxes = np.array(boxes, dtype=float)
    mats = np.array(mats, dtype=np.int8)
    # trees
    n_trees = 45 if kind == "A" else 80
    trees = []
    while len(trees) < n_trees:
        r, a = rng.uniform(60, X_MAX), rng.uniform(-1.05, 1.05)
        cx, cy = r * np.cos(a), r * np.sin(a)
        rad = rng.uniform(15, 45)
        if _polyline_dist(np.array([cx]), np.array([cy]), river)[0] < half_w + rad:
            continue
        trees.append((cx, cy, rad, rng.uniform(8, 22)))
    trees = np.array(trees, dtype=float)
    # height map
    nx, ny = int(X_MAX / GRID_M) + 1, int(2 * Y_MAX / GRID_M) + 1
    hm = np.zeros((nx, ny))
    gx = (np.arange(nx) + 0.5) * GRID_M
    gy = (np.arange(ny) + 0.5) * GRID_M - Y_MAX
    X, Y = np.meshgrid(gx, gy, indexing="ij")
    for b in boxes:
        m = (X >= b[0] - GRID_M / 2) & (X <= b[1] + GRID_M / 2) & (Y >= b[2] - GRID_M / 2) & (Y <= b[3] + GRID_M / 2)
        hm[m] = np.maximum(hm[m], b[5])
    for t in trees:
        m = np.hypot(X - t[0], Y - t[1]) <= t[2]
        hm[m] = np.maximum(hm[m], t[3])
    # smooth fields (noise map, clutter map): a few plane waves, +-1.5 dB
    coef = np.stack([np.stack([rng.uniform(0.3, 0.8, 6), rng.uniform(-0.01, 0.01, 6),
                               rng.uniform(-0.01, 0.01, 6), rng.uniform(0, 2 * np.pi, 6)], 1)
                     for _ in range(2)])
    # range-azimuth structure density (sum of heights of the map cells in each)
    nr, na = int(X_MAX / POLAR_DR) + 2, int(2 * POLAR_AMAX / POLAR_DA) + 1
    ir = np.clip((np.hypot(X, Y) / POLAR_DR).astype(int), 0, nr - 1).ravel()
    ia = np.clip(((np.arctan2(Y, X) + POLAR_AMAX) / POLAR_DA).astype(int), 0, na - 1).ravel()
    polar = np.zeros((nr, na))
    np.add.at(polar, (ir, ia), hm.ravel() + 2.0)   # open ground and water reflect a little
    # the beam and the range response blur the map over neighbouring cells
    from scipy.ndimage import gaussian_filter
    polar = gaussian_filter(polar, sigma=(2.0, 1.5), mode="nearest")
    return Site(seed=int(seed), kind=kind, boxes=boxes, box_material=mats, trees=trees, river=river,
                river_half_width=half_w, roads=roads, height_map=hm, polar_map=polar, field_coef=coef,
                sensor=sensor)
