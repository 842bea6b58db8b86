"""Benchmarks: runnable as modules (python -m benchmarks.<name>) and through `rsim bench`."""
