"""The Triton runtime checks: the server is found, and both stub traps (libpython, numpy 2) are detected."""

from __future__ import annotations

import sys

import pytest

from helpers.errors import ServingError
from helpers.serving import runtime
from helpers.serving.runtime import (Interpreter, check_stub_env, find_triton, hosts_stub, interpreter_info,
                                     make_stub_env, prepare_runtime, project_site_dirs, stub_interpreter)


def test_find_triton_and_the_stub_for_this_python():
    install = find_triton()
    assert install.server.is_file() and (install.python_backend / "libtriton_python.so").is_file()
    assert install.stub_for(f"{sys.version_info[0]}.{sys.version_info[1]}").is_file()
    with pytest.raises(ServingError, match="no Python-backend stub for Python 2.7"):
        install.stub_for("2.7")


def test_missing_server_is_explained(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "CONTAINER_HOME", tmp_path / "none")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ServingError, match="no tritonserver found .* environment/setup.sh run"):
        find_triton(tmp_path)


def test_this_interpreter_hosts_the_stub():
    own = interpreter_info()
    chosen, why = stub_interpreter()
    assert hosts_stub(chosen) and chosen.version == own.version and str(chosen.libpython) in why


def test_an_interpreter_without_shared_libpython_is_explained(tmp_path, monkeypatch):
    static = Interpreter("/opt/py/bin/python3.11", "3.11", False, "/opt/py/lib", "", "/opt/py")
    monkeypatch.setattr(runtime, "interpreter_info", lambda python=None: static)
    with pytest.raises(ServingError, match=r"built without a shared library(.|\n)*_recursion_count"):
        stub_interpreter(system_dir=str(tmp_path))


def test_numpy_2_in_the_stub_environment_is_refused(tmp_path):
    """Without the numpy-1 folder the stub would import the project's numpy 2: the check must stop the start."""
    chosen, _ = stub_interpreter()
    env = make_stub_env(tmp_path / "env", chosen, None, project_site_dirs())
    import numpy

    if int(numpy.__version__.split(".")[0]) < 2:
        pytest.skip("the project runs numpy 1 here; nothing to refuse")
    with pytest.raises(ServingError, match="numpy 2.* pip install --no-deps --target"):
        check_stub_env(env, None)


def test_prepared_runtime_loads_this_pythons_libpython_and_numpy_1(tmp_path):
    prepared = prepare_runtime(tmp_path)
    chosen, _ = stub_interpreter()
    assert prepared.report["libpython loaded"].startswith(str(chosen.libpython))
    assert prepared.report["stub numpy"].startswith("1.")
    assert prepared.env["LD_LIBRARY_PATH"].split(":")[0] == chosen.libdir
    assert prepared.env["PATH"].startswith(str(tmp_path / "stub-env" / "bin"))
    assert (prepared.backends / "python" / runtime.STUB_NAME).is_file()
