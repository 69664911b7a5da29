// multopt_bench: which benchmarks run and under which names (every case of cases.hpp registered
// with Google Benchmark), and the program that runs them. The ratio summary printed at the end
// is ratio_summary.cpp's, the flags command_line.cpp's; docs/performance.md explains each.
//
//   multopt_bench [--threads=N|all] [Google Benchmark flags]
//
// Threads: --threads=N, else the environment variable MULTOPT_THREADS, else 1; "all" (or 0)
// means every core. Unless told otherwise it runs 5 repetitions in random order and reports
// their aggregates (--benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// --benchmark_enable_random_interleaving=true, each overridable).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <multopt/multopt.hpp>

#include "cases.hpp"
#include "command_line.hpp"
#include "names.hpp"
#include "ratio_summary.hpp"

#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace multopt_bench {
namespace {

using multopt::detail::scalar_name;

// ---------------------------------------------------------------------------------------------
// The current case is kept between the calls Google Benchmark makes for one benchmark in a row
// (iteration-count trials; repetitions too, unless they are interleaved), so that its arrays
// are not made again for each call, and it is freed before the next benchmark's: at most one
// benchmark's arrays (up to 1 GiB) are held at a time.

using Factory = std::function<std::unique_ptr<Case>()>;

std::unique_ptr<Case> g_case;
std::string g_case_name, g_case_problem;

Case& fixture(const std::string& name, const Factory& make) {
  if (!g_case || g_case_name != name) {
    g_case.reset();
    g_case_name.clear();
    g_case = make();
    g_case->run();  // warm-up: the optimizer allocates its state on its first step
    g_case_problem = g_case->check();
    g_case_name = name;
  }
  return *g_case;
}

void measure(benchmark::State& state, const std::string& name, std::size_t n, double bytes,
             const Factory& make) {
  Case& c = fixture(name, make);
  if (!g_case_problem.empty()) {
    state.SkipWithError(g_case_problem.c_str());
    return;
  }
  // The same interval as the benchmark's real time, timed here so that the counter is a plain
  // number of nanoseconds (an inverted rate counter would print with a unit of seconds).
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    c.run();
    benchmark::ClobberMemory();
  }
  const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  state.counters["ns_per_elem"] = benchmark::Counter(ns / double(n), benchmark::Counter::kAvgIterations);
  state.SetBytesProcessed(std::int64_t(double(state.iterations()) * bytes));
}

void add(const std::string& name, std::size_t n, double bytes, Factory make) {
  benchmark::RegisterBenchmark(name.c_str(), [name, n, bytes, make](benchmark::State& state) {
    measure(state, name, n, bytes, make);
  })->UseRealTime()->Unit(benchmark::kMicrosecond);
}

// ---------------------------------------------------------------------------------------------
// Registration: one generic body, every base × rule × scalar from type lists.

// One optimizer step over one tensor of n elements, as family/base/rule/scalar/n.
template <class Base, class Rule, class S>
void add_step(const std::string& family, std::size_t n, const StepOptions& options = {}) {
  add(step_name(family, Base::name, Rule::name, scalar_name<S>(), n), n, step_bytes<Base, S>(n), [n, options] {
    return std::make_unique<StepCase<Base, Rule, S>>(std::vector<std::size_t>{n}, options);
  });
}

// The bases of before issue 14: BM_Step over every rule of FullGridRules, float and double.
// Every other base of multopt::AllBases gets the rows issue 14 asks for a new base: additive
// and multiplicative, float (both sizes), so that adding a base to AllBases adds its rows.
using FullGridBases = multopt::TypeList<bases::Sgd, bases::Adam, bases::Adagrad, bases::Rmsprop>;
using FullGridRules = multopt::TypeList<rules::Additive, rules::Multiplicative, rules::Hybrid>;
using NewBaseRules = multopt::TypeList<rules::Additive, rules::Multiplicative>;

