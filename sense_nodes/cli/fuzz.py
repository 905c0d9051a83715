"""`sense fuzz`: hostile messages to every subscribing node of every
deployment, damaged or code-carrying files to every model loader, damaged
bags to every source; reports crashes, non-finite outputs published, code
executed, models overwritten, drops counted and memory growth. Every figure
but the counts of cases must be 0 (memory growth under 50 MB)."""
from __future__ import annotations

from sense_nodes.errors import UserError
from sense_nodes.cli.validate import check_output_path

TARGETS = {"crashes": 0, "nonfinite_published": 0, "code_executed": 0, "model_overwritten_by_bad_input": 0}


def add_arguments(parser):
    parser.description = __doc__
    parser.add_argument("--cases", type=int, default=300, help="hostile inputs in all (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--deployment", action="append", default=None, metavar="NAME",
                        help="attack only this deployment (repeatable; default: all)")
    parser.add_argument("--json", metavar="PATH", help="write the figures to this JSON file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args):
    from sense_nodes.runtime.fuzz import RSS_LIMIT_MB, run_fuzz
    from sense_nodes.eval.report import print_figures, write_json
    from sense_nodes.runtime.deployment import names

    if args.cases < 1:
        raise UserError(f"--cases must be >= 1, got {args.cases}")
    if args.json:
        check_output_path(args.json, "--json")
    for name in args.deployment or []:
        if name not in names():
            raise UserError(f"unknown deployment '{name}' (known: {', '.join(names())})")
    figures = run_fuzz(args.cases, args.seed, args.deployment, progress=not args.no_progress)
    failures = figures.pop("failures")
    skipped = figures.pop("skipped")
    if skipped:
        print(f"not attacked (could not start): {skipped}")
    print_figures(figures, title="sense fuzz")
    ok = all(figures[k] == v for k, v in TARGETS.items()) and figures["rss_growth_mb"] < RSS_LIMIT_MB
    figures["passed"] = ok
    if args.json:
        write_json(args.json, dict(figures, failures=failures, skipped=skipped))
    if failures:
        print(f"first failures: {failures}")
    print("PASS: nothing crashed, leaked a NaN, ran code or overwrote a model" if ok else "FAIL")
    return 0 if ok else 1
