"""Trainer tests run torch on one CPU thread: the tiny model's ops are far too small to
gain from two, and on a shared machine two threads can be many times slower."""
import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_cpu_thread):
    """Every test here runs torch on one thread (see tests/conftest.py)."""
    yield
