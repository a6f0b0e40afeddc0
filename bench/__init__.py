"""Benchmarks (`make bench`): ratios measured side by side in one run, never asserted in tests.

BLAS runs on one thread here, for numpy and for torch alike: on a shared 2-core machine a
multithreaded BLAS makes timings swing by a factor of three, and the comparison is of autodiff
overhead, not of BLAS threading. Set before numpy is first imported.
"""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
