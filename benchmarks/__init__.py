"""Benchmarks of concurrency_kit against a plain loop, concurrent.futures and joblib.

Run ``python -m benchmarks.run`` from the repository root (``--quick`` for a shorter
run, ``--smoke`` for a seconds-long check, ``--help`` for the rest). See
``benchmarks/README.md``.
"""
