"""Point spread function (Eq. 16), its maximum sidelobe (Fig. 4) and the
off-grid error (Eq. 17, Fig. 5)."""
from __future__ import annotations

import numpy as np

from sense_nodes.core.imaging.geometry import ImagingConfig, voxel_centres
from sense_nodes.core.imaging.sensing_matrix import _blocks
from sense_nodes.core.imaging.channel import kappa, point_channel


def psf_matrix(A: np.ndarray) -> np.ndarray:
    """PSF(n1, n2) = |<A(:,n1), A(:,n2)>| / (||A(:,n1)|| ||A(:,n2)||) for all voxel
    pairs (Eq. 16); the inner product conjugates its first argument."""
    G = A.conj().T @ A
    nrm = np.sqrt(np.real(np.diag(G)))
    return np.abs(G) / np.outer(nrm, nrm)


def psf_row(cfg: ImagingConfig, n1: int, chunk: int = 400) -> np.ndarray:
    """PSF(n1, :) (Eq. 16) accumulated block by block, never holding A: this is
    how Fig. 4 reaches sizes (N0 = 8, many subcarriers) where A passes 1 GB."""
    centres = voxel_centres(cfg)
    if not 0 <= n1 < len(centres):
        raise ValueError(f"n1={n1} outside 0..{len(centres) - 1}")
    inner = np.zeros(len(centres), np.complex128)
    norm2 = np.zeros(len(centres))
    k = kappa(cfg)
    n_rows = cfg.n_antennas ** 2
    for _, tx, rx, lam in _blocks(cfg):
        ref = (point_channel(tx, centres[n1:n1 + 1], lam)[:, None, 0]
               * point_channel(rx, centres[n1:n1 + 1], lam)[None, :, 0]).reshape(-1) * k
        for c0 in range(0, len(centres), chunk):
            pts = centres[c0:c0 + chunk]
            block = (point_channel(tx, pts, lam)[:, None, :]
                     * point_channel(rx, pts, lam)[None, :, :]).reshape(n_rows, len(pts)) * k
            inner[c0:c0 + len(pts)] += ref.conj() @ block
            norm2[c0:c0 + len(pts)] += np.sum(np.abs(block) ** 2, axis=0)
    return np.abs(inner) / np.sqrt(norm2 * norm2[n1])


def max_sidelobe(psf: np.ndarray, n1: int) -> float:
    """P(n1) = max over n2 != n1 of PSF(n1, n2) (Sec. III-B)."""
    row = np.asarray(psf, float).copy()
    row[n1] = -np.inf
    return float(row.max())


def centre_voxel(cfg: ImagingConfig) -> int:
    """The voxel nearest the ROI centre (the paper's n1 = 800 of 1600)."""
    c = voxel_centres(cfg)
    return int(np.argmin(np.linalg.norm(c - c.mean(axis=0), axis=1)))


def offgrid_error(cfg: ImagingConfig, p: np.ndarray, p_star: np.ndarray) -> float:
    """Delta_b = ||b - b*||_2 / ||b||_2 (Eq. 17) for a true position p and its grid
    centre p*, steering vectors built like A's columns (complex128 differences
    would underflow complex64 at sub-millimetre offsets, so float64 is used)."""
    b = _steering128(cfg, np.asarray(p, float))
    bs = _steering128(cfg, np.asarray(p_star, float))
    return float(np.linalg.norm(b - bs) / np.linalg.norm(b))


def _steering128(cfg: ImagingConfig, p: np.ndarray) -> np.ndarray:
    parts = []
    for _, tx, rx, lam in _blocks(cfg):
        parts.append((point_channel(tx, p[None], lam)[:, None, 0]
                      * point_channel(rx, p[None], lam)[None, :, 0]).reshape(-1))
    return kappa(cfg) * np.concatenate(parts)