template <class T, class... L>
constexpr bool listed(multopt::TypeList<L...>) {
  return (std::is_same_v<T, L> || ...);
}
template <class... B>
constexpr bool all_in_all_bases(multopt::TypeList<B...>) {
  return (listed<B>(multopt::AllBases{}) && ...);
}
static_assert(all_in_all_bases(FullGridBases{}), "a base of FullGridBases left multopt::AllBases");

template <class Base, class S>
void add_base_steps(std::size_t n) {
  constexpr bool full_grid = listed<Base>(FullGridBases{});
  if constexpr (full_grid || std::is_same_v<S, float>) {
    using Rules = std::conditional_t<full_grid, FullGridRules, NewBaseRules>;
    multopt::for_each_type(Rules{}, [n](auto rule) {
      using Rule = typename decltype(rule)::type;
      if constexpr (Rule::template supports<Base>) add_step<Base, Rule, S>("BM_Step", n);
    });
  }
}

// 16-bit parameters (docs/mixed-precision.md): adam and sgd, additive and multiplicative, bf16
// and fp16, in each storage mode with gradients of the parameter's type, and with fp32 ones
// into master weights too (the CPU-offload case), as BM_Step/base/rule/bf16-master-g32/n and
// the like; the steps of a base in one mode beside BM_Traffic16 over the same arrays.
using Bases16 = multopt::TypeList<bases::Sgd, bases::Adam>;
using Rules16 = multopt::TypeList<rules::Additive, rules::Multiplicative>;
using Types16 = multopt::TypeList<Eigen::bfloat16, Eigen::half>;

template <class G>
std::unique_ptr<Case> make_traffic16(int arrays, bool master, std::size_t n) {
  if (arrays == 1)
    return master ? std::unique_ptr<Case>(std::make_unique<Traffic16Case<1, true, G>>(n))
                  : std::make_unique<Traffic16Case<1, false, G>>(n);
  return master ? std::unique_ptr<Case>(std::make_unique<Traffic16Case<2, true, G>>(n))
                : std::make_unique<Traffic16Case<2, false, G>>(n);
}

// wide: fp32 gradients, else of the parameter's type.
template <class Base, bool wide>
void add_16bit_steps(std::size_t n, multopt::Rounding rounding) {
  using G16 = std::conditional_t<wide, float, std::uint16_t>;
  const std::string mode = storage16_mode(multopt::rounding_name(rounding), sizeof(G16));
  const int arrays = used_arrays<Base>();
  const bool master = rounding == multopt::Rounding::master;
  const double bytes = step16_bytes(arrays, master, sizeof(G16), n);
  add(traffic16_name(Base::name, mode, n), n, bytes,
      [arrays, master, n] { return make_traffic16<G16>(arrays, master, n); });
  StepOptions options;
  options.storage.rounding = rounding;
  options.storage.seed = 1;
  multopt::for_each_type(Rules16{}, [&](auto rule) {
    using Rule = typename decltype(rule)::type;
    multopt::for_each_type(Types16{}, [&](auto type) {
      using P = typename decltype(type)::type;
      using G = std::conditional_t<wide, float, P>;
      add(step_name("BM_Step", Base::name, Rule::name, scalar_name<P>() + ("-" + mode), n), n, bytes, [n, options] {
        return std::make_unique<StepCase<Base, Rule, P, G>>(std::vector<std::size_t>{n}, options);
      });
    });
  });
}

void register_16bit_benchmarks() {
  using multopt::Rounding;
  for (std::size_t n : {kInCache, kLarge})
    multopt::for_each_type(Bases16{}, [n](auto base) {
      using Base = typename decltype(base)::type;
      add_16bit_steps<Base, true>(n, Rounding::master);
      for (Rounding rounding : {Rounding::master, Rounding::nearest, Rounding::stochastic})
        add_16bit_steps<Base, false>(n, rounding);
    });
}

// The yardstick moves the bytes of an Adam step (with Ema, and of its moving average).
template <class S, bool Ema = false>
void add_traffic(std::size_t n) {
  add(traffic_name(Ema, scalar_name<S>(), n), n, step_bytes<bases::Adam, S>(n) * (Ema ? 9.0 / 7.0 : 1.0),
      [n] { return std::make_unique<TrafficCase<S, Ema>>(n); });
}

