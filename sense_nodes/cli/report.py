"""`sense report`: an HTML page of the last results (figures JSON and PNGs)."""
from __future__ import annotations

from sense_nodes.cli.main import UserError


def add_arguments(parser):
    parser.add_argument("--results", default="out", help="folder holding --json outputs and PNGs")
    parser.add_argument("--out", default="out/report.html", help="the page to write")


def run(args):
    from sense_nodes.eval.html_report import build

    try:
        counts = build(args.results, args.out)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    print(f"{args.out}: {counts['tables']} tables, {counts['images']} pictures")
    return 0
