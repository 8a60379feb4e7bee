"""Where the Triton server comes from, and the Python that its Python-backend models run in.

The PyPI wheel ``nvidia-pytriton`` bundles a real Triton Inference Server (the ``tritonserver`` binary,
``libtritonserver`` and the Python backend, with one backend *stub* per Python minor version). The series uses
those files only, never pytriton's own Python API: it serves a standard Triton model repository
(``config.pbtxt`` + ``model.py``), the same one a user copies into NVIDIA's Triton container.
``environment/setup.sh`` installs the wheel with ``pip install --no-deps --target <venv>/triton/server``
(its metadata pins numpy < 2, which the notebooks do not need; see below).

A Python-backend model runs in a separate process, ``triton_python_backend_stub``, which embeds Python. Two
traps decide whether it works, and :func:`prepare_runtime` checks both before a server starts:

1. **Which libpython the stub loads.** The stub links ``libpython3.X.so.1.0`` by name. The dynamic loader takes
   the first one it finds, normally the system's (Debian's 3.11.2 here). Run for another build of 3.11 (a
   pyenv 3.11.7), the system's C runtime meets the other build's standard library and model loading fails with
   ``AttributeError: '_thread.RLock' object has no attribute '_recursion_count'``; where no system library of
   that version exists it fails with ``cannot open shared object file``. The server is therefore started with
   the chosen interpreter's own ``LIBDIR`` first on ``LD_LIBRARY_PATH``. An interpreter built without a shared
   libpython cannot host the stub at all; then a system interpreter of the same minor version that has one
   (``/usr/bin/python3.X``) hosts it instead, with the project's packages (binary-compatible within a minor
   version).
2. **numpy 2.** The stub hands tensors to Python through pybind11 code that reads numpy 1.x's array layout:
   under numpy 2 a BYTES tensor arrives garbled (``unpack_from requires a buffer of at least 303174166 bytes``)
   and the stub process dies. The stub's Python gets numpy 1.26 from a private folder (``<venv>/triton/stub-site``)
   placed ahead of the project's packages, so the notebooks keep numpy 2.

How the stub finds the packages: it embeds Python in isolated mode (``PYTHONPATH`` is ignored) and locates its
``sys.prefix`` by searching ``PATH`` for ``python3``. :func:`make_stub_env` writes a tiny virtual environment
whose ``bin/`` goes first on ``PATH`` and whose ``.pth`` file adds the numpy-1 folder and then the project's
site-packages (editable installs included).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ServingError

#: Python minor versions for which nvidia-pytriton ships a backend stub.
STUB_VERSIONS: tuple[str, ...] = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")
#: Where NVIDIA's Triton container keeps the server.
CONTAINER_HOME = Path("/opt/tritonserver")
STUB_NAME = "triton_python_backend_stub"
SETUP_HINT = "run `bash environment/setup.sh run` (it installs the server into <venv>/triton/)"


def default_home() -> Path:
    """``<venv>/triton``: where environment/setup.sh installs the server and the stub's numpy."""
    return Path(sys.prefix) / "triton"


@dataclass(frozen=True)
class TritonInstall:
    """The files of one Triton server installation."""

    server: Path
    python_backend: Path
    stubs: Path | None
    libs: Path | None
    source: str

    def stub_for(self, version: str) -> Path:
        """The backend stub for Python ``version`` (``"3.11"``)."""
        if self.stubs is None:  # NVIDIA's container: one stub, built for the container's Python
            return self.python_backend / STUB_NAME
        stub = self.stubs / version / STUB_NAME
        if not stub.is_file():
            raise ServingError(f"triton: no Python-backend stub for Python {version} in {self.stubs} (there are stubs "
                               f"for {', '.join(STUB_VERSIONS)}); run the series with one of those Python versions.")
        return stub


def find_triton(home: str | os.PathLike[str] | None = None) -> TritonInstall:
    """Locate the server: ``home`` (or :func:`default_home`) holding setup.sh's ``server/`` folder, an installed
    ``pytriton`` package, or NVIDIA's container (``/opt/tritonserver``). :class:`ServingError` says what to do."""
    candidates: list[Path] = []
    root = Path(home).expanduser() if home else default_home()
    candidates += [root / "server" / "pytriton" / "tritonserver", root / "pytriton" / "tritonserver"]
    import importlib.util

    spec = importlib.util.find_spec("pytriton")  # locates the package without importing it
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(list(spec.submodule_search_locations)[0]) / "tritonserver")
    for dist in candidates:
        server = dist / "bin" / "tritonserver"
        if server.is_file():
            libs = dist.parent.parent / "nvidia_pytriton.libs"
            return TritonInstall(server, dist / "backends" / "python", dist / "python_backend_stubs",
                                 libs if libs.is_dir() else None, f"nvidia-pytriton files in {dist}")
    if (CONTAINER_HOME / "bin" / "tritonserver").is_file():
        return TritonInstall(CONTAINER_HOME / "bin" / "tritonserver", CONTAINER_HOME / "backends" / "python", None, None,
                             "NVIDIA's Triton container")
    looked = ", ".join(str(c) for c in candidates[:2])
    raise ServingError(f"triton: no tritonserver found (looked in {looked}, an installed pytriton package and "
                       f"{CONTAINER_HOME}); {SETUP_HINT}, or pass triton_home= pointing at such a folder.")


