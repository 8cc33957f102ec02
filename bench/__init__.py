"""Benchmarks of the paper trading engine (see bench/README.md). Not part of the installed package."""