// 16-bit state: Adam's float step with bf16 state beside its yardstick (the traffic loop over
// 16-bit state arrays, 20 bytes an element against 28) and the fp32-state step (BM_Step).
void add_state16_steps(std::size_t n) {
  const double bytes = double(n) * (3 * sizeof(float) + 2 * 2 * sizeof(std::uint16_t));
  add(traffic_state16_name(n), n, bytes, [n] { return std::make_unique<TrafficCase<float, false, std::uint16_t>>(n); });
  StepOptions bf16_state;
  bf16_state.storage.state = multopt::StateStorage::bfloat16;
  multopt::for_each_type(multopt::TypeList<rules::Additive, rules::Multiplicative>{}, [&](auto rule) {
    using Rule = typename decltype(rule)::type;
    add(step_name("BM_StepState16", bases::Adam::name, Rule::name, "float", n), n, bytes, [n, bf16_state] {
      return std::make_unique<StepCase<bases::Adam, Rule, float>>(std::vector<std::size_t>{n}, bf16_state);
    });
  });
}

// Sparse rows: a table stepped with a batch of rows (ns per touched element, the rows coalesced),
// beside the traffic loop over the same rows and the SGD, Adagrad and SparseAdam bases.
template <class Base, class Rule>
void add_rows(std::size_t touched) {
  add(rows_name(Base::name, Rule::name, kBatchRows), touched, step_bytes<Base, float>(touched),
      [] { return std::make_unique<RowsCase<Base, Rule>>(); });
}

void register_row_benchmarks() {
  const std::size_t touched = row_batches().touched_per_step();
  add(row_traffic_name(kBatchRows), touched, step_bytes<bases::Adam, float>(touched),
      [] { return std::make_unique<RowTrafficCase>(); });
  add_rows<bases::Sgd, rules::Additive>(touched);
  add_rows<bases::Adagrad, rules::Additive>(touched);
  add_rows<bases::SparseAdam, rules::Additive>(touched);
  add_rows<bases::SparseAdam, rules::Multiplicative>(touched);
  add_rows<bases::SparseAdam, rules::Hybrid>(touched);
}

void register_benchmarks() {
  for (std::size_t n : {kInCache, kLarge}) {
    multopt::for_each_type(multopt::TypeList<float, double>{}, [n](auto scalar) {
      using S = typename decltype(scalar)::type;
      add_traffic<S>(n);
      multopt::for_each_type(multopt::AllBases{}, [n](auto base) {
        add_base_steps<typename decltype(base)::type, S>(n);
      });
      add(step_name("BM_Naive", "adam", "multiplicative", scalar_name<S>(), n), n, step_bytes<bases::Adam, S>(n),
          [n] { return std::make_unique<NaiveCase<S>>(n); });
    });
  }
  using Adam = bases::Adam;
  using Mult = rules::Multiplicative;
  // The rows of the scaling table (benchmarks/device.sh) at 2^26, where a many-core machine's
  // caches hold no share of the arrays either.
  multopt::for_each_type(multopt::TypeList<float, double>{}, [](auto scalar) {
    using S = typename decltype(scalar)::type;
    add_traffic<S>(kHuge);
    multopt::for_each_type(FullGridRules{}, [](auto rule) { add_step<Adam, typename decltype(rule)::type, S>("BM_Step", kHuge); });
  });
  add_step<Adam, Mult, float>("BM_Step", kSingle);
  for (std::size_t n : {kInCache, kLarge}) {
    // The same step with every gradient checked for NaN and infinity first (all are finite);
    // clipped by the global norm (always active); both, from the same read of the gradients.
    StepOptions checked, clipped, clipped_checked;
    checked.policy = clipped_checked.policy = multopt::NonFinitePolicy::skip;
    clipped.clipped = clipped_checked.clipped = true;
    add_step<Adam, Mult, float>("BM_StepChecked", n, checked);
    add_step<Adam, Mult, float>("BM_StepClipped", n, clipped);
    add_step<Adam, Mult, float>("BM_StepClippedChecked", n, clipped_checked);
    // With a moving average of the weights, beside its own yardstick; with loss-scaled gradients.
    StepOptions averaged, scaled;
    averaged.ema = true;
    scaled.grad_scale = 1024;
    add_traffic<float, true>(n);
    add_step<Adam, rules::Additive, float>("BM_StepEma", n, averaged);
    add_step<Adam, Mult, float>("BM_StepEma", n, averaged);
    add_step<Adam, Mult, float>("BM_StepScaled", n, scaled);
    add_state16_steps(n);
  }
  const std::size_t many = kManyCount * kManySize;
  add(many_tensors_name(), many, step_bytes<Adam, float>(many), [] {
    return std::make_unique<StepCase<Adam, Mult, float>>(std::vector<std::size_t>(kManyCount, kManySize));
  });
  register_16bit_benchmarks();
  register_row_benchmarks();
}

