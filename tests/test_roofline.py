"""The roofline standing bench/cuda.py reports for each kernel: achieved rates against the
machine's limits, the bound F/B implies, and the limiter the figures show."""

import pytest

from compiler.kernel import Kernel
from compiler.roofline import H200, Machine, standing

MACHINE = Machine("test", flops_per_s=100e12, bytes_per_s=5e12, resident_threads=100_000)


def kernel(flops: int, bytes_moved: int) -> Kernel:
    return Kernel("k0_test", ["test"], [], [], [], flops, bytes_moved // 2, bytes_moved // 2, "x")


def test_h200_ridge_point_is_peak_flops_over_bandwidth():
    assert H200.ridge == pytest.approx(67e12 / 4.8e12)


def test_achieved_rates_are_work_over_time_against_the_peaks():
    s = standing(kernel(flops=10**12, bytes_moved=10**10), 0.1, MACHINE)
    assert s.gflop_per_s == pytest.approx(1e4) and s.gbyte_per_s == pytest.approx(100.0)
    assert s.flops_pct_of_peak == pytest.approx(10.0)
    assert s.bytes_pct_of_peak == pytest.approx(2.0)
    assert s.flop_per_byte == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("flops", "bytes_moved", "bound"),
    [(10**12, 10**9, "compute"), (10**9, 10**10, "memory")],
)
def test_bound_is_the_larger_of_compute_time_and_memory_time(flops, bytes_moved, bound):
    floor = max(flops / MACHINE.flops_per_s, bytes_moved / MACHINE.bytes_per_s)
    s = standing(kernel(flops, bytes_moved), floor / 0.8, MACHINE)
    assert s.roofline == bound and s.roofline_pct == pytest.approx(80.0)
    assert s.limiter.startswith("arithmetic" if bound == "compute" else "memory bandwidth")


def test_limiter_names_launch_cost_few_threads_fallback_or_the_schedule():
    small, big = kernel(10**3, 10**3), kernel(10**12, 10**10)
    assert standing(small, 4e-6, MACHINE, threads=10**6).limiter.startswith("launch latency")
    few = standing(big, 1.0, MACHINE, threads=1000).limiter
    assert few.startswith("parallelism: 1,000 threads for 100,000 resident slots")
    assert standing(big, 1.0, MACHINE, generated=False).limiter.startswith("no generated kernel")
    own = standing(big, 1.0, MACHINE, threads=10**6).limiter
    assert own.startswith("the kernel's own code") and "1.0% of its compute roofline" in own
