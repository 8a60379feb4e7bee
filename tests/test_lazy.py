"""The front door: the notebooks' names import on first use, and importing a package loads nothing heavy."""

import subprocess
import sys

import pytest

from helpers.lazy import lazy_attributes


def test_a_name_is_imported_from_its_module_on_first_use():
    getattr_ = lazy_attributes("helpers", {"show": ".notebook"})
    from helpers.notebook import show

    assert getattr_("show") is show
    with pytest.raises(AttributeError, match="module 'helpers' has no attribute 'nope'"):
        getattr_("nope")


def test_importing_the_packages_loads_neither_torch_nor_tensorrt_nor_tritonclient():
    code = ("import sys, helpers, helpers.trt, helpers.serving, helpers.bench\n"
            "print(sorted(m for m in ('torch', 'tensorrt_rtx_bindings', 'tritonclient') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("package", ["helpers", "helpers.trt", "helpers.serving"])
def test_every_front_door_name_exists(package):
    import importlib

    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
