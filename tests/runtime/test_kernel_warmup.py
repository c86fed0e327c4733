"""setup.sh compiles the numba kernels ahead of the first run (runtime/kernel_warmup.py)."""
from __future__ import annotations

import importlib
import io
from pathlib import Path

import pytest

from runtime.kernel_warmup import FOUNDATIONS, SLOWEST, import_order, kernel_modules, main, warm

ROOT = Path(__file__).resolve().parents[2]


def test_the_modules_read_from_source_define_exactly_that_many_compiled_kernels():
    from numba.core.registry import CPUDispatcher

    modules = kernel_modules(ROOT)
    assert sum(modules.values()) >= 80
    for name, count in modules.items():
        module = importlib.import_module(name)
        compiled = [v for v in vars(module).values()
                    if isinstance(v, CPUDispatcher) and v.py_func.__module__ == name]
        assert len(compiled) == count, name
        # Compiled at import for its explicit signature, so importing is all a warm-up needs.
        assert all(k.signatures for k in compiled), name


def test_the_scheduling_hints_name_existing_kernel_modules_and_lead_the_order():
    modules = kernel_modules(ROOT)
    hinted = [m for m in SLOWEST + FOUNDATIONS]
    assert all(m in modules for m in hinted), "a hint names a module that defines no kernel: update it"
    order = import_order(modules)
    assert order[:len(hinted)] == hinted
    assert sorted(order) == sorted(modules)


def test_warm_imports_every_kernel_module_and_reports_each(tmp_path):
    out = io.StringIO()
    warm(ROOT, 2, out=out)
    lines = out.getvalue().splitlines()
    n = len(kernel_modules(ROOT))
    assert sum(1 for line in lines if line.lstrip().startswith("[")) == n
    assert lines[-1].startswith("kernels: ready in")


def test_a_bad_worker_count_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--workers", "0"])
    assert exit_info.value.code == 2
    assert "--workers: 0; at least 1" in capsys.readouterr().err
