"""setup.sh compiles the numba kernels ahead of the first run (runtime/kernel_warmup.py)."""
from __future__ import annotations

import importlib
import io
from pathlib import Path

import pytest

from runtime.kernel_warmup import (FOUNDATIONS, SLOWEST, WarmupError, default_workers, import_order,
                                   kernel_modules, main, warm, warm_if_changed)

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


def _fake_tree(tmp_path, monkeypatch, modules: dict[str, str]) -> tuple[Path, tuple[str]]:
    """A package of its own name (so the real packages stay as imported) whose modules are given
    as source; importable by the forked workers through sys.path."""
    package = f"warmfake_{tmp_path.name.replace('-', '_')}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    for name, source in modules.items():
        (tmp_path / package / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path, (package,)


GOOD = "def kernel(sig):\n    return lambda f: f\n\n@kernel('void()')\ndef ok():\n    pass\n"


def test_a_module_whose_import_raises_is_named(tmp_path, monkeypatch):
    root, packages = _fake_tree(tmp_path, monkeypatch, {"good": GOOD, "bad": GOOD + "raise RuntimeError('LLVM says no')\n"})
    with pytest.raises(WarmupError, match=rf"{packages[0]}\.bad: RuntimeError: LLVM says no"):
        warm(root, 2, out=io.StringIO(), packages=packages)


def test_a_worker_that_dies_fails_the_warm_up_instead_of_hanging_it(tmp_path, monkeypatch):
    # multiprocessing.Pool replaced a dead worker and waited for its task for ever.
    root, packages = _fake_tree(tmp_path, monkeypatch, {"good": GOOD, "dies": GOOD + "import os\nos._exit(137)\n"})
    with pytest.raises(WarmupError, match="a worker died"):
        warm(root, 2, out=io.StringIO(), packages=packages)


def test_the_stamp_skips_an_unchanged_tree_and_a_change_clears_numbas_cache(tmp_path, monkeypatch):
    root, packages = _fake_tree(tmp_path, monkeypatch, {"good": GOOD})
    stamp = tmp_path / "stamp"
    cache = root / packages[0] / "__pycache__"
    cache.mkdir()
    (cache / "good.ok-5.py311.nbi").write_bytes(b"stale index")
    assert warm_if_changed(root, stamp, 1, out=io.StringIO(), packages=packages)
    assert not (cache / "good.ok-5.py311.nbi").exists()  # no stamp: whatever was cached is suspect
    assert not warm_if_changed(root, stamp, 1, out=io.StringIO(), packages=packages)
    (cache / "good.ok-5.py311.nbc").write_bytes(b"code")
    (root / packages[0] / "good.py").write_text(GOOD + "\n# changed\n")
    out = io.StringIO()
    assert warm_if_changed(root, stamp, 1, out=out, packages=packages)
    assert not (cache / "good.ok-5.py311.nbc").exists()
    assert "1 cached files removed" in out.getvalue()


def test_the_default_worker_count_is_the_usable_cores_at_most_the_modules():
    import os

    assert default_workers(100) == len(os.sched_getaffinity(0))
    assert default_workers(1) == 1
