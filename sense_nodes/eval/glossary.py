"""What the printed figures mean, and whether ours reaches the paper's.

Used by every table the CLI prints and by the HTML report, so a figure is
explained the same way wherever it appears. Papers are named by title:
BSense (UAV tracking in 5G-Advanced base-station point clouds), DiffLoc
(diffusion-model UE positioning), FWA cooperative sensing (UAV detection by
base stations and fixed-wireless-access CPEs) and off-grid ISAC imaging."""
from __future__ import annotations

import math

GLOSSARY = {
    "frames": "frames with truth that were scored",
    "f1_pct": "F1 of the UAV outputs against the true UAVs, frame by frame, matched within 10 m (BSense Sec. 4.1)",
    "precision_pct": "share of UAV outputs that are a true UAV",
    "recall_pct": "share of true UAV positions with a UAV output",
    "mean_loc_error_m": "mean distance from a matched output to its true UAV",
    "false_per_frame": "UAV outputs per frame that match no true UAV",
    "false_objects_per_frame": "objects the object filter kept per frame that are not a UAV",
    "object_recall_pct": "share of true UAV positions with a kept object",
    "frames_with_tracks_pct": "share of the truth's frames for which a TrackArray was published",
    "frames_tracked_pct": "share of the source's frames the tracker node processed (the rest were lost in its queue)",
    "basic_f1_pct": "F1 of the basic pipeline (DBSCAN clustering and the tracker, no filtering: BSense's baseline)",
    "basic_false_per_frame": "false outputs per frame of the basic pipeline",
    "imaging_scenes": "simulated airspace scenes imaged by the imager node",
    "imaging_ospa_m": "OSPA of the detected targets against the true off-grid UAVs, c3 = 1 (imaging Eq. 25)",
    "imaging_dr_pct": "share of true UAVs detected by a target with a voxel within one voxel of theirs (imaging DR)",
    "diffloc_ues": "UE positions estimated by the DiffLoc node and scored",
    "diffloc_mean_error_cm": "mean 2D distance from the fused estimate to the true UE (DiffLoc Table IV)",
    "diffloc_median_error_m": "median 2D distance from the fused estimate to the true UE",
    "diffloc_model": "the consistency-model checkpoint the node ran",
    "fwa_samples": "BS-CPE CSI samples decided by the fusion centre",
    "fwa_with_uav": "of them, samples with a UAV in the airspace",
    "fwa_mdp_pct": "missed-detection probability: UAV present, none declared (FWA Sec. VI)",
    "fwa_fap_pct": "false-alarm probability: no UAV, one declared (FWA Sec. VI)",
    "fwa_ape_mean_m": "mean 3D error of the UAV position on detected UAVs (FWA APE)",
}


def lower_is_better(key: str) -> bool:
    """Whether a smaller value is the better one: times, distances, errors,
    false outputs, missed detections and false alarms, UAV points lost, the
    false-positive rate and the noise left after filtering."""
    return (key.endswith(("_m", "_ms", "_cm", "_mb", "_s")) or "false" in key or "error" in key
            or key.startswith(("mdp", "fap", "far")) or "_mdp" in key or "_fap" in key
            or "_lost_" in key or "fp_rate" in key or key.startswith("noise_after"))


# Baselines are measured to compare against, not to reach the paper's value.
BASELINE_PREFIXES = ("basic_", "classical_", "knn_", "grid_", "cnn_", "supervised_mlp_", "hard_fusion_",
                     "soft_fusion_", "stonesoup_", "sp_", "delay_only_")


def verdict(key: str, ours, paper) -> str | None:
    """'met' / 'NOT met' against the paper's value, or None when not
    comparable (no value, or a baseline's figure)."""
    if key.startswith(BASELINE_PREFIXES):
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (ours, paper)):
        return None
    if not (math.isfinite(ours) and math.isfinite(paper)):
        return None
    ok = ours <= paper if lower_is_better(key) else ours >= paper
    return "met" if ok else "NOT met"


def explain(figures: dict) -> list[str]:
    """Glossary lines for the figures that have an entry."""
    return [f"  {k}: {GLOSSARY[k]}" for k in figures if k in GLOSSARY]
