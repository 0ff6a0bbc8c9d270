"""Trainer tests run torch on one CPU thread: the tiny model's ops are far too small to
gain from two, and on a shared machine two threads can be many times slower."""
import pytest
import torch


@pytest.fixture(autouse=True)
def one_cpu_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
