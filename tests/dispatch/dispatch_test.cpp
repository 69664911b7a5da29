// Run-time dispatch (dispatch.hpp): each kernel this CPU runs is the one that steps when forced,
// the kernels agree within the rounding of fused multiply-adds, and one kernel's results are
// bit-identical at any thread count.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <multopt/multopt.hpp>

namespace {

template <class Opt, class S>
std::vector<S> trajectory(std::size_t size, int threads, int steps) {
  std::vector<S> theta(size), grad(size);
  for (std::size_t i = 0; i < size; ++i) theta[i] = S(0.5 + 0.25 * std::sin(double(i)));
  Opt opt;
  multopt::ThreadSettings threading;
  threading.threads = threads;
  threading.serial_below = 1;
  threading.chunk = 1000;  // not a multiple of AVX-512's 16 floats: chunks are cut wider (chunks.hpp)
  opt.set_thread_settings(threading);
  opt.add_params(theta.data(), grad.data(), size);
  for (int step = 0; step < steps; ++step) {
    for (std::size_t i = 0; i < size; ++i) grad[i] = S(std::cos(double(i) * 0.37 + step) * 0.1);
    opt.step();
  }
  return theta;
}

std::vector<multopt::Kernel> runnable_kernels() {
  std::vector<multopt::Kernel> kernels;
  for (int k = 0; k < multopt::kernel_count; ++k)
    if (multopt::kernel_supported(multopt::Kernel(k))) kernels.push_back(multopt::Kernel(k));
  return kernels;
}

template <class Opt, class S>
void check_kernels(double tolerance) {
  const std::size_t size = (1u << 15) + 13;  // chunks for 4 threads, and a tail
  const std::vector<S> reference = [&] {
    multopt::force_kernel(multopt::Kernel(0));
    return trajectory<Opt, S>(size, 1, 20);
  }();
  for (multopt::Kernel kernel : runnable_kernels()) {
    INFO("kernel " << multopt::kernel_name(kernel));
    multopt::force_kernel(kernel);
    CHECK(multopt::active_kernel() == kernel);
    const std::vector<S> serial = trajectory<Opt, S>(size, 1, 20);
    const std::vector<S> parallel = trajectory<Opt, S>(size, 4, 20);
    CHECK(std::memcmp(serial.data(), parallel.data(), size * sizeof(S)) == 0);
    double worst = 0;
    for (std::size_t i = 0; i < size; ++i)
      worst = std::max(worst, std::abs(double(serial[i]) - double(reference[i])) / std::abs(double(reference[i])));
    CHECK(worst <= tolerance);
  }
}

}  // namespace

TEST_CASE("dispatch: every kernel the CPU runs agrees with the baseline, bit for bit across threads", "[dispatch]") {
  check_kernels<multopt::MAdam<float>, float>(1e-5);
  check_kernels<multopt::HSGD<float>, float>(1e-5);
  check_kernels<multopt::Adam<double>, double>(1e-13);
  check_kernels<multopt::MAdam<double>, double>(1e-13);
  check_kernels<multopt::MAdam<Eigen::bfloat16>, Eigen::bfloat16>(1e-2);
}

// The kernel that steps is the forced one's function, multopt::kernels::<set>::step_chunk, which
// only that set's file defines; that file checks at compile time that its packets have the set's
// width (dispatch.hpp), and dispatch.symbols.<set> that it shares no code with the others.
TEST_CASE("dispatch: a forced kernel is the one that steps", "[dispatch]") {
  using Base = multopt::bases::Adam;
  using Rule = multopt::rules::Multiplicative;
  const multopt::detail::ChunkStep compiled[] = {
#define KERNEL_OF_SET(isa, width) &multopt::kernels::isa::step_chunk<Base, Rule, double>,
      MULTOPT_KERNEL_LIST(KERNEL_OF_SET)
#undef KERNEL_OF_SET
  };
  for (multopt::Kernel kernel : runnable_kernels()) {
    INFO("kernel " << multopt::kernel_name(kernel));
    multopt::force_kernel(kernel);
    CHECK(std::string(multopt::kernel_name(multopt::active_kernel())) == multopt::kernel_name(kernel));
    CHECK(multopt::detail::chunk_kernel<Base, Rule, double>() == compiled[int(kernel)]);
  }
}

TEST_CASE("dispatch: a kernel is named, and one this CPU cannot run is refused", "[dispatch]") {
  CHECK(multopt::kernel_named(multopt::kernel_name(multopt::Kernel(0))) == multopt::Kernel(0));
  CHECK_THROWS_AS(multopt::kernel_named("sse9"), std::invalid_argument);
  for (int k = 0; k < multopt::kernel_count; ++k)
    if (!multopt::kernel_supported(multopt::Kernel(k)))
      CHECK_THROWS_AS(multopt::force_kernel(multopt::Kernel(k)), std::invalid_argument);
}
