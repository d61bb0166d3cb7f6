import pytest
import torch


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Every test starts from the same global RNG state and one CPU thread (2-core machines)."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