void add_context() {
  benchmark::AddCustomContext("multopt_threads", std::to_string(g_threads));
#ifdef _OPENMP
  benchmark::AddCustomContext("multopt_openmp", "yes");
#else
  benchmark::AddCustomContext("multopt_openmp", "no");
#endif
  benchmark::AddCustomContext("multopt_simd_lanes", std::to_string(multopt::simd::Vec<float>::size) + " float, " +
                                                        std::to_string(multopt::simd::Vec<double>::size) + " double");
#if defined(__clang__)
  benchmark::AddCustomContext("multopt_compiler", "clang " __clang_version__);
#elif defined(__GNUC__)
  benchmark::AddCustomContext("multopt_compiler", "gcc " __VERSION__);
#endif
#ifdef __OPTIMIZE__
  benchmark::AddCustomContext("multopt_bench_optimized", "yes");
#else
  benchmark::AddCustomContext("multopt_bench_optimized", "NO: timings are meaningless");
#endif
  char text[64];
  std::snprintf(text, sizeof text, "%.2g float, %.2g double", naive_difference<float>(), naive_difference<double>());
  benchmark::AddCustomContext("naive_vs_step_max_rel_diff", text);
}

}  // namespace
}  // namespace multopt_bench

int main(int argc, char** argv) {
  namespace mb = multopt_bench;
#ifdef __GLIBC__
  // Keep freed memory in the process and serve every allocation from it, as a framework's caching
  // allocator does: each benchmark's arrays (the optimizer's state included) then reuse pages the
  // process already holds, instead of fresh ones from the kernel (or, in a virtual machine, from
  // the host), whose first use and backing vary from one benchmark to the next.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, -1);
#endif
  mb::CommandLine line;
  if (!mb::parse_command_line(argc, argv, line)) return 2;
  mb::g_threads = line.threads;

  std::vector<char*> argv2;
  for (std::string& a : line.args) argv2.push_back(a.data());
  argv2.push_back(nullptr);
  int argc2 = int(line.args.size());
  benchmark::Initialize(&argc2, argv2.data(), mb::print_help);
  if (benchmark::ReportUnrecognizedArguments(argc2, argv2.data())) return 1;

  mb::register_benchmarks();
  mb::add_context();

  // The display reporter, wrapped to keep the medians. CSV (deprecated) runs without a summary.
  std::unique_ptr<benchmark::BenchmarkReporter> display = mb::display_reporter(line.args);
  if (!display) {
    benchmark::RunSpecifiedBenchmarks();
  } else {
    mb::SummaryReporter reporter(std::move(display));
    benchmark::RunSpecifiedBenchmarks(&reporter);
    const mb::Results results = reporter.results();
    if (!results.empty()) mb::print_summary(results, mb::g_threads, mb::console_format(line.args) ? std::cout : std::cerr);
  }
  mb::g_case.reset();
  benchmark::Shutdown();
  return 0;
}
