"""Config errors name the file, the key and what is allowed."""
from dataclasses import dataclass, field

import pytest

from core.config import ConfigError, load_toml, replace_path, rng


@dataclass(frozen=True, slots=True)
class Inner:
    gain: float = field(default=1.0, metadata=rng(0.0, 10.0))
    mode: str = field(default="a", metadata=rng(choices=("a", "b")))


@dataclass(frozen=True, slots=True)
class Outer:
    count: int = field(default=3, metadata=rng(1, 5))
    inner: Inner = field(default_factory=Inner)
    names: tuple[str, ...] = ()


def write(tmp_path, text):
    p = tmp_path / "cfg.toml"
    p.write_text(text)
    return p


def test_valid_file_builds_frozen_tree(tmp_path):
    cfg = load_toml(Outer, write(tmp_path, 'count = 2\nnames = ["x"]\n[inner]\ngain = 2\n'))
    assert cfg == Outer(2, Inner(2.0, "a"), ("x",))
    assert isinstance(cfg.inner.gain, float)


@pytest.mark.parametrize("text, key, fragment", [
    ("cont = 2\n", "cont", "unknown key; allowed keys: count, inner, names"),
    ("[inner]\ngain = 11\n", "inner.gain", "out of range; allowed [0.0, 10.0]"),
    ('[inner]\ngain = "x"\n', "inner.gain", "expected a number"),
    ("count = 2.5\n", "count", "expected an integer"),
    ('[inner]\nmode = "c"\n', "inner.mode", "choose one of a, b"),
    ("[inner]\ngian = 1\n", "inner.gian", "unknown key"),
    ("count = \n", "", "invalid TOML"),
])
def test_errors_name_file_and_key(tmp_path, text, key, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_toml(Outer, path)
    assert err.value.source == str(path)
    assert err.value.key == key
    assert fragment in str(err.value)
    assert str(path) in str(err.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_toml(Outer, tmp_path / "nope.toml")


def test_replace_path_validates():
    cfg = replace_path(Outer(), "inner.gain", 4)
    assert cfg.inner.gain == 4.0
    with pytest.raises(ConfigError, match="inner.gain"):
        replace_path(Outer(), "inner.gain", -1)


@dataclass(frozen=True, slots=True)
class WithPair:
    xy: tuple[float, int] = (0.0, 0)


def test_fixed_length_tuple_converts_each_element_with_its_type(tmp_path):
    cfg = load_toml(WithPair, write(tmp_path, "xy = [1.5, 2]\n"))
    assert cfg.xy == (1.5, 2) and isinstance(cfg.xy[0], float) and isinstance(cfg.xy[1], int)
    with pytest.raises(ConfigError, match=r"xy\[1\]: expected an integer"):
        load_toml(WithPair, write(tmp_path, "xy = [1.5, 2.5]\n"))


def test_unquoted_dotted_key_in_a_table_of_numbers_says_to_quote_it(tmp_path):
    """`perception.lidar = 1.0` under [budgets_ms] is TOML for perception = {lidar = 1.0}: the error
    said only 'expected a number, found dict'; it now says to quote the name."""
    @dataclass(frozen=True, slots=True)
    class TimingBudgets:  # as runtime.timing's: stage names with dots as keys
        budgets_ms: dict[str, float] = field(default_factory=dict, metadata=rng(0.0, 10_000.0))

    path = write(tmp_path, "[budgets_ms]\nplanning = 20.0\nperception.lidar = 1.0\n")
    with pytest.raises(ConfigError) as err:
        load_toml(TimingBudgets, path)
    assert err.value.key == "budgets_ms.perception"
    assert "quote a name that contains a dot" in str(err.value)
    assert '"perception.lidar" = 1.0' in str(err.value)
    quoted = write(tmp_path, '[budgets_ms]\nplanning = 20.0\n"perception.lidar" = 1.0\n')
    assert load_toml(TimingBudgets, quoted).budgets_ms == {"planning": 20.0, "perception.lidar": 1.0}
