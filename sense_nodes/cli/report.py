"""`sense report`: an HTML page of the last results (figures JSON and PNGs)."""
from __future__ import annotations

from sense_nodes.errors import UserError


def add_arguments(parser):
    parser.add_argument("--results", default="out", help="folder holding --json outputs and PNGs")
    parser.add_argument("--out", default="out/report.html", help="the page to write")


def run(args):
    from sense_nodes.eval.html_report import build

    from pathlib import Path
    results = Path(args.results)
    if results.is_dir() and not any(p.suffix in (".json", ".png") for p in results.rglob("*")):
        raise UserError(f"--results {results}: no figures (.json) or pictures (.png) in it; write some with "
                        f"--json PATH on sense eval/bench, or point --results at their folder")
    try:
        counts = build(args.results, args.out)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    print(f"{args.out}: {counts['tables']} tables, {counts['images']} pictures")
    return 0
