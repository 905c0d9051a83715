"""Fig. 4 (maximum PSF sidelobe versus system parameters, Eq. 16) and Fig. 5
(off-grid error versus location discrepancy, Eq. 17) as PNGs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from sense_nodes.core.imaging.geometry import ImagingConfig, voxel_centres
from sense_nodes.core.imaging.psf import centre_voxel, max_sidelobe, offgrid_error, psf_row

N0S = (2, 3, 4, 5, 6, 7, 8)
XIS = (1.0, 2.0, 4.0)
VOXELS = (1.0, 2.0, 3.0, 4.0, 5.0)
ROIS = (60.0, 120.0, 180.0)
NFS = (1, 2, 4, 8, 16)
BANDS = (20e6, 40e6, 100e6)


def sidelobe(cfg: ImagingConfig) -> float:
    """P(n1) at the centre voxel (the paper's n1 = 800 of 1600)."""
    n1 = centre_voxel(cfg)
    return max_sidelobe(psf_row(cfg, n1), n1)


def fig4_data(base: ImagingConfig | None = None) -> dict:
    """The three panels of Fig. 4 as {label: (x values, P values)}."""
    base = base or ImagingConfig()
    jobs = [("a", f"xi={xi:g}", n0, base.replace(n0=n0, xi=xi)) for xi in XIS for n0 in N0S]
    jobs += [("b", f"ROI {roi:g} m", d0, base.replace(voxel_m=d0, roi_size_m=(roi, roi, 0.0)))
             for roi in ROIS for d0 in VOXELS]
    jobs += [("c", f"B={b / 1e6:g} MHz", nf, base.replace(n_subcarriers=nf, bandwidth_hz=b))
             for b in BANDS for nf in NFS]
    out: dict = {"a": {}, "b": {}, "c": {}}
    for panel, label, x, cfg in tqdm(jobs, desc="Fig. 4 PSF sidelobes", unit="config"):
        xs, ps = out[panel].setdefault(label, ([], []))
        xs.append(x)
        ps.append(sidelobe(cfg))
    return out


def fig5_data(base: ImagingConfig | None = None, n_dirs: int = 16, seed: int = 0):
    """Mean Delta_b in dB over random directions for Delta_p from 0.1 mm to 1.5 m."""
    cfg = base or ImagingConfig()
    p_star = voxel_centres(cfg)[centre_voxel(cfg)]
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(n_dirs, 3))
    if not cfg.is_3d:
        dirs[:, 2] = 0.0            # a 2D ROI: UAVs move in its plane
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    dps = np.logspace(-4, np.log10(1.5), 25)
    db = [20 * np.log10(np.mean([offgrid_error(cfg, p_star + dp * u, p_star) for u in dirs]))
          for dp in tqdm(dps, desc="Fig. 5 off-grid error", unit="offset")]
    return dps, np.array(db)


def draw_all(out_dir: Path) -> dict:
    """Write fig4_psf_sidelobe.png and fig5_offgrid_error.png; return headline figures."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    d4 = fig4_data()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    titles = {"a": ("(a) antennas N0, spacing xi", "N0"), "b": ("(b) voxel size d0, ROI", "d0 (m)"),
              "c": ("(c) subcarriers N_f, bandwidth B", "N_f")}
    for ax, panel in zip(axes, "abc"):
        for label, (xs, ps) in d4[panel].items():
            ax.plot(xs, ps, marker="o", label=label)
        ax.set_title(titles[panel][0])
        ax.set_xlabel(titles[panel][1])
        ax.set_ylabel("max PSF sidelobe P(n1)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    p4 = out_dir / "fig4_psf_sidelobe.png"
    fig.savefig(p4, dpi=120)
    plt.close(fig)

    dps, db = fig5_data()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.semilogx(dps * 1e3, db, marker=".")
    ax.axhline(-10, color="gray", ls="--", lw=0.8)
    ax.set_xlabel("location discrepancy Delta p (mm)")
    ax.set_ylabel("off-grid error Delta b (dB)")
    ax.set_title("Fig. 5: off-grid error (Eq. 17)")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    p5 = out_dir / "fig5_offgrid_error.png"
    fig.savefig(p5, dpi=120)
    plt.close(fig)
    print(f"analysis figures: {p4}, {p5}")
    below = dps[db < -10]
    return {"psf_sidelobe_default": d4["a"]["xi=1"][1][N0S.index(5)],
            "offgrid_dp_for_minus10db_mm": float(below.max() * 1e3) if len(below) else None,
            "paper_offgrid_dp_for_minus10db_mm": 1.0}
