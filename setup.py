"""pip install of the Python module multopt (docs/pytorch.md), offline, with Debian's Python:

    /usr/bin/python3 -m pip install --no-build-isolation --no-deps --break-system-packages .

(--break-system-packages: Debian 12's pip refuses to install beside Debian's packages without
it; --target DIR or a virtual environment made with --system-site-packages avoid it.) The
extension is built by CMake (the target _multopt, MULTOPT_TORCH=ON) in build-pip/; nothing is
downloaded.
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
        subprocess.check_call(["cmake", "-S", ROOT, "-B", cmake, "-DCMAKE_BUILD_TYPE=Release", "-DMULTOPT_TORCH=ON",
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
