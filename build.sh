#!/usr/bin/env bash
# The README's quick start, in this order, in one build folder:
# ./build.sh demo   builds and runs the main demo (MLP on Fashion-MNIST; table, CSV and PNG
#                   in $BUILD_DIR/demo)
# ./build.sh test   builds everything and runs every test (ctest), the optional parts included:
#                   the MPI tests (MULTOPT_MPI) and the libtorch adapter's test and the Python
#                   module's tests (MULTOPT_TORCH). It fails, naming the part, when one of them
#                   cannot be built, unless CMAKE_ARGS turns it off (-DMULTOPT_MPI=OFF,
#                   -DMULTOPT_TORCH=OFF); a build folder configured before their packages were
#                   installed (by ./build.sh demo, say) is configured again with them.
# ./build.sh python builds the Python module into $BUILD_DIR/python (PYTHONPATH=build/python
#                   /usr/bin/python3 -c "import multopt.torch"); to install it with pip instead,
#                   see setup.py; docs/pytorch.md
# Installs the Debian packages it needs when run as root; otherwise prints the apt-get line.
# Environment: CXX (compiler), BUILD_DIR (default build), CMAKE_ARGS (extra cmake arguments,
# after build.sh's own: a -D given there wins); CONFIGURE_ONLY=1 configures the build folder as
# the job would and checks its parts, then stops: no packages installed, nothing built
# (tests/parts_detection.sh).
set -euo pipefail
cd "$(dirname "$0")"

job=${1:-}
case "$job" in
  test|demo|python) ;;
  *) echo "usage: ./build.sh test|demo|python" >&2; exit 2 ;;
esac

# The value CMAKE_ARGS gives a CMake variable with -DNAME=VALUE or -DNAME:TYPE=VALUE (the last
# one, as for cmake), or nothing; and whether a value is one of CMake's false constants.
cmake_arg() {
  local arg value=""
  for arg in ${CMAKE_ARGS:-}; do
    [[ $arg =~ ^-D$1(:[A-Za-z]+)?=(.*)$ ]] && value=${BASH_REMATCH[2]}
  done
  echo "$value"
}
is_off() { [[ ${1^^} =~ ^(OFF|NO|FALSE|N|0)$ ]]; }
mpi_off=false torch_off=false
is_off "$(cmake_arg MULTOPT_MPI)" && mpi_off=true
is_off "$(cmake_arg MULTOPT_TORCH)" && torch_off=true

packages=(cmake make g++ libeigen3-dev catch2 libbenchmark-dev zlib1g-dev)
[[ "${CXX:-}" == *clang* ]] && packages+=(clang libomp-dev libclang-rt-dev)  # runtimes of the sanitizers and libFuzzer
[[ $job == test && $mpi_off == false ]] && packages+=(openmpi-bin libopenmpi-dev)  # tests/mpi, run under mpiexec
# The libtorch adapter and the Python module (MULTOPT_TORCH; the CI's clang++ job turns it off).
if [[ $job == python || ($job == test && $torch_off == false) ]]; then
  packages+=(libtorch-dev python3-torch pybind11-dev python3-dev python3-pytest)
fi
# The README's pip line after ./build.sh python (setup.py): a virtual environment and pip.
[[ $job == python ]] && packages+=(python3-venv python3-pip)
if [[ $job == demo ]]; then
  packages+=(dataset-fashion-mnist)
  # Any gnuplot with the pngcairo terminal will do; gnuplot-nox is the one without X11.
  command -v gnuplot >/dev/null || packages+=(gnuplot-nox)
fi
[[ ${CONFIGURE_ONLY:-} == 1 ]] && packages=()
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "multopt needs these Debian packages; run:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

build=${BUILD_DIR:-build}
# ./build.sh test requires every part (ON: CMake fails, naming each part it cannot build) unless
# CMAKE_ARGS, which comes after, turns it off; ./build.sh python requires the module. The demo
# leaves them at what the folder has (AUTO at first: built if found, looked for at each configure).
parts=()
[[ $job == test ]] && parts=(-DMULTOPT_MPI=ON -DMULTOPT_TORCH=ON)
[[ $job == python ]] && parts=(-DMULTOPT_TORCH=ON)
# shellcheck disable=SC2086  # CMAKE_ARGS is a list of arguments
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "${parts[@]}" ${CMAKE_ARGS:-}

if [[ $job == test ]]; then
  # No part left out unnoticed: each one not turned off must have its tests in ctest's list.
  listed=$(ctest --test-dir "$build" -N 2>/dev/null | grep -E '^ *Test +#') || true
  setting() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt"; }
  failed=false
  check_part() {  # setting, a test that the part adds, what the part is
    is_off "$(setting "$1")" && return 0
    grep -qE "Test +#[0-9]+: ${2//./\\.}\$" <<<"$listed" && return 0
    echo "build.sh test: $3 not built in $build (ctest -N lists no $2); -D$1=OFF in CMAKE_ARGS leaves it out" >&2
    failed=true
  }
  check_part MULTOPT_MPI mpi.sharded.np2 "the MPI tests:"
  check_part MULTOPT_TORCH torch.adapter "the libtorch adapter's test:"
  check_part MULTOPT_TORCH python.pytest "the Python module's tests:"
  [[ $failed == false ]] || exit 1
fi
[[ ${CONFIGURE_ONLY:-} == 1 ]] && exit 0

if [[ $job == test ]]; then
  cmake --build "$build" -j "$(nproc)"
  ctest --test-dir "$build" --output-on-failure -j "$(nproc)"
elif [[ $job == python ]]; then
  cmake --build "$build" -j "$(nproc)" --target _multopt
else
  # Only the demo's program: the tests and benchmarks would take minutes more to compile.
  cmake --build "$build" -j "$(nproc)" --target fashion_mnist
  "$build/examples/fashion_mnist" --out "$build/demo"
fi
