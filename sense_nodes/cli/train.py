"""`sense train SYSTEM`: see each system's help for its options."""
from sense_nodes.cli.systems import add_system_parsers, run_system

# system name -> module exposing add_arguments(parser) and main(args)
SYSTEMS = {
    "trajformer": "sense_nodes.cli.trajformer_train",
    "imaging": "sense_nodes.cli.imaging_train",
    "diffloc": "sense_nodes.cli.diffloc_train",
    "fwa": "sense_nodes.cli.fwa_train",

}


def add_arguments(parser):
    add_system_parsers(parser, SYSTEMS, verb="train")


def run(args):
    return run_system(args)
