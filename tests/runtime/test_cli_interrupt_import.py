"""Ctrl-C that lands inside the import of a compiled module (open3d, onnxruntime) surfaces as that
module's ImportError, caused by the KeyboardInterrupt: it was a 22-line traceback and exit 1 in 3
of 10 interrupts 2.4-2.9 s after launch. It is an interrupt: one line, exit 130."""
import pytest

from runtime import cli


def _import_interrupted(_args):
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as interrupt:
        raise ImportError("initialization failed") from interrupt


def test_an_interrupt_inside_an_import_is_an_interrupt(monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "scenarios", _import_interrupted)
    assert cli.main(["scenarios"]) == 130
    err = capsys.readouterr().err
    assert err == "rtdrive scenarios: interrupted\n"


def test_any_other_error_still_propagates(monkeypatch):
    def broken(_args):
        raise ImportError("a real import failure")
    monkeypatch.setitem(cli.COMMANDS, "scenarios", broken)
    with pytest.raises(ImportError, match="a real import failure"):
        cli.main(["scenarios"])
