"""The demo's pictures, one per system, and the page that shows them with
each system's figures beside the paper's."""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def imaging_picture(shown: dict | None, png: Path) -> None:
    """The last scene's voxel image (largest value over height, seen from
    above) with the imager's detections and the true UAVs."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 5.5), dpi=100)
    img = shown and shown["image"]
    if img is not None and img["values"] is not None and img["values"].ndim == 3:
        top = img["values"].max(axis=2)
        o, v, n = img["origin"], img["voxel"], img["values"].shape
        extent = (o[0] - v[0] / 2, o[0] + (n[0] - 0.5) * v[0], o[1] - v[1] / 2, o[1] + (n[1] - 0.5) * v[1])
        im = ax.imshow(top.T, origin="lower", extent=extent, cmap="viridis", aspect="equal")
        fig.colorbar(im, ax=ax, label="scattering coefficient (largest over height)")
        det = img["detections"]
        ax.plot(det[:, 0], det[:, 1], "o", mfc="none", mec="white", ms=12, mew=2, label=f"detections ({len(det)})")
    if shown and shown["truth"] is not None:
        t = shown["truth"]
        ax.plot(t[:, 0], t[:, 1], "x", c="red", ms=10, mew=2, label=f"true UAVs ({len(t)})")
    _finish(fig, ax, "Off-grid ISAC imaging: voxel image against truth", png, equal=False)


def diffloc_picture(shown: dict, png: Path) -> None:
    """UE estimates against truth, each with the 2-sigma ellipse of the
    covariance the node published, and the base stations."""
    from matplotlib.patches import Ellipse
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 6), dpi=100)
    est, true = shown["est"], shown["true"]
    for e, t, cov in zip(est, true, shown["cov"]):
        ax.plot([t[0], e[0]], [t[1], e[1]], "-", c="grey", lw=0.7)
        w, vecs = np.linalg.eigh(0.5 * (cov + cov.T))
        w = np.sqrt(np.clip(w, 0, None))
        angle = np.degrees(np.arctan2(vecs[1, 1], vecs[0, 1]))
        ax.add_patch(Ellipse(e, 4 * w[1], 4 * w[0], angle=angle, fill=False, ec="tab:blue", lw=0.8))
    ax.plot(true[:, 0], true[:, 1], ".", c="red", ms=7, label="true UE")
    ax.plot(est[:, 0], est[:, 1], "+", c="tab:blue", ms=8, label="estimate (2-sigma ellipse)")
    bs = shown["bs"]
    ax.plot(bs[:, 0], bs[:, 1], "^", c="black", ms=10, label="base stations")
    _finish(fig, ax, "DiffLoc: UE positions against truth", png, equal=True)


def fwa_picture(shown: dict, png: Path) -> None:
    """Each BS-CPE pair as a line coloured by its attention, the UAV
    estimate and the truth, seen from above."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 6), dpi=100)
    bs, cpe, det = shown["bs"], shown["cpe"], shown["detection"]
    if det is not None and len(det["attention"]):
        att = det["attention"]
        top = max(float(att.max()), 1e-9)
        cmap = plt.get_cmap("inferno_r")
        for k, a in enumerate(att):
            b, c = divmod(k, len(cpe))
            if b < len(bs):
                ax.plot([bs[b, 0], cpe[c, 0]], [bs[b, 1], cpe[c, 1]], c=cmap(a / top), lw=0.5 + 3 * a / top,
                        alpha=0.3 + 0.7 * a / top)
        sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, top))
        fig.colorbar(sm, ax=ax, label="attention of the pair")
        if det["valid"]:
            ax.plot(*det["xyz"][:2], "o", c="tab:red", ms=11, label=f"UAV estimate (p = {det['p']:.2f})")
    ax.plot(cpe[:, 0], cpe[:, 1], "s", c="gold", mec="black", ms=7, label="CPEs")
    ax.plot(bs[:, 0], bs[:, 1], "^", c="tab:blue", mec="black", ms=12, label="BSs")
    if shown["truth"] is not None and len(shown["truth"]):
        ax.plot(*shown["truth"][0, :2], "*", c="lime", mec="black", ms=15, label="true UAV")
    _finish(fig, ax, "FWA cooperative sensing: attention per BS-CPE pair", png, equal=True)


def page(sections: list[dict], path: Path) -> None:
    """One HTML page: per system its picture, what it did and its figures
    (ours, the paper's, verdict, meaning)."""
    from sense_nodes.eval.glossary import GLOSSARY, verdict
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>sense demo</title><style>"
             "body{font-family:sans-serif;max-width:1100px;margin:auto}"
             "section{border-top:1px solid #ccc;padding:8px 0}img{max-width:100%}"
             "td,th{padding:2px 10px;text-align:left}.met{color:green}.no{color:#b00}</style></head><body>",
             "<h1>sense demo: the four systems through their ROS nodes</h1>"]
    for s in sections:
        rows = []
        for key, value in s["figures"].items():
            if key.startswith("paper_"):
                continue
            paper = s["figures"].get(f"paper_{key}")
            v = verdict(key, value, paper)
            cls = "met" if v == "met" else "no"
            fmt = (lambda x: f"{x:.4g}" if isinstance(x, float) else html.escape(str(x)))  # noqa: E731
            rows.append(f"<tr><td>{html.escape(key)}</td><td>{fmt(value)}</td>"
                        f"<td>{'' if paper is None else fmt(paper)}</td>"
                        f"<td class='{cls}'>{v or ''}</td><td>{html.escape(GLOSSARY.get(key, ''))}</td></tr>")
        parts.append(f"<section><h2>{html.escape(s['title'])}</h2><p>{html.escape(s['did'])}</p>"
                     f"<img src='{html.escape(s['png'])}' alt='{html.escape(s['title'])}'>"
                     "<table><tr><th>figure</th><th>ours</th><th>paper</th><th></th><th>meaning</th></tr>"
                     + "".join(rows) + "</table></section>")
    parts.append("</body></html>")
    Path(path).write_text("\n".join(parts))


def _finish(fig, ax, title: str, png: Path, equal: bool) -> None:
    """Axes in metres seen from above, the legend under them (where it hides
    no station or target), the file written and the figure closed."""
    if equal:
        ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(png, bbox_inches="tight")
    _plt().close(fig)
