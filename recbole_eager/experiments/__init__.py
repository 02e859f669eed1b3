"""Experiment tooling: side-by-side benchmark, speed comparison, Ray Tune sweeps and their reports."""
