"""A config file that cannot be read is a ConfigError naming the file, like one that does not parse."""
from dataclasses import dataclass

import pytest

from core.config import ConfigError, load_toml


@dataclass(frozen=True, slots=True)
class Cfg:
    gain: float = 1.0


def test_invalid_utf8_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'gain = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8") as info:
        load_toml(Cfg, bad)
    assert info.value.source == str(bad)


def test_directory_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read") as info:
        load_toml(Cfg, tmp_path)
    assert info.value.source == str(tmp_path)


def test_readable_file_still_loads(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text("gain = 2\n")
    assert load_toml(Cfg, good) == Cfg(2.0)
