"""ember's benchmarks: each workload timed under ember and under PyTorch in one run.

Run ``python -m bench`` from the repository root (``--help`` for options).
Workloads live in ``bench/workloads.py``; the timing loop in ``bench/harness.py``.
"""
