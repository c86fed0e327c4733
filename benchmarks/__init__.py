"""Benchmarks, run on demand with `rtdrive bench` (never part of the unit tests' pass/fail).

Each bench_*.py module exposes BENCHMARKS = {name: make}; make() returns the zero-argument callable
to time. See runtime/bench.py.
"""
