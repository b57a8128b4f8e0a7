"""Shared test setup: a clean Pyro param store, validation on, one thread, fixed seeds."""

import pyro
import pytest
import torch


@pytest.fixture(autouse=True)
def clean_pyro_state():
    """Every test starts with an empty param store, Pyro validation on and a fixed seed."""
    pyro.clear_param_store()
    pyro.enable_validation(True)
    pyro.set_rng_seed(0)
    torch.set_num_threads(1)
    yield
    pyro.clear_param_store()
