"""Hypothesis profiles. `dev` (the default, what CI runs) draws a fixed, derandomized set of
examples so every run checks the same cases and a red CI always means a real regression;
`thorough` (HYPOTHESIS_PROFILE=thorough) draws 300 fresh random examples per test to explore;
`ci` fewer fixed ones. Deadlines are off everywhere because numpy's first calls and shared
machines make per-example timing meaningless."""

import os

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
