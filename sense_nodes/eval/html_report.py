"""One HTML page of the last results: every figures JSON written with
``--json`` (ours beside the paper's) and every PNG found under a folder."""
from __future__ import annotations

import html
import json
import os
from pathlib import Path

from sense_nodes.eval.glossary import GLOSSARY, verdict
from sense_nodes.eval.report import _fmt


def _table(name: str, figures: dict) -> str:
    rows = []
    for key, value in figures.items():
        if key.startswith("paper_"):
            continue
        paper = figures.get(f"paper_{key}")
        rows.append(f"<tr><td>{html.escape(key)}</td><td>{html.escape(_fmt(value))}</td>"
                    f"<td>{html.escape(_fmt(paper))}</td><td>{html.escape(verdict(key, value, paper) or '')}</td>"
                    f"<td class='m'>{html.escape(GLOSSARY.get(key, ''))}</td></tr>")
    return (f"<h2>{html.escape(name)}</h2><table><tr><th>figure</th><th>ours</th><th>paper</th><th>verdict</th>"
            "<th>meaning</th></tr>" + "".join(rows) + "</table>")


def _provenance() -> str:
    """When and from which commit the page was made."""
    import datetime
    import subprocess
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=5, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"<p>Made {when}" + (f" from commit {html.escape(commit)}" if commit else "") + ".</p>"


def build(results: str | Path, out: str | Path) -> dict:
    """Write the page; returns how many tables and pictures it holds."""
    results, out = Path(results), Path(out)
    if not results.is_dir():
        raise FileNotFoundError(f"results folder '{results}' does not exist")
    parts, n_tables, n_images = [], 0, 0
    for path in sorted(results.rglob("*.json")):
        try:
            figures = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(figures, dict) and figures and all(not isinstance(v, dict) for v in figures.values()):
            parts.append(_table(str(path.relative_to(results)), figures))
            n_tables += 1
    for path in sorted(results.rglob("*.png")):
        rel = os.path.relpath(path, out.parent)
        parts.append(f"<figure><img src='{html.escape(rel)}'><figcaption>{html.escape(str(path.relative_to(results)))}"
                     "</figcaption></figure>")
        n_images += 1
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>sense_nodes results</title><style>"
            "body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin-bottom:1em}"
            "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
            "img{max-width:100%}td.m{text-align:left;font-size:90%}</style></head><body><h1>sense_nodes results</h1>"
            + _provenance()
            + ("".join(parts) or "<p>No results yet: run a command with --json under this folder.</p>")
            + "</body></html>")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return {"tables": n_tables, "images": n_images}
