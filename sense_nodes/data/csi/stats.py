"""Quality checks of a CSI dataset, as flat figures for
``sense data stats``: ``samples``, ``samples_per_s``, ``uav_affected_pair_pct``,
``analytic_phase_error_rad``, ``analytic_amplitude_error_db``, ``ray_traced``,
plus path counts, delay spreads and the SNR distribution. Figures that do not
apply to a kind are ``None`` (UAV-affected pairs and the analytic echo check
for positioning, which has no UAV). The analytic check traces one point target
with ``RCSSolver`` in the dataset's own geometry (imaging: the 4 canyon BSs;
fwa: BS -> UAV -> CPE) and compares it with the cascaded model of Eq. 10/11
of the imaging paper."""
from __future__ import annotations

import numpy as np

from sense_nodes.data.csi.dataset import Dataset


def _pct(x) -> float:
    return float(100.0 * np.mean(x)) if np.size(x) else float("nan")


def _dist(prefix: str, x, scale: float = 1.0) -> dict:
    x = np.asarray(x, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {f"{prefix}_median": None, f"{prefix}_p10": None, f"{prefix}_p90": None}
    return {f"{prefix}_median": float(np.median(x) * scale),
            f"{prefix}_p10": float(np.percentile(x, 10) * scale),
            f"{prefix}_p90": float(np.percentile(x, 90) * scale)}


def dataset_stats(ds: Dataset, analytic: bool = True) -> dict:
    m = ds.manifest
    gen = m.get("generation", {})
    fig = {"kind": ds.kind, "samples": ds.num_samples,
           "samples_per_s": gen.get("samples_per_s"), "generation_s": gen.get("seconds"),
           "dataset_mb": m.get("arrays_bytes", 0) / 1e6, "ray_traced": True,
           "uav_affected_pair_pct": None, "analytic_phase_error_rad": None,
           "analytic_amplitude_error_db": None}
    a = ds.arrays
    if ds.kind == "diffloc":
        npaths = a["num_paths"]
        fig["links"] = int(npaths.size)
        fig["no_path_link_pct"] = _pct(npaths == 0)
        fig["no_path_sample_pct"] = _pct(~a["link_valid"].any(1))
        fig.update(_dist("paths_per_link", npaths[npaths > 0]))
        fig.update(_dist("delay_spread_ns", a["delay_spread_s"], 1e9))
        fig.update(_dist("snr_db", a["snr_db"]))
        fig["vehicular_sample_pct"] = _pct(a["variant"] == 1)
        H = a["H"]
        p = np.concatenate([np.mean(np.abs(H[i:i + 256]) ** 2, axis=(2, 3, 4))
                            for i in range(0, len(H), 256)])
        fig.update(_dist("path_gain_db", 10 * np.log10(p[p > 0])))
    elif ds.kind == "fwa":
        present = a["uav_present"] == 1
        fig["uav_present_pct"] = _pct(present)
        fig["uav_affected_pair_pct"] = _pct(a["pair_label"][present]) if present.any() else 0.0
        fig.update(_dist("background_paths_per_pair", m["background_paths_per_pair"]))
        fig.update(_dist("background_paths_kept_per_pair", m["background_paths_kept_per_pair"]))
        fig.update(_dist("delay_spread_ns", m["background_delay_spread_s"], 1e9))
        fig.update(_dist("echo_to_background_db", a["echo_to_background_db"]))
        fig.update(_dist("snr_db", a["link_snr_db"]))
        if analytic:
            from sense_nodes.data.csi.fwa_pairs import analytic_check
            fig.update(analytic_check(seed=int(m["seed"])))
    elif ds.kind == "imaging":
        ep = a["echo_paths"]
        fig["uav_affected_pair_pct"] = _pct(ep > 0)
        fig.update(_dist("echo_paths_per_link", ep))
        fig.update(_dist("background_paths_per_link", m["background_paths_per_link"]))
        fig.update(_dist("delay_spread_ns", m["background_delay_spread_s"], 1e9))
        fig.update(_dist("snr_db", a["echo_snr_db"]))
        he = a["H_echo"]
        tot = sum(float(np.sum(np.abs(he[i:i + 256]) ** 2)) for i in range(0, len(he), 256))
        pe = tot / max(1, int(np.prod(he.shape)))
        pb = np.mean(np.abs(a["H_background"]) ** 2)
        fig["echo_to_background_db"] = float(10 * np.log10(pe / pb)) if pb > 0 and pe > 0 else None
        fig["residual_ratio"] = m["residual_ratio"]
        if analytic:
            from sense_nodes.data.csi.imaging_channels import analytic_check
            fig.update(analytic_check(seed=int(m["seed"])))
    return fig
