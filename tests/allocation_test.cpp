// The hot path allocates nothing: after a tensor's first step, step() makes no allocation
// through operator new, and an allocation that fails in a step throws std::bad_alloc before any
// parameter or step count changes. This file replaces the global operator new of the test
// program with one that counts, and can be made to fail, while a test asks it to.
//
// AddressSanitizer brings its own operator new, and memory of one allocator freed by the other
// is reported as an error: under it this file compiles to nothing (the g++ job of CI runs
// these tests).
#include "test_support.hpp"

#ifndef MULTOPT_TEST_UNDER_ASAN

#include <atomic>
#include <cstdlib>
#include <limits>
#include <new>
#include <vector>

namespace {

std::atomic<long> g_allocations{0};
std::atomic<bool> g_counting{false};
std::atomic<long> g_allowed{std::numeric_limits<long>::max()};

// Counts the allocations of a scope; with `fail`, every allocation in it throws; with
// `fail_after` = n, every one after the first n.
class AllocationWatch {
 public:
  explicit AllocationWatch(bool fail = false) : AllocationWatch(fail ? 0 : std::numeric_limits<long>::max()) {}
  explicit AllocationWatch(long fail_after) {
    g_allocations = 0;
    g_allowed = fail_after;
    g_counting = true;
  }
  ~AllocationWatch() {
    g_counting = false;
    g_allowed = std::numeric_limits<long>::max();
  }
  AllocationWatch(const AllocationWatch&) = delete;
  AllocationWatch& operator=(const AllocationWatch&) = delete;
  long count() const { return g_allocations; }
};

}  // namespace

// GCC warns that the replacement operator delete frees what "operator new" returned, not seeing
// that the replacement operator new is malloc.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {
void count_allocation() {
  if (g_counting && ++g_allocations > g_allowed) throw std::bad_alloc();
}
}  // namespace

void* operator new(std::size_t size) {
  count_allocation();
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
// The aligned forms, which the optimizer's state arrays use (state_array.hpp).
void* operator new(std::size_t size, std::align_val_t alignment) {
  count_allocation();
  const auto align = static_cast<std::size_t>(alignment);
  if (void* p = std::aligned_alloc(align, (size + align - 1) / align * align)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

TEMPLATE_LIST_TEST_CASE("after the first step, step() allocates nothing, serial or threaded", "[allocation]",
                        test::EveryOptimizer<float>) {
  using Opt = TestType;
  Opt opt = test::make<Opt>(test::stateful_hyper<typename Opt::Hyper>());
  opt.set_non_finite_policy(multopt::NonFinitePolicy::skip);
  std::vector<std::vector<float>> params, grads;
  for (std::size_t size : {std::size_t(3), std::size_t(1000), std::size_t(70000)}) {
    params.emplace_back(size, 0.5f);
    grads.emplace_back(size, 0.25f);
  }
  for (std::size_t k = 0; k < params.size(); ++k) opt.add_params(params[k].data(), grads[k].data(), params[k].size());
  for (const int threads : {1, 2}) {
    opt.set_thread_settings(test::threaded(threads));
    opt.step();  // plans the work list for these settings
    grads[1][7] = std::numeric_limits<float>::quiet_NaN();  // a skipped tensor costs nothing either
    long allocations = 0;
    {
      AllocationWatch watch;
      for (int k = 0; k < 3; ++k) opt.step();
      allocations = watch.count();
    }
    CHECK(allocations == 0);
    CHECK(opt.skipped_tensors() == std::vector<std::size_t>{1});
    grads[1][7] = 0.25f;
  }
}

TEST_CASE("a failed allocation in step() throws std::bad_alloc and changes nothing", "[allocation]") {
  multopt::HAdam<double> opt, reference;
  std::vector<double> param(37, 1.5), grad(37, 0.5), reference_param = param;
  opt.add_params(param.data(), grad.data(), param.size());
  reference.add_params(reference_param.data(), grad.data(), reference_param.size());
  bool threw = false;
  {
    AllocationWatch failing(/*fail=*/true);  // no Catch2 macro inside: they may allocate too
    try {
      opt.step();
    } catch (const std::bad_alloc&) {
      threw = true;
    }
  }
  REQUIRE(threw);
  CHECK(param == std::vector<double>(37, 1.5));
  CHECK(opt.step_count(0) == 0);
  CHECK(opt.state(0, 0) == nullptr);
  for (int k = 0; k < 3; ++k) {
    opt.step();
    reference.step();
  }
  CHECK(test::same_bits(param, reference_param));
}

// A step allocates the new state of every tensor before it changes any: a failure on a later
// tensor leaves the earlier ones as they were, down to an AMSGrad running max that the step would
// free now that amsgrad is off.
TEST_CASE("an allocation that fails midway through a step changes no tensor's state", "[allocation]") {
  multopt::Adam<double> opt(multopt::arg::amsgrad = true);
  std::vector<double> a(40, 1.0), ga(40, 0.5), b(3000, 1.0), gb(3000, 0.25);
  opt.add_params(a.data(), ga.data(), a.size());
  opt.step();
  opt.step();
  opt.set("amsgrad", 0.0);
  opt.add_params(b.data(), gb.data(), b.size());
  const auto running_max = test::state_copy(opt, 0, 2), first_moment = test::state_copy(opt, 0, 0);
  const auto a_before = a;
  REQUIRE(running_max.size() == 40);
  int failures = 0;
  for (long allowed = 0;; ++allowed) {
    bool threw = false;
    {
      AllocationWatch watch(allowed);
      try {
        opt.step();
      } catch (const std::bad_alloc&) {
        threw = true;
      }
    }
    if (!threw) break;
    ++failures;
    INFO("failing after " << allowed << " allocations");
    CHECK(test::same_bits(test::state_copy(opt, 0, 2), running_max));
    CHECK(test::same_bits(test::state_copy(opt, 0, 0), first_moment));
    CHECK(opt.state(1, 0) == nullptr);
    CHECK(opt.step_count(0) == 2);
    CHECK(opt.step_count(1) == 0);
    CHECK(test::same_bits(a, a_before));
  }
  CHECK(failures >= 3);  // the plan, and each of tensor 1's two arrays
  CHECK(opt.state(0, 2) == nullptr);  // freed by the step that succeeded
  CHECK(opt.step_count(1) == 1);
}

#endif  // MULTOPT_TEST_UNDER_ASAN
