"""bindings/python/tests/test_package.py - the package itself: the exception
hierarchy, finding the library (or saying where it looked), the protocol
modules working without it, and `pip install` offline putting the library
next to the package."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import PKG_ROOT, REPO

import spiketalk
from spiketalk import errors


def run_py(code, env=None, cwd=None):
    e = dict(os.environ, PYTHONPATH=PKG_ROOT)
    e.update(env or {})
    for k, v in list(e.items()):
        if v is None:
            del e[k]
    return subprocess.run([sys.executable, "-c", code], env=e, cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=60)


def test_hierarchy():
    for code, cls, py in [(errors.NOMEM, spiketalk.NoMemoryError, MemoryError),
                          (errors.INVALID, spiketalk.InvalidError, ValueError),
                          (errors.IO, spiketalk.IOError, OSError),
                          (errors.FORMAT, spiketalk.FormatError, ValueError),
                          (errors.NOT_FOUND, spiketalk.NotFoundError, LookupError)]:
        e = errors.from_code(code, "where: what")
        assert type(e) is cls and isinstance(e, spiketalk.SpikeTalkError) and isinstance(e, py)
        assert e.code == code and str(e) == "where: what"
    for code in range(-11, 0):
        assert errors.from_code(code, "x").code == code
    # the C message and the code travel together
    with pytest.raises(spiketalk.IOError) as e:
        spiketalk.Net.load(REPO)                        # a folder, not a file
    assert e.value.code == errors.IO and REPO in str(e.value)


def test_library_search(monkeypatch):
    from spiketalk import _lib
    monkeypatch.delenv("SPIKETALK_LIB")
    c = _lib._candidates()
    assert c[0] == os.path.join(PKG_ROOT, "spiketalk", "libspiketalk.so")    # installed
    assert os.path.samefile(c[1], os.path.join(REPO, "build", "libspiketalk.so"))  # in place
    assert c[2] == "libspiketalk.so"                                          # the system's
    monkeypatch.setenv("SPIKETALK_LIB", "/x/lib.so")
    assert _lib._candidates() == ["/x/lib.so"]
    r = run_py("import spiketalk; spiketalk.Neurons('lif')",
               env={"SPIKETALK_LIB": "/nonexistent/libspiketalk.so"})
    assert r.returncode != 0 and "NotFoundError" in r.stderr
    assert "/nonexistent/libspiketalk.so" in r.stderr and "SPIKETALK_LIB" in r.stderr


def test_protocol_modules_need_no_library():
    r = run_py("import sys, spiketalk.stage, spiketalk.wire; "
               "print('spiketalk._lib' in sys.modules, 'cffi' in sys.modules)",
               env={"SPIKETALK_LIB": "/nonexistent/libspiketalk.so"})
    assert r.returncode == 0 and r.stdout.split() == ["False", "False"]


def test_pip_install_offline(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(PKG_ROOT, src, ignore=shutil.ignore_patterns(
        "tests", "build", "*.egg-info", "__pycache__", "libspiketalk.so"))
    target = tmp_path / "site"
    lib = os.environ["SPIKETALK_LIB"]     # conftest's copy of the build's library
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--quiet",
                        "--disable-pip-version-check", "--target", str(target), str(src)],
                       env=dict(os.environ, SPIKETALK_LIB=os.path.abspath(lib)),
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0 and "No module named pip" in r.stderr:
        pytest.skip("SKIPPED: %s has no pip (python3-pip)" % sys.executable)
    assert r.returncode == 0, r.stderr
    assert (target / "spiketalk" / "libspiketalk.so").exists()
    # from elsewhere, with no hint: the library beside the package is used
    r = run_py("import spiketalk; print(spiketalk.library_path()); "
               "print(spiketalk.Neurons('lif').step([2.0])[0])",
               env={"SPIKETALK_LIB": None, "PYTHONPATH": str(target)}, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    path, z = r.stdout.split()
    assert path == str(target / "spiketalk" / "libspiketalk.so") and z == "0.0"


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    pytest.skip("no /proc/self/status")


def test_objects_free_their_c_memory():
    import gc
    import numpy as np
    # each model holds ~1.6 MB of weights in C: 150 kept would be ~240 MB
    def churn(n, explicit):
        for k in range(n):
            m = spiketalk.LanguageModel.random(n_layer=2, n_embd=128, vocab=96, seed=k)
            s = m.new_state()
            s.feed([1, 2, 3])
            net = spiketalk.Net.from_bytes(open(os.path.join(REPO, "tests", "fixtures",
                                                             "snn_tiny_v1.stm"), "rb").read())
            net.new_state().run(np.zeros((5, 3), np.float32))
            if explicit:
                with m, net:
                    pass
            del m, s, net          # else: __del__ frees them
        gc.collect()
    churn(10, True)
    before = rss_kb()
    churn(75, True)
    churn(75, False)
    grown_mb = (rss_kb() - before) / 1024
    assert grown_mb < 60, "%.0f MB more after 150 models: C memory is not freed" % grown_mb
