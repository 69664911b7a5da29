"""pip install of the Python module multopt (docs/pytorch.md), offline, with Debian's Python:

    /usr/bin/python3 -m venv --system-site-packages env
    env/bin/python -m pip install --no-build-isolation --no-deps .
    env/bin/python -c "import multopt.torch"

The virtual environment sees Debian's torch (--system-site-packages) and spares pip's
--break-system-packages, without which Debian 12's pip refuses to install beside Debian's own
packages (`/usr/bin/python3 -m pip install --target DIR ...`, then PYTHONPATH=DIR, works too).
Debian 12's packages: python3-venv, python3-pip (with python3-setuptools and python3-wheel) and
those of the extension: libtorch-dev, python3-torch, pybind11-dev, python3-dev.
--no-build-isolation: pip uses these instead of downloading setuptools and wheel; --no-deps: it
does not look for torch on PyPI. The extension _multopt is built by CMake (the target _multopt,
MULTOPT_TORCH=ON, for the Python that runs pip) in build-pip/; nothing is downloaded.

The module is compiled for the CPU that builds it (-march=native), as a source install runs
where it is built. MULTOPT_PORTABLE=1 in the environment builds it for any x86-64 instead, with
the step's kernels compiled per instruction set and chosen at run time (-DMULTOPT_NATIVE=OFF):
what a wheel for other machines needs.
"""

import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.join(ROOT, "build-pip")


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        cmake = os.path.join(BUILD, "cmake")
        native = "OFF" if os.environ.get("MULTOPT_PORTABLE", "0") not in ("", "0") else "ON"
        subprocess.check_call(["cmake", "-S", ROOT, "-B", cmake, "-DCMAKE_BUILD_TYPE=Release", "-DMULTOPT_TORCH=ON",
                               "-DMULTOPT_NATIVE=" + native,
                               "-DMULTOPT_BUILD_TESTS=OFF", "-DMULTOPT_BUILD_BENCHMARKS=OFF",
                               "-DMULTOPT_BUILD_EXAMPLES=OFF", "-DMULTOPT_BUILD_TOOLS=OFF",
                               "-DPython_EXECUTABLE=" + sys.executable])
        subprocess.check_call(["cmake", "--build", cmake, "--target", "_multopt", "-j", str(os.cpu_count() or 1)])
        target = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy(os.path.join(cmake, "python", "multopt", os.path.basename(target)), target)


os.makedirs(BUILD, exist_ok=True)  # egg_info writes there first
setup(
    name="multopt",
    version="0.1.0",
    description="Multiplicative and hybrid update rules for any optimizer, inside PyTorch",
    packages=["multopt"],
    package_dir={"": "python"},
    ext_modules=[Extension("multopt._multopt", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
    options={"build": {"build_base": BUILD}, "egg_info": {"egg_base": BUILD}},
)
