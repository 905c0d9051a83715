"""The `sense` command line (also `python -m sense_nodes`)."""
