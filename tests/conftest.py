"""Suite-wide options: the exhaustive fault matrix is opt-in on the command line, not by environment."""
import pytest


def pytest_addoption(parser):
    parser.addoption("--full-fault-matrix", action="store_true", default=False,
                     help="also run the full sensor x fault kind x scenario x seed product (~20 min)")
    parser.addoption("--planning-perception", choices=("oracle", "onnx"), default="oracle",
                     help="perception of the planning closed-loop acceptance runs (tests/scenarios/"
                          "test_planning_closed_loop.py): oracle (default, ~4 min) or onnx, the full "
                          "stack (~15 min on two cores)")


def pytest_configure(config):
    config.addinivalue_line("markers", "full_fault_matrix: the exhaustive fault product, run with --full-fault-matrix")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--full-fault-matrix"):
        return
    skip = pytest.mark.skip(reason="full product: run with --full-fault-matrix")
    for item in items:
        if "full_fault_matrix" in item.keywords:
            item.add_marker(skip)
