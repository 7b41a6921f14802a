"""bindings/python/tests/test_packaging.py: the package as users install
it, without a VM: `pip install --no-build-isolation` offline with Debian's
python3-setuptools/python3-pip (into --target: Debian 12 marks its own
site-packages externally managed, PEP 668), and `cmake --install --prefix`,
after which the package finds libkatavm.so.1 where it was installed with no
KATAVM_LIBRARY and no LD_LIBRARY_PATH. Also: help(katavm) reads as a manual.
"""

import os
import shutil
import subprocess
import sys

import katavm
from kvpy import SRC

WORK = "/tmp/kvpy-pkg-%d" % os.getpid()
PY = "/usr/bin/python3"
PROBE = ("import katavm, sys; print(katavm.__file__); "
         "print(katavm.library_version()); "
         "print(katavm._lib.load()._name)")


def clean_env(**extra):
    e = {k: v for k, v in os.environ.items()
         if k not in ("KATAVM_LIBRARY", "PYTHONPATH", "LD_LIBRARY_PATH")}
    e.update(extra)
    return e


def setup_module():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)


def teardown_module():
    shutil.rmtree(WORK, ignore_errors=True)


def test_pip_install_offline():
    # A copy: pip builds in the tree it is given (build/, *.egg-info).
    src = os.path.join(WORK, "src")
    shutil.copytree(os.path.join(SRC, "bindings", "python"), src,
                    ignore=shutil.ignore_patterns("__pycache__", "tests"))
    target = os.path.join(WORK, "target")
    r = subprocess.run([PY, "-m", "pip", "install", "--no-build-isolation",
                        "--no-index", "--no-deps", "--no-cache-dir",
                        "--disable-pip-version-check", "--target", target, src],
                       capture_output=True, text=True, timeout=600,
                       env=clean_env(PIP_NO_INPUT="1"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert os.path.exists(os.path.join(target, "katavm", "py.typed"))
    libdir = os.path.dirname(os.environ["KATAVM_LIBRARY"])
    # No _buildcfg from pip: ld.so finds the soname (here through
    # LD_LIBRARY_PATH: the build tree is not in ld.so.cache).
    r = subprocess.run([PY, "-c", PROBE], capture_output=True, text=True,
                       env=clean_env(PYTHONPATH=target, LD_LIBRARY_PATH=libdir),
                       cwd=WORK)
    assert r.returncode == 0, r.stderr
    f, ver, name = r.stdout.split("\n")[:3]
    assert f.startswith(target + "/")
    assert ver == katavm.__version__
    assert name == "libkatavm.so.1"


def test_cmake_install_prefix():
    prefix = os.path.join(WORK, "prefix")
    build = os.environ["KATAVM_TEST_BUILD_DIR"]
    r = subprocess.run([os.environ.get("KATAVM_CMAKE", "cmake"), "--install",
                        build, "--prefix", prefix], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    pkgs = [os.path.join(d, "katavm") for d, _, files in os.walk(prefix)
            if "_buildcfg.py" in files for d in [os.path.dirname(d)]]
    assert len(pkgs) == 1, pkgs
    site = os.path.dirname(pkgs[0])
    r = subprocess.run([PY, "-c", PROBE], capture_output=True, text=True,
                       env=clean_env(PYTHONPATH=site), cwd=WORK)
    assert r.returncode == 0, r.stderr
    f, ver, name = r.stdout.split("\n")[:3]
    assert f == os.path.join(site, "katavm", "__init__.py")
    assert ver == katavm.__version__
    # Found by the path recorded at install time.
    assert os.path.realpath(name) == os.path.realpath(
        os.path.join(prefix, "lib", "libkatavm.so.1"))


def test_help_reads_as_a_manual():
    import pydoc
    text = pydoc.render_doc(katavm, renderer=pydoc.plaintext)
    for word in ("create_sandbox", "add_container", "popen", "communicate",
                 "hotplug_memory", "attach_disk", "ExecTimeout", "GIL",
                 "Lifetime rules", "list_sandboxes", "open_sandbox"):
        assert word in text, word
    # Every public name has a docstring, and so does every public method.
    for name in katavm.__all__:
        obj = getattr(katavm, name)
        if callable(obj):
            assert obj.__doc__, name
        if isinstance(obj, type):
            for attr, v in vars(obj).items():
                if not attr.startswith("_") and callable(v):
                    assert v.__doc__, "%s.%s" % (name, attr)
