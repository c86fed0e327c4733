"""NormalDraws hands out exactly the stream of one Generator.normal call per request."""
import numpy as np
import pytest

from sim.normal_draws import NormalDraws


@pytest.mark.parametrize("block", [1, 5, 6, 7, 768, 10_000])
def test_requests_get_the_values_of_one_generator_call_each(block):
    rng = np.random.default_rng(42)
    sizes = rng.integers(0, 20, 400).tolist()
    reference, draws = np.random.default_rng(9), NormalDraws(np.random.default_rng(9), block=block)
    for k in sizes:
        expected, got = reference.normal(0.0, 1.0, k), draws.take(k)
        assert got.shape == (k,) and got.dtype == np.float64 and not got.flags.writeable
        assert got.tobytes() == expected.tobytes()


def test_a_view_handed_out_keeps_its_values_when_later_blocks_are_drawn():
    draws = NormalDraws(np.random.default_rng(1), block=4)
    first = draws.take(3)
    kept = first.copy()
    for _ in range(10):
        draws.take(3)
    assert first.tobytes() == kept.tobytes()


def test_bad_arguments():
    with pytest.raises(TypeError):
        NormalDraws(np.random.RandomState(0))
    for block in (0, -3, 2.0, True):
        with pytest.raises(ValueError):
            NormalDraws(np.random.default_rng(0), block=block)
