"""Background-nulled network input ``nulled``: the paper's networks fed
with what the background-nulling detector (:mod:`.subspace`) sees.

Why. The paper's input P(H) (Section III-B1), and even the per-pair
z-scored beam x delay map (``bdz``, :mod:`.background`), leave the echo
under a background whose power changes from scene to scene with the
Eq. 27 path phases: the learned detector misses far more UAVs than the
3GPP limit allows. Projecting out each pair's fixed background span
removes that background whatever the phases, and leaves receiver noise
plus the echo. The networks then learn detection and localisation from a
map in which the echo stands out of a known noise floor; their layers,
losses and the two-round protocol stay those of the paper.

The map. Per pair, the residual's BS-beam x delay cells (2-D DFT over
the 8 x 8 UPA, power summed over the CPE antennas) in units of one
cell's noise power (:func:`.subspace.noise_cells`: a chi-square of
2 n_t degrees of freedom over 2 n_t under "no UAV", mean 1), in dB,
above ``FLOOR_DB`` (a soft CFAR: the largest of a UAV-free pair's 4,096
cells lies 5 to 8 dB above the mean, an echo 10 to 25 dB), clipped at
``FLOOR_DB + SPAN_DB`` and divided by ``SCALE_DB`` so the input is O(1)
like ``bdz``. The three constants are our choice (no paper has this
input), and the detection figures of `sense eval fwa` are measured with
them. Shape [8, 8, n_taps] (beam rows, beam columns, delay taps), the
``bdz`` geometry, so the networks' layers are unchanged.

Notation: ``taps`` [L, D] a scene's first ``n_taps`` delay taps of L
pairs, flattened ``(n_r, n_t, n_taps)``; ``c`` [L, beams, n_taps] the
cells in noise units; the returned ``x`` [L, 8, 8, n_taps] float32.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

from sense_nodes.core.fwa.calibration import calibrated_taps
from sense_nodes.core.fwa.classical import UPA_SHAPE
from sense_nodes.core.fwa.subspace import BackgroundSubspace, noise_cells

FLOOR_DB, SPAN_DB, SCALE_DB = 3.0, 30.0, 10.0  # a choice, measured (see the module docstring)


def cells_to_input(c: np.ndarray, upa=UPA_SHAPE) -> np.ndarray:
    """[L, beams, n_taps] cells in noise units -> [L, *upa, n_taps] float32."""
    db = 10.0 * np.log10(np.maximum(c, 1e-12))
    x = np.clip(db - FLOOR_DB, 0.0, SPAN_DB) / SCALE_DB
    return x.reshape((len(c),) + tuple(upa) + (c.shape[-1],)).astype(np.float32)


def nulled_maps(sub: BackgroundSubspace, taps: np.ndarray, n_t: int, n_taps: int, upa=UPA_SHAPE) -> np.ndarray:
    """[L, D] delay taps of the L pairs of ``sub`` -> the ``nulled`` input
    [L, *upa, n_taps] float32."""
    return cells_to_input(noise_cells(sub.residual(taps), sub.noise_var, n_t, n_taps, upa), upa)


def calibration_digest(cal) -> str:
    """An identity of a subspace calibration (:class:`.calibration.
    SubspaceCalibration`) that a BS can compute from its own part of the
    file: the data it was fitted on and its noise variances. Networks
    trained on one calibration's maps refuse another's."""
    keys = ("seed", "samples", "noise", "snr_offset_db", "calibration_scenes")
    ident = json.dumps({k: cal.info.get(k) for k in keys}, sort_keys=True)
    h = hashlib.sha1(ident.encode())
    h.update(np.round(np.asarray(cal.noise_var, np.float64), 30).tobytes())
    h.update(np.array([cal.n_t, cal.n_taps, cal.num_subcarriers]).tobytes())
    return h.hexdigest()[:16]


class NulledInput:
    """The ``nulled`` input of a BS's CFRs, from a subspace calibration
    (the bases of the BSs it loaded)."""

    def __init__(self, cal):
        self.cal = cal
        self.digest = calibration_digest(cal)

    def __call__(self, H: np.ndarray, pairs) -> np.ndarray:
        """H [L, n_r, n_t, K] complex CFRs of pairs ``pairs`` [L] -> [L, 8, 8, n_taps]."""
        cal = self.cal
        taps = calibrated_taps(cal, H)
        return nulled_maps(cal.subspace([int(p) for p in pairs]), taps, cal.n_t, cal.n_taps)
