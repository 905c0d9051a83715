"""Pictures of what a deployment published, drawn from a recorded bag."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sense_nodes.data import cloud_codec
from sense_nodes.data import bags


def topview(bag: str | Path, png: str | Path, points_topic: str = "/bs/points",
            truth_topic: str = "/bs/truth", title: str = "") -> dict:
    """Top view of every point (colour = SNR) with the true paths; returns counts."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs, ys, snrs, frames = [], [], [], 0
    paths: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for topic, _, _, msg in bags.read(bag, [points_topic, truth_topic]):
        if topic == points_topic:
            pts = cloud_codec.decode(msg)
            xs.append(pts["x"].copy())
            ys.append(pts["y"].copy())
            snrs.append(pts["snr"].copy())
            frames += 1
        else:
            for obj in msg.objects:
                paths.setdefault((obj.object_class, obj.id), []).append((obj.position.x, obj.position.y))
    x, y, snr = (np.concatenate(a) if a else np.zeros(0) for a in (xs, ys, snrs))
    fig, ax = plt.subplots(figsize=(9, 8), dpi=110)
    sc = ax.scatter(x, y, c=snr, s=2, cmap="viridis", vmin=np.percentile(snr, 2) if snr.size else 0,
                    vmax=np.percentile(snr, 98) if snr.size else 1, alpha=0.5, linewidths=0)
    fig.colorbar(sc, ax=ax, label="SNR (dB)", shrink=0.8)
    colours = {1: "red", 2: "orange", 3: "deepskyblue"}
    labels = {1: "UAV (truth)", 2: "bird (truth)", 3: "vehicle (truth)"}
    shown = set()
    for (cls, _), path in sorted(paths.items()):
        p = np.asarray(path)
        ax.plot(p[:, 0], p[:, 1], color=colours.get(cls, "grey"), lw=2.2 if cls == 1 else 0.6,
                alpha=1.0 if cls == 1 else 0.6,
                label=None if cls in shown else labels.get(cls, "other"))
        shown.add(cls)
    ax.plot([0], [0], marker="^", color="white", markeredgecolor="black", ms=12, ls="", label="base station")
    ax.set_facecolor("#20202a")
    ax.set_xlabel("x (m, boresight)")
    ax.set_ylabel("y (m)")
    ax.set_aspect("equal")
    ax.set_title(title or f"{frames} frames, {x.size} points")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)
    return {"frames": frames, "points": int(x.size), "objects": len(paths)}