@dataclass(frozen=True)
class Interpreter:
    """What the stub needs to know about a Python interpreter."""

    executable: str
    version: str
    shared: bool
    libdir: str
    soname: str
    base_prefix: str

    @property
    def libpython(self) -> Path:
        return Path(self.libdir) / self.soname


_PROBE = ("import json, sys, sysconfig; v = sysconfig.get_config_var; "
          "print(json.dumps({'executable': sys.executable, 'version': '%d.%d' % sys.version_info[:2], "
          "'shared': bool(v('Py_ENABLE_SHARED')), 'libdir': v('LIBDIR') or '', "
          "'soname': v('INSTSONAME') or v('LDLIBRARY') or '', 'base_prefix': sys.base_prefix}))")


def interpreter_info(python: str | os.PathLike[str] | None = None) -> Interpreter:
    """Facts about ``python`` (default: the running interpreter's base, i.e. the one a venv was made from)."""
    exe = str(python) if python else getattr(sys, "_base_executable", sys.executable)
    try:
        out = subprocess.run([exe, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ServingError(f"triton: cannot run the interpreter {exe} ({exc}).") from None
    return Interpreter(**json.loads(out))


def hosts_stub(info: Interpreter) -> bool:
    """True when ``info`` has a shared libpython on disk (the stub can load that very library)."""
    return info.shared and bool(info.soname) and info.libpython.is_file()


def stub_interpreter(python: str | os.PathLike[str] | None = None, system_dir: str = "/usr/bin") -> tuple[Interpreter, str]:
    """The interpreter whose libpython and standard library the stub will use, and why it was chosen.

    The project's own (base) interpreter when it has a shared libpython; else ``<system_dir>/python3.X`` of the
    same minor version if that one has; else :class:`ServingError` explaining trap 1 and the way out."""
    own = interpreter_info(python)
    if hosts_stub(own):
        return own, f"the project's Python {own.version} ({own.executable}) has its shared library {own.libpython}"
    system = Path(system_dir) / f"python{own.version}"
    if system.is_file():
        other = interpreter_info(system)
        if other.version == own.version and hosts_stub(other):
            return other, (f"the project's Python ({own.executable}) has no shared libpython, so the system's "
                           f"{system} (same minor version, {other.libpython}) hosts the stub")
    raise ServingError(
        f"triton: the Python-backend stub links libpython{own.version}.so.1.0, but this Python ({own.executable}) was "
        f"built without a shared library (Py_ENABLE_SHARED={int(own.shared)}) and no {system} with one exists. Another "
        f"build's libpython would meet this Python's standard library and fail (\"'_thread.RLock' object has no "
        f"attribute '_recursion_count'\") or be missing (\"libpython{own.version}.so.1.0: cannot open shared object "
        "file\"). Make the environment from a Python with a shared library: PYTHON=/usr/bin/python3.X bash "
        "environment/setup.sh run (Debian/Ubuntu: apt-get install python3.X-dev), or pyenv with "
        "PYTHON_CONFIGURE_OPTS=--enable-shared.")


def project_site_dirs() -> list[str]:
    """The running environment's site-packages folders (purelib and platlib, once each)."""
    paths = sysconfig.get_paths()
    return list(dict.fromkeys(p for p in (paths["purelib"], paths["platlib"]) if p and Path(p).is_dir()))


def default_numpy_site(home: str | os.PathLike[str] | None = None) -> Path:
    """``<home>/stub-site``: the numpy 1.x folder environment/setup.sh installs for the stub."""
    return (Path(home).expanduser() if home else default_home()) / "stub-site"


def path_dirs() -> list[str]:
    """Folders this process imports from besides site-packages: ``PYTHONPATH`` entries and the folder holding the
    ``helpers`` package (a GPU run may bring both through ``PYTHONPATH``, which the stub ignores)."""
    import helpers

    dirs = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).is_dir()]
    dirs.append(str(Path(helpers.__file__).resolve().parents[1]))
    return list(dict.fromkeys(str(Path(d).resolve()) for d in dirs))


