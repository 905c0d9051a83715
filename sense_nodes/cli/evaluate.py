"""`sense eval SYSTEM`: see each system's help for its options."""
from sense_nodes.cli.systems import add_system_parsers, run_system

# system name -> module exposing add_arguments(parser) and main(args)
SYSTEMS = {
    "bsense": "sense_nodes.eval.bsense_eval",
    "imaging": "sense_nodes.eval.imaging_eval",
    "trajformer": "sense_nodes.eval.trajformer_features",
    "diffloc": "sense_nodes.eval.diffloc_eval",
    "fwa": "sense_nodes.eval.fwa_eval",

}


def add_arguments(parser):
    add_system_parsers(parser, SYSTEMS, verb="eval")


def run(args):
    return run_system(args)
