"""Fixtures shared by every test directory."""

from hypothesis import settings

pytest_plugins = ["tests.support.fixtures"]


# Deterministic property tests: the same examples on every run and machine, no example database.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.load_profile("deterministic")