def make_stub_env(dest: str | os.PathLike[str], interpreter: Interpreter, numpy_site: Path | None,
                  site_dirs: list[str], extra_dirs: list[str] = ()) -> Path:
    """A virtual environment (no pip) on ``interpreter`` whose ``.pth`` adds ``numpy_site``, then ``extra_dirs``
    (plain folders), then ``site_dirs`` (as site folders, so their own ``.pth`` files, e.g. editable installs, work)."""
    dest = Path(dest)
    shutil.rmtree(dest, ignore_errors=True)
    proc = subprocess.run([interpreter.executable, "-m", "venv", "--without-pip", str(dest)], capture_output=True,
                          text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise ServingError(f"triton: could not create the stub's environment with {interpreter.executable} -m venv "
                           f"({proc.stderr.strip()[-300:]}); on Debian/Ubuntu: apt-get install python{interpreter.version}-venv.")
    site = dest / "lib" / f"python{interpreter.version}" / "site-packages"
    lines = ([str(numpy_site)] if numpy_site else []) + list(extra_dirs)
    lines += [f"import site; site.addsitedir({d!r})" for d in site_dirs]
    (site / "series-project.pth").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dest


_CHECK = ("import json, numpy, onnxruntime; import helpers.serving.model; "
          "print(json.dumps({'numpy': numpy.__version__, 'numpy_file': numpy.__file__, 'onnxruntime': onnxruntime.__version__}))")


def check_stub_env(env_dir: Path, numpy_site: Path | None) -> dict[str, str]:
    """Import what a served model needs inside the stub's environment; numpy must be 1.x (trap 2)."""
    python = env_dir / "bin" / "python3"
    proc = subprocess.run([str(python), "-c", _CHECK], capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise ServingError(f"triton: the stub's Python cannot import what the served model needs: "
                           f"{proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}. {SETUP_HINT}.")
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    if int(found["numpy"].split(".")[0]) >= 2:
        raise ServingError(
            f"triton: the stub's Python would use numpy {found['numpy']} ({found['numpy_file']}). The Python-backend stub "
            "of this Triton release reads numpy 1.x arrays only: with numpy 2 a text request arrives garbled and the "
            f"stub dies. Install numpy 1.26 into its private folder: pip install --no-deps --target {numpy_site or default_numpy_site()} "
            "numpy==1.26.4 (environment/setup.sh does this), or pass numpy_site= to a folder that has it.")
    return found


def resolved_libpython(stub: Path, env: dict[str, str], soname: str) -> str | None:
    """Where the dynamic loader finds ``soname`` for ``stub`` under ``env`` (from ``ldd``); None if ldd is absent."""
    if shutil.which("ldd") is None:
        return None
    proc = subprocess.run(["ldd", str(stub)], capture_output=True, text=True, env=env, timeout=60, check=False)
    match = re.search(rf"^\s*{re.escape(soname)}\s*=>\s*(.+?)(\s+\(0x[0-9a-f]+\))?\s*$", proc.stdout, flags=re.MULTILINE)
    return match.group(1) if match else "not found"


@dataclass
class PreparedRuntime:
    """Everything a server start needs: binary, backend folder, process environment, and a report."""

    install: TritonInstall
    backends: Path
    env: dict[str, str]
    report: dict[str, str] = field(default_factory=dict)


def prepare_runtime(workdir: str | os.PathLike[str], home: str | os.PathLike[str] | None = None,
                    numpy_site: str | os.PathLike[str] | None = None, python: str | None = None) -> PreparedRuntime:
    """Set up ``workdir`` (backend folder with the right stub, the stub's environment) and check both traps."""
    workdir = Path(workdir)
    install = find_triton(home)
    interpreter, why = stub_interpreter(python)
    backends = workdir / "backends"
    shutil.rmtree(backends, ignore_errors=True)
    shutil.copytree(install.python_backend, backends / "python",
                    ignore=shutil.ignore_patterns(STUB_NAME) if install.stubs else None)
    stub = backends / "python" / STUB_NAME
    if install.stubs is not None:
        shutil.copy2(install.stub_for(interpreter.version), stub)
    site_numpy = Path(numpy_site).expanduser() if numpy_site else default_numpy_site(home)
    env_dir = make_stub_env(workdir / "stub-env", interpreter, site_numpy if site_numpy.is_dir() else None,
                            project_site_dirs(), path_dirs())
    found = check_stub_env(env_dir, site_numpy)
    env = dict(os.environ)
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    lib_path = [interpreter.libdir] + ([str(install.libs)] if install.libs else [])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(lib_path + ([env["LD_LIBRARY_PATH"]] if env.get("LD_LIBRARY_PATH") else []))
    env.pop("PYTHONHOME", None)
    loaded = resolved_libpython(stub, env, interpreter.soname)
    if loaded is not None and (loaded == "not found" or Path(loaded).resolve() != interpreter.libpython.resolve()):
        raise ServingError(f"triton: the stub's {interpreter.soname} resolves to {loaded!r}, not {interpreter.libpython} (trap 1: "
                           "another Python build's library, or none); check LD_LIBRARY_PATH and the interpreter of the environment.")
    report = {"server": str(install.server), "source": install.source, "stub": f"{install.stub_for(interpreter.version)}",
              "stub python": f"{interpreter.executable} ({interpreter.version})", "why this python": why,
              "libpython loaded": loaded or f"{interpreter.libpython} (ldd not available to confirm)",
              "stub numpy": f"{found['numpy']} ({found['numpy_file']})", "stub onnxruntime": found["onnxruntime"]}
    return PreparedRuntime(install, backends, env, report)
