"""Evaluation layer: the papers' metrics, harnesses and benchmarks."""
