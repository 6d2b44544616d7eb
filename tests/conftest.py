"""Hypothesis profiles. `dev` (the default, what CI runs) draws a fixed, derandomized set of
examples so every run checks the same cases and a red CI always means a real regression;
`thorough` (HYPOTHESIS_PROFILE=thorough) draws 300 fresh random examples per test to explore;
`ci` fewer fixed ones. Deadlines are off everywhere because numpy's first calls and shared
machines make per-example timing meaningless.

`tile_cols`: a fixture that lowers for each vector ISA the host can run in turn (forced
with TINYGRAD_EDU_CPU) and gives that target's register-tile width."""

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev",
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def _cpu_levels() -> list[str]:
    try:
        from compiler.target import supported_levels
    except ImportError:  # no llvmlite: the tests using the fixture skip
        return []
    return [lv for lv in supported_levels() if lv in ("avx2", "avx512")]


@pytest.fixture(params=_cpu_levels())
def tile_cols(request, monkeypatch):
    """Lower for each x86 vector ISA the host can run; the panel width of its register tile."""
    from compiler.backends import llvm as backend
    from compiler.target import host_target

    monkeypatch.setenv("TINYGRAD_EDU_CPU", request.param)
    backend._Target.reset()
    yield host_target().gemm_tile.cols
    backend._Target.reset()
