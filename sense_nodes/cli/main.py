"""`sense` entry point: one subcommand per verb of the command-line contract.

Each verb lives in its own module, imported only when used, so `sense bench
codec` does not pay for importing torch. Verbs that act on a SYSTEM (train,
eval, bench) look the system up in their module's SYSTEMS table; a system
module exposes ``add_arguments(parser)`` and ``main(args)``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from sense_nodes.errors import UserError  # noqa: F401 - re-exported: `from sense_nodes.errors import UserError` keeps working

# verb -> (module, one-line help)
VERBS = {
    "run": ("sense_nodes.cli.run", "run a deployment in one process"),
    "sim": ("sense_nodes.cli.sim", "base-station point-cloud scenarios"),
    "record": ("sense_nodes.cli.record", "record topics to a rosbag2 file"),
    "data": ("sense_nodes.cli.data", "ray-traced CSI datasets"),
    "train": ("sense_nodes.cli.train", "train a model"),
    "eval": ("sense_nodes.cli.evaluate", "the paper's metrics on a scenario or dataset"),
    "bench": ("sense_nodes.cli.bench", "latency and throughput, medians over repeats"),
    "report": ("sense_nodes.cli.report", "figures and an HTML page of the last results"),
    "calibrate": ("sense_nodes.cli.calibrate", "fit the BSense noise fingerprints on UAV-free frames"),
    "echo": ("sense_nodes.cli.echo", "print the messages on a topic (like `ros2 topic echo`)"),
    "diag": ("sense_nodes.cli.diag", "a table of every node's /diagnostics"),
    "fuzz": ("sense_nodes.cli.fuzz", "send hostile messages, files and bags to every node and loader"),
    "demo": ("sense_nodes.cli.demo", "run the main deployment on its built-in scenario and show what it did"),
}


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sense", description="sense_nodes: airspace and user awareness from base stations")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    from sense_nodes.cli.systems import HelpFormatter
    for name, (module_name, help_text) in VERBS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)
        if name == verb:  # import only the verb that runs
            importlib.import_module(module_name).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    verb = argv[0] if argv and argv[0] in VERBS else None
    parser = build_parser(verb)
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 2
    module = importlib.import_module(VERBS[args.verb][0])
    try:
        rc = module.run(args)
    except KeyboardInterrupt:
        return 130
    except UserError as exc:
        print(f"sense {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bad file met deep in the work: one line, no traceback
        if not isinstance(exc, _input_errors()):
            raise
        print(f"sense {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    return 0 if rc is None else int(rc)


def _input_errors() -> tuple[type, ...]:
    """The exceptions that describe a bad file or value the user gave (each
    names the file and the reason); imported only when one was raised."""
    kinds = []
    for module, name in (("sense_nodes.core.checkpoint", "CheckpointError"),
                         ("sense_nodes.data.bags", "BagError"),
                         ("sense_nodes.data.csi.dataset", "DatasetError"),
                         ("sense_nodes.core.bsense.noise_model", "NoiseModelFileError"),
                         ("sense_nodes.runtime.deployment", "DeploymentError"),
                         ("sense_nodes.nodes.base", "ParameterError")):
        mod = sys.modules.get(module)
        if mod is not None:  # an error class that was never imported was never raised
            kinds.append(getattr(mod, name))
    return tuple(kinds)


def invocation() -> str:
    """How the user can type `sense` here: plain when it is on PATH, else
    the venv's script as a path from the current folder."""
    import os
    import shutil
    from pathlib import Path
    script = Path(sys.executable).parent / "sense"
    if shutil.which("sense") and Path(shutil.which("sense")).resolve() == script.resolve():
        return "sense"
    if script.exists():
        try:
            return os.path.relpath(script)
        except ValueError:
            return str(script)
    return f"{sys.executable} -m sense_nodes"

