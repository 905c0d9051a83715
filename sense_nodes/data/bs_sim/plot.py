"""A scenario drawn like the BSense paper's Figure 3: the raw points of many
frames and the true UAV path over the site map, seen from above."""
from __future__ import annotations

import numpy as np

from .scenario import BIRD, CLUTTER, FALSE_ALARM, MULTIPATH, SIDELOBE, UAV, VEHICLE
from .site import FACTORY, OVERPASS

_STYLE = {  # source: (label, colour, size)
    CLUTTER: ("static clutter", "#7f7f7f", 3),
    MULTIPATH: ("multipath ghost", "#d62728", 4),
    SIDELOBE: ("sidelobe ghost", "#9467bd", 4),
    FALSE_ALARM: ("false alarm", "#bcbd22", 4),
    VEHICLE: ("vehicle", "#1f77b4", 4),
    BIRD: ("bird", "#17becf", 8),
    UAV: ("UAV point", "#ff7f0e", 14),
}
GOLD = "#b8860b"
DEFAULT_FRAMES = 200   # about two minutes: dense enough to show the ghosts' trajectories


def draw_site(ax, site) -> None:
    import matplotlib.patches as mp
    # river as a band around its centre line
    cl = site.river
    t = np.gradient(cl, axis=0)
    nrm = np.stack([-t[:, 1], t[:, 0]], 1) / np.linalg.norm(t, axis=1, keepdims=True)
    band = np.concatenate([cl + nrm * site.river_half_width, (cl - nrm * site.river_half_width)[::-1]])
    ax.add_patch(mp.Polygon(band, closed=True, fc="#a6cee3", ec="none", zorder=0, label="river"))
    for i, rd in enumerate(site.roads):
        ax.plot(rd[:, 0], rd[:, 1], color="#444444" if i == 2 else "#bbbbbb", lw=3 if i == 2 else 2,
                zorder=1, label="overpass" if i == 2 else ("road" if i == 0 else None))
    first = {True: True, False: True}
    for b, m in zip(site.boxes, site.box_material):
        if m == OVERPASS:
            continue
        fac = m == FACTORY
        shade = 0.85 - 0.55 * min(b[5], 100.0) / 100.0
        ax.add_patch(mp.Rectangle((b[0], b[2]), b[1] - b[0], b[3] - b[2], fc=(shade, shade, shade + 0.03),
                                  ec="#555555", lw=0.4, zorder=1,
                                  label=("factory" if fac else "building (darker = taller)") if first[fac] else None))
        first[fac] = False
    for i, tr in enumerate(site.trees):
        ax.add_patch(mp.Circle((tr[0], tr[1]), tr[2], fc="#b2df8a", ec="none", alpha=0.8, zorder=0,
                               label="trees" if i == 0 else None))


def plot_scenario(scenario, out_path, frames: tuple[int, int] | None = None, color: str = "source",
                  title: str | None = None) -> dict:
    """Draw frames [a, b) of ``scenario`` (default: the first 200) to a PNG;
    returns what was drawn."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, b = frames if frames is not None else (0, min(len(scenario), DEFAULT_FRAMES))
    a, b = max(0, a), min(len(scenario), b)
    pts, src = [], []
    for k in range(a, b):
        f = scenario.frame(k)
        pts.append(f.points)
        src.append(f.labels["source"])
    pts = np.concatenate(pts) if pts else np.zeros(0)
    src = np.concatenate(src) if src else np.zeros(0, np.uint8)
    site = scenario.site
    fig, ax = plt.subplots(figsize=(11, 11), dpi=100)
    draw_site(ax, site)
    s = site.sensor
    half = np.radians(s.hfov_deg / 2)
    for r in (250, 500, 750, 1000):
        aa = np.linspace(-half, half, 100)
        ax.plot(r * np.cos(aa), r * np.sin(aa), color="#999999", lw=0.6, ls=":", zorder=1)
        ax.text(r * np.cos(half) + 10, r * np.sin(half), f"{r} m", fontsize=8, color="#666666")
    for sgn in (-1, 1):
        ax.plot([0, 1000 * np.cos(half)], [0, sgn * 1000 * np.sin(half)], color="#999999", lw=0.6, zorder=1)
    ax.plot(0, 0, marker="^", ms=10, color="black", zorder=6, ls="none", label="base station (23 m)")
    if color == "snr":
        sc = ax.scatter(pts["x"], pts["y"], c=pts["snr"], s=3, cmap="viridis", zorder=3, lw=0)
        fig.colorbar(sc, ax=ax, shrink=0.6, label="SNR (dB)")
    else:
        for code in (CLUTTER, VEHICLE, FALSE_ALARM, SIDELOBE, MULTIPATH, BIRD, UAV):
            m = src == code
            if m.any():
                lab, col, size = _STYLE[code]
                uav = code == UAV
                ax.scatter(pts["x"][m], pts["y"][m], s=size, c=col, alpha=0.95 if uav else 0.5,
                           lw=0.4 if uav else 0, edgecolors="black" if uav else "none",
                           zorder=9 if uav else 3, label=f"{lab} ({m.sum()})")
    track = scenario.uav_track[a:b]
    for u in range(track.shape[1]):
        p = track[:, u]
        ok = np.isfinite(p[:, 0])
        if ok.any():
            ax.plot(p[ok, 0], p[ok, 1], color=GOLD, lw=1.6, zorder=7, label="true UAV path" if u == 0 else None)
            ax.plot(p[ok, 0][-1], p[ok, 1][-1], marker="*", ms=18, color=GOLD, mec="black", zorder=8, ls="none")
    ax.set_aspect("equal")
    ax.set_xlim(-50, 1050)
    ax.set_ylim(-900, 900)
    ax.set_xlabel("x (m, boresight)")
    ax.set_ylabel("y (m)")
    n = b - a
    ax.set_title(title or f"{scenario.name}: raw points of {n} frames ({n * s.frame_s:.0f} s), "
                 f"{len(pts) / max(n, 1):.0f} points/frame", fontsize=12)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9, markerscale=1.5, framealpha=0.9,
              borderaxespad=0)
    fig.tight_layout()
    fig.savefig(out_path)
    plt.close(fig)
    return {"frames": n, "points": int(len(pts))}
