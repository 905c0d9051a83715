"""`sense bench SYSTEM`: see each system's help for its options."""
from sense_nodes.cli.systems import add_system_parsers, run_system

# system name -> module exposing add_arguments(parser) and main(args)
SYSTEMS = {
    "bsense": "sense_nodes.eval.bsense_bench",
    "imaging": "sense_nodes.eval.imaging_bench",
    "codec": "sense_nodes.eval.codec_bench",
    "sim": "sense_nodes.eval.sim_bench",
    "diffloc": "sense_nodes.eval.diffloc_bench",
    "fwa": "sense_nodes.eval.fwa_bench",
    "all": "sense_nodes.eval.suite_bench",
}


def add_arguments(parser):
    add_system_parsers(parser, SYSTEMS, verb="bench")


def run(args):
    return run_system(args)
