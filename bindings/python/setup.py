"""bindings/python/setup.py - installs the spiketalk package with Debian's
python3-setuptools alone (offline: no pyproject.toml, so pip builds it in
place without fetching a build backend):

    make && /usr/bin/python3 -m pip install bindings/python

It copies the built libspiketalk.so into the package ($SPIKETALK_LIB, else
the checkout's build/libspiketalk.so), where spiketalk/_lib.py looks first
after $SPIKETALK_LIB. Without a built library the package still installs
(spiketalk.wire and spiketalk.stage need none) and says so.
"""
import os
import shutil
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class build_py_with_lib(build_py):
    def run(self):
        build_py.run(self)
        src = os.environ.get("SPIKETALK_LIB") or os.path.join(HERE, "..", "..", "build",
                                                             "libspiketalk.so")
        dst = os.path.join(self.build_lib, "spiketalk", "libspiketalk.so")
        if os.path.exists(src):
            shutil.copyfile(src, dst)
            os.chmod(dst, 0o755)
        else:
            sys.stderr.write("spiketalk: %s is absent (run `make` first, or set SPIKETALK_LIB); "
                             "installing without it\n" % os.path.normpath(src))


setup(
    name="spiketalk",
    version="0.1.0",
    description="Python bindings over libspiketalk: spiking networks, recognizer, language "
                "model, synthesizer, and pipeline stages in Python",
    packages=["spiketalk"],
    python_requires=">=3.9",
    # numpy, cffi and (for stages) zmq come from Debian (python3-numpy,
    # python3-cffi, python3-zmq): not declared, so that pip never goes to an index
    cmdclass={"build_py": build_py_with_lib},
    zip_safe=False,
)
