import sys
from pathlib import Path

import pytest
import torch

# Test helper modules (workflow_support) import by name.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small ops gain little from threads, and spinning threads stall on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
