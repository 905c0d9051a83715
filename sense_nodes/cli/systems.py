"""Shared plumbing of the verbs that act on a SYSTEM (train, eval, bench, ...).

A verb module holds a table ``SYSTEMS = {name: "module.path"}``; the system
module exposes ``add_arguments(parser)`` and ``main(args) -> dict | None``.
When main returns figures, they are printed beside the paper's values and
written to ``--json``.
"""
from __future__ import annotations

import argparse
import importlib

from sense_nodes.cli.validate import check_output_path
from sense_nodes.eval.report import print_figures, write_json


def add_system_parsers(parser: argparse.ArgumentParser, systems: dict[str, str],
                       verb: str, with_json: bool = True) -> None:
    sub = parser.add_subparsers(dest="system", metavar="SYSTEM", required=True)
    for name, module_name in systems.items():
        module = importlib.import_module(module_name)
        doc = (module.__doc__ or "").strip().splitlines()
        p = sub.add_parser(name, help=doc[0] if doc else name,
                           description=(module.__doc__ or "").strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        if with_json:
            p.add_argument("--json", metavar="PATH", help="write the figures to this JSON file")
        module.add_arguments(p)
        p.set_defaults(_system_module=module_name, _verb=verb)


def run_system(args: argparse.Namespace) -> int:
    module = importlib.import_module(args._system_module)
    if getattr(args, "json", None):  # refuse an unwritable path before the work, not after
        check_output_path(args.json, "--json")
    figures = module.main(args)
    if isinstance(figures, dict):
        print_figures(figures, title=f"sense {args._verb} {args.system}")
        if getattr(args, "json", None):
            write_json(args.json, figures)
            print(f"figures written to {args.json}")
    return 0
