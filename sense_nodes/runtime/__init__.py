"""Deployments: descriptions in config/, in-process composition, launch glue."""
