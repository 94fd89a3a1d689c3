"""bindings/python/tests/conftest.py - what every pytest file of the bindings
shares: the checkout's paths, the spiketalk tool ($ST_CLI, else
build/spiketalk), ../shared/data when present, a runner for the tool.

The tests import the package from this checkout (bindings/python), and the
library from $SPIKETALK_LIB or the build tree; they write only under
pytest's tmp_path and leave nothing behind in the tree.
"""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_ROOT = os.path.dirname(HERE)                       # bindings/python
REPO = os.path.normpath(os.path.join(PKG_ROOT, "..", ".."))
sys.path.insert(0, PKG_ROOT)

SHARED = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))


def _session_library():
    """A private copy of the library for the whole run (removed at exit), so
    that a concurrent `make` relinking build/libspiketalk.so on this shared
    machine cannot hand a half-written file to a test or to its subprocesses
    (which inherit SPIKETALK_LIB)."""
    import atexit
    import ctypes
    import shutil
    import tempfile
    import time
    src = os.environ.get("SPIKETALK_LIB") or os.path.join(REPO, "build", "libspiketalk.so")
    if not os.path.exists(src):
        return  # the package reports it, naming where it looked
    d = tempfile.mkdtemp(prefix="spiketalk-pytest-")
    atexit.register(shutil.rmtree, d, True)
    dst = os.path.join(d, "libspiketalk.so")
    for _ in range(40):
        try:
            shutil.copyfile(src, dst)
            ctypes.CDLL(dst)      # a complete library loads
            break
        except OSError:
            time.sleep(0.5)
    os.environ["SPIKETALK_LIB"] = dst


_session_library()


def cli_path():
    p = os.environ.get("ST_CLI") or os.path.join("build", "spiketalk")
    return p if os.path.isabs(p) else os.path.join(REPO, p)


def popen(argv, **kw):
    """subprocess.Popen that waits out a tool being relinked by a concurrent
    `make` (ETXTBSY, EACCES) for up to 20 s: the machine is shared."""
    import errno
    import time
    for _ in range(40):
        try:
            return subprocess.Popen(argv, **kw)
        except OSError as e:
            if e.errno not in (errno.ETXTBSY, errno.EACCES):
                raise
            time.sleep(0.5)
    return subprocess.Popen(argv, **kw)


def run_cli(*args, input=None, check=True, timeout=60):
    """Runs the spiketalk tool from the checkout's root; returns stdout."""
    p = popen([cli_path()] + [str(a) for a in args], cwd=REPO, text=True,
              stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(input, timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    r = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    if check and r.returncode != 0:
        raise AssertionError("spiketalk %s failed (%d): %s" % (" ".join(map(str, args)),
                                                              r.returncode, r.stderr))
    return r.stdout


def shared(*parts):
    """A path under ../shared/data, or a pytest skip naming what is missing."""
    p = os.path.join(SHARED, *parts)
    if not os.path.exists(p):
        pytest.skip("SKIPPED: %s is absent (../shared/data)" % p)
    return p


def parse_csv(text):
    """A CSV the tool printed -> (header names, rows of floats)."""
    import numpy as np
    lines = [l for l in text.splitlines() if l.strip()]
    return lines[0].split(","), np.array([[float(x) for x in l.split(",")] for l in lines[1:]],
                                         dtype=np.float64)


@pytest.fixture
def fixtures():
    return os.path.join(REPO, "tests", "fixtures")
