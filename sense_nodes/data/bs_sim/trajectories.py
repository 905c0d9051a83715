"""UAV flight paths (BSense paper, Section 4.1).

The paper's UAV flew straight lines at five trajectory-boresight angles and
shaped paths (circle, square, triangle, S, M, star, zigzag), 25 trajectories
in all, with path lengths from 600 m to 2,300 m. The five angles did not
survive in our copy of the paper: 0, 30, 45, 60 and 90 deg is our choice.

A path is a 2-D polyline of unit size, placed by (centre range, centre
azimuth, heading) and scaled to its length; the UAV flies it at constant
altitude and ground speed, sampled every frame.
"""
from __future__ import annotations

import numpy as np

SHAPES = ("straight", "circle", "square", "triangle", "S", "M", "star", "zigzag")
LINE_ANGLES_DEG = (0, 30, 45, 60, 90)


def unit_shape(shape: str) -> np.ndarray:
    """Polyline (K, 2) of a shape, roughly within [-0.5, 0.5]^2."""
    if shape == "straight":
        return np.array([[-0.5, 0.0], [0.5, 0.0]])
    if shape == "circle":
        a = np.linspace(0, 2 * np.pi, 361)
        return 0.5 * np.stack([np.cos(a), np.sin(a)], 1)
    if shape == "square":
        return np.array([[-.5, -.5], [.5, -.5], [.5, .5], [-.5, .5], [-.5, -.5]])
    if shape == "triangle":
        a = np.pi / 2 + np.array([0, 2, 4, 6]) * np.pi / 3
        return 0.5 * np.stack([np.cos(a), np.sin(a)], 1)
    if shape == "S":
        a1 = np.linspace(0, 1.5 * np.pi, 40)
        top = np.stack([0.25 * np.cos(a1 + np.pi / 2 * 0) , 0.25 + 0.25 * np.sin(a1)], 1)
        a2 = np.linspace(0.5 * np.pi, -np.pi, 40)
        bot = np.stack([0.25 * np.cos(a2), -0.25 + 0.25 * np.sin(a2)], 1)
        return np.concatenate([top, bot])
    if shape == "M":
        return np.array([[-.5, -.5], [-.5, .5], [0, -.1], [.5, .5], [.5, -.5]])
    if shape == "star":
        a = np.pi / 2 + np.arange(6) * 4 * np.pi / 5
        return 0.5 * np.stack([np.cos(a), np.sin(a)], 1)
    if shape == "zigzag":
        x = np.linspace(-0.5, 0.5, 7)
        y = np.where(np.arange(7) % 2 == 0, -0.25, 0.25)
        return np.stack([x, y], 1)
    raise ValueError(f"unknown shape {shape!r}; choose from {SHAPES}")


def polyline_length(line: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(line, axis=0), axis=1).sum())


def place(shape: str, length_m: float, centre_range_m: float, centre_az_rad: float,
          heading_rad: float) -> np.ndarray:
    """The shape scaled to ``length_m`` of path, rotated by ``heading_rad`` and
    centred at (range, azimuth) from the base station (2-D, metres)."""
    u = unit_shape(shape)
    u = u * (length_m / polyline_length(u))
    c, s = np.cos(heading_rad), np.sin(heading_rad)
    u = u @ np.array([[c, s], [-s, c]])
    centre = centre_range_m * np.array([np.cos(centre_az_rad), np.sin(centre_az_rad)])
    return u + centre


def fly(path2d: np.ndarray, altitude_m: float, speed_mps: float, dt: float,
        start_frame: int = 0, n_frames: int | None = None, wobble: np.ndarray | None = None):
    """Sample a path at ``speed_mps`` every ``dt`` seconds.

    Returns (pos (F, 3), vel (F, 3), active (F,)): the UAV is active from
    ``start_frame`` until it reaches the end of the path."""
    seg = np.linalg.norm(np.diff(path2d, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    total = cum[-1]
    n_fly = int(np.floor(total / (speed_mps * dt))) + 1
    F = n_frames if n_frames is not None else start_frame + n_fly
    k = np.arange(F) - start_frame
    s = np.clip(k * speed_mps * dt, 0, total)
    pos = np.empty((F, 3))
    pos[:, 0] = np.interp(s, cum, path2d[:, 0])
    pos[:, 1] = np.interp(s, cum, path2d[:, 1])
    pos[:, 2] = altitude_m
    if wobble is not None:
        pos += wobble[:F]
    vel = np.gradient(pos, dt, axis=0)
    active = (k >= 0) & (k < n_fly)
    return pos, vel, active
