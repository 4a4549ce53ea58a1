import os
import sys

# tests/media.py (the test-video encoders) is imported as a plain module by the tests
sys.path.insert(0, os.path.dirname(__file__))


import pytest  # noqa: E402


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a module (use with pytestmark): on a 2-core machine shared with
    other jobs, OpenMP spin-waiting of a second thread costs far more than it gains (measured 0.2 s
    vs 5 s for the same forward)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
