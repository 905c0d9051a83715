"""Figures as the command-line contract wants them: flat keys named with their
unit (``_ms``, ``_m``, ``_cm``, ``_pct``), the paper's value beside ours as
``paper_<key>``, printed as a two-column table and written as JSON."""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def table(figures: dict, title: str = "") -> str:
    """Two columns, ours and the paper's, one row per figure, with a verdict
    where the paper has a value, then what the figures mean."""
    from sense_nodes.eval.glossary import explain, verdict
    keys = [k for k in figures if not k.startswith("paper_")]
    width = max([len(k) for k in keys] + [6])
    lines = []
    if title:
        lines.append(title)
    lines.append(f"{'figure':<{width}}  {'ours':>14}  {'paper':>14}")
    lines.append("-" * (width + 32))
    for key in keys:
        paper = figures.get(f"paper_{key}")
        v = verdict(key, figures[key], paper)
        lines.append(f"{key:<{width}}  {_fmt(figures[key]):>14}  {_fmt(paper):>14}" + (f"  {v}" if v else ""))
    glossary = explain(keys)
    if glossary:
        lines += ["what the figures mean:"] + glossary
    return "\n".join(lines)


def print_figures(figures: dict, title: str = "") -> None:
    print(table(figures, title))


def _plain(value):
    """JSON-safe scalar (numpy scalars, NaN as null)."""
    if hasattr(value, "item") and not isinstance(value, (list, dict)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def write_json(path: str | os.PathLike, figures: dict) -> None:
    """Write atomically so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {k: _plain(v) for k, v in figures.items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=False)
        fh.write("\n")
    os.replace(tmp, path)
