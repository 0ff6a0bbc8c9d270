"""Integration tests run torch on one CPU thread (tiny models; see tests/conftest.py)."""
import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_cpu_thread):
    yield
