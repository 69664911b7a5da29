#!/usr/bin/env bash
# ./build.sh test   builds everything and runs every test (ctest)
# ./build.sh demo   builds and runs the main demo (MLP on Fashion-MNIST; table, CSV and PNG
#                   in $BUILD_DIR/demo)
# ./build.sh python builds the Python module into $BUILD_DIR/python (PYTHONPATH=build/python
#                   /usr/bin/python3 -c "import multopt.torch"); docs/pytorch.md
# Installs the Debian packages it needs when run as root; otherwise prints the apt-get line.
# Environment: CXX (compiler), BUILD_DIR (default build), CMAKE_ARGS (extra cmake arguments).
set -euo pipefail
cd "$(dirname "$0")"

job=${1:-}
case "$job" in
  test|demo|python) ;;
  *) echo "usage: ./build.sh test|demo|python" >&2; exit 2 ;;
esac

packages=(cmake make g++ libeigen3-dev catch2 libbenchmark-dev zlib1g-dev)
[[ "${CXX:-}" == *clang* ]] && packages+=(clang libomp-dev libclang-rt-dev)  # runtimes of the sanitizers and libFuzzer
[[ $job == test ]] && packages+=(openmpi-bin libopenmpi-dev)  # tests/mpi, run under mpiexec
# The libtorch adapter and the Python module (MULTOPT_TORCH; the CI's clang++ job turns it off).
if [[ $job == python || ($job == test && " ${CMAKE_ARGS:-} " != *" -DMULTOPT_TORCH=OFF "*) ]]; then
  packages+=(libtorch-dev python3-torch pybind11-dev python3-dev python3-pytest)
fi
if [[ $job == demo ]]; then
  packages+=(dataset-fashion-mnist)
  # Any gnuplot with the pngcairo terminal will do; gnuplot-nox is the one without X11.
  command -v gnuplot >/dev/null || packages+=(gnuplot-nox)
fi
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
# shellcheck disable=SC2086  # CMAKE_ARGS is a list of arguments
torch=()
[[ $job == python ]] && torch=(-DMULTOPT_TORCH=ON)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} "${torch[@]}"

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
