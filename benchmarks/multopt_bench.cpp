// multopt_bench: how long one optimizer step takes, set against the memory traffic it has to
// move, a straightforward Eigen port of the reference, and the same step split into many small
// tensors. docs/performance.md explains each benchmark and the ratio summary printed at the end.
//
//   multopt_bench [--threads=N|all] [Google Benchmark flags]
//
// Threads: --threads=N, else the environment variable MULTOPT_THREADS, else 1; "all" (or 0)
// means every core. Unless told otherwise it runs 5 repetitions in random order and reports
// their aggregates (--benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// --benchmark_enable_random_interleaving=true, each overridable).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <new>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <Eigen/Core>
#include <multopt/multopt.hpp>

#ifdef _OPENMP
#include <omp.h>
#define MULTOPT_BENCH_PRAGMA(x) _Pragma(#x)
#else
#define MULTOPT_BENCH_PRAGMA(x)
#endif

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#define MULTOPT_BENCH_ISATTY
#endif

#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace {

namespace bases = multopt::bases;
namespace rules = multopt::rules;

constexpr std::size_t kInCache = std::size_t(1) << 14;  // 7 float arrays: 448 KiB
constexpr std::size_t kLarge = std::size_t(1) << 24;    // 7 float arrays: 448 MiB
constexpr std::size_t kSingle = 1000000;                // BM_ManyTensors' single-tensor twin
constexpr std::size_t kManyCount = 1000, kManySize = 1000;

// Learning rates small enough that parameters stay finite and far from zero over the
// millions of steps of a full run, with gradients that never change.
constexpr double kLr = 1e-7;
constexpr double kLrOut = 1e-6;

int g_threads = 1;

// ---------------------------------------------------------------------------------------------
// Buffers: 64-byte aligned, first touched by the threads that step them (static schedule).

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
template <class S>
using Buffer = std::unique_ptr<S[], FreeDeleter>;

template <class S>
Buffer<S> allocate(std::size_t n) {
  const std::size_t bytes = std::max<std::size_t>(64, (n * sizeof(S) + 63) / 64 * 64);
  void* p = std::aligned_alloc(64, bytes);
  if (p == nullptr) throw std::bad_alloc();
  return Buffer<S>(static_cast<S*>(p));
}

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finalizer
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Fixed random values of random sign and magnitude in [low, low + span).
template <class S>
void fill_random(S* x, std::size_t n, std::uint64_t seed, double low, double span) {
  const long count = long(n);
  MULTOPT_BENCH_PRAGMA(omp parallel for schedule(static) num_threads(g_threads))
  for (long i = 0; i < count; ++i) {
    const std::uint64_t r = mix((seed << 40) ^ std::uint64_t(i));
    const double magnitude = low + span * double(r >> 11) * 0x1p-53;
    x[i] = S((r & 1u) ? -magnitude : magnitude);
  }
}
template <class S>
void fill_zero(S* x, std::size_t n) {
  const long count = long(n);
  MULTOPT_BENCH_PRAGMA(omp parallel for schedule(static) num_threads(g_threads))
  for (long i = 0; i < count; ++i) x[i] = S(0);
}
template <class S>
void fill_params(S* x, std::size_t n, std::uint64_t seed) { fill_random(x, n, seed, 0.5, 1.0); }
template <class S>
void fill_grads(S* x, std::size_t n, std::uint64_t seed) { fill_random(x, n, seed, 0.1, 0.9); }

// ---------------------------------------------------------------------------------------------
// Cases: what one benchmark iteration runs. The current case is kept between the calls Google
// Benchmark makes for one benchmark in a row (iteration-count trials; repetitions too, unless
// they are interleaved), so that its arrays are not made again for each call, and it is freed
// before the next benchmark's: at most one benchmark's arrays (up to 1 GiB) are held at a time.

struct Case {
  virtual ~Case() = default;
  virtual void run() = 0;
};
using Factory = std::function<std::unique_ptr<Case>()>;

std::unique_ptr<Case> g_case;
std::string g_case_name;

Case& fixture(const std::string& name, const Factory& make) {
  if (!g_case || g_case_name != name) {
    g_case.reset();
    g_case_name.clear();
    g_case = make();
    g_case->run();  // warm-up: the optimizer allocates its state on its first step
    g_case_name = name;
  }
  return *g_case;
}

template <class Rule>
typename Rule::Params rule_params() { return {}; }
template <>
rules::Additive::Params rule_params<rules::Additive>() {
  rules::Additive::Params p;
  p.lr = kLr;
  return p;
}
template <>
rules::Multiplicative::Params rule_params<rules::Multiplicative>() {
  rules::Multiplicative::Params p;
  p.lr_out = kLrOut;
  return p;
}
template <>
rules::Hybrid::Params rule_params<rules::Hybrid>() {
  rules::Hybrid::Params p;
  p.lr_out = kLrOut;
  p.lr = kLr;
  p.g_mix = 0.5;
  return p;
}

template <class Base>
typename Base::Params base_params() { return {}; }
template <>
bases::Sgd::Params base_params<bases::Sgd>() {
  bases::Sgd::Params p;
  p.momentum = 0.9;
  return p;
}

// Bytes a step moves: parameter, gradient and each state array read; parameter and state written.
template <class Base, class S>
double step_bytes(std::size_t n) {
  int slots = 0;
  for (int k = 0; k < Base::slot_count; ++k) slots += Base::uses_slot(base_params<Base>(), k) ? 1 : 0;
  return double(n) * double(sizeof(S)) * double(3 + 2 * slots);
}

// A real multopt optimizer over caller buffers: one tensor per entry of sizes.
template <class Base, class Rule, class S>
class StepCase final : public Case {
 public:
  explicit StepCase(const std::vector<std::size_t>& sizes,
                    multopt::NonFinitePolicy policy = multopt::NonFinitePolicy::propagate)
      : opt_(rule_params<Rule>(), base_params<Base>()) {
    opt_.set_non_finite_policy(policy);
    std::uint64_t seed = 1;
    for (std::size_t size : sizes) {
      params_.push_back(allocate<S>(size));
      grads_.push_back(allocate<S>(size));
      fill_params(params_.back().get(), size, seed++);
      fill_grads(grads_.back().get(), size, seed++);
      opt_.add_params(params_.back().get(), grads_.back().get(), size);
    }
    multopt::Parallel parallel;  // the library's defaults, but for the thread count
    parallel.threads = g_threads;
    opt_.set_parallel(parallel);
  }
  void run() override { opt_.step(); }
  const S* param(std::size_t tensor) const { return params_[tensor].get(); }

 private:
  multopt::Optimizer<Base, Rule, S> opt_;
  std::vector<Buffer<S>> params_, grads_;
};

// The bandwidth yardstick of an Adam step: a plain loop that reads 4 arrays and writes 3, with
// next to no arithmetic, vectorized by the compiler and split like the library's step (static
// schedule, serial below the library's default serial_below).
template <class S>
void traffic(S* __restrict p, const S* __restrict g, S* __restrict m, S* __restrict v, std::size_t n) {
  const S b1 = S(0.9), c1 = S(0.1), b2 = S(0.999), c2 = S(0.001), lr = S(kLr);
  const long count = long(n);
#ifdef _OPENMP
  const bool threaded = n >= multopt::Parallel{}.serial_below && g_threads != 1;
#endif
  MULTOPT_BENCH_PRAGMA(omp parallel for simd schedule(static) num_threads(g_threads) if (parallel : threaded))
  for (long i = 0; i < count; ++i) {
    const S gi = g[i];
    const S mi = b1 * m[i] + c1 * gi;
    const S vi = b2 * v[i] + c2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] - lr * (mi + vi);
  }
}

template <class S>
class TrafficCase final : public Case {
 public:
  explicit TrafficCase(std::size_t n)
      : n_(n), p_(allocate<S>(n)), g_(allocate<S>(n)), m_(allocate<S>(n)), v_(allocate<S>(n)) {
    fill_params(p_.get(), n, 1);
    fill_grads(g_.get(), n, 2);
    fill_random(m_.get(), n, 3, 0.0, 0.1);
    fill_random(v_.get(), n, 4, 0.0, 0.1);
  }
  void run() override { traffic(p_.get(), g_.get(), m_.get(), v_.get(), n_); }

 private:
  std::size_t n_;
  Buffer<S> p_, g_, m_, v_;
};

// What a straightforward port of the PyTorch reference writes for Adam + multiplicative: one
// whole-array Eigen expression per formula line of the reference (REFERENCE.md), a temporary array for d.
template <class S>
class NaiveCase final : public Case {
  using Array = Eigen::Array<S, Eigen::Dynamic, 1>;

 public:
  explicit NaiveCase(std::size_t n) : theta_(n), g_(n), m_(n), v_(n), d_(n) {
    fill_params(theta_.data(), n, 1);
    fill_grads(g_.data(), n, 2);
    fill_zero(m_.data(), n);
    fill_zero(v_.data(), n);
    fill_zero(d_.data(), n);
  }
  void run() override {
    const S beta1 = S(0.9), beta2 = S(0.999), eps = S(1e-8), lr_in = S(1.0);
    const double t = double(++steps_);
    const S sqrt_bias2 = S(std::sqrt(1.0 - std::pow(0.999, t)));
    const S step = S(kLrOut / (1.0 - std::pow(0.9, t)));
    m_ = beta1 * m_ + (1 - beta1) * g_;
    v_ = beta2 * v_ + (1 - beta2) * g_.square();
    d_ = m_ / (v_.sqrt() / sqrt_bias2 + eps);
    theta_ -= step * theta_.abs() * (lr_in * d_).tanh();
  }
  const S* param() const { return theta_.data(); }

 private:
  Array theta_, g_, m_, v_, d_;
  long steps_ = 0;
};

// The naive port must compute what the library computes: largest relative difference of the
// parameters after a few steps of both (a few ulp expected).
template <class S>
double naive_difference() {
  constexpr std::size_t n = 4099;  // a partial packet at the end, too
  StepCase<bases::Adam, rules::Multiplicative, S> lib({n});
  NaiveCase<S> naive(n);
  for (int k = 0; k < 5; ++k) {
    lib.run();
    naive.run();
  }
  double worst = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double a = double(lib.param(0)[i]), b = double(naive.param()[i]);
    worst = std::max(worst, std::abs(a - b) / std::abs(b));
  }
  return worst;
}

// ---------------------------------------------------------------------------------------------
// Registration: one generic body, every base × rule × scalar from type lists.

void measure(benchmark::State& state, const std::string& name, std::size_t n, double bytes,
             const Factory& make) {
  Case& c = fixture(name, make);
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

template <class S>
const char* scalar_name() { return sizeof(S) == sizeof(float) ? "float" : "double"; }

template <class Base, class Rule, class S>
void add_step(std::size_t n) {
  const std::string name = std::string("BM_Step/") + Base::name + "/" + Rule::name + "/" +
                           scalar_name<S>() + "/" + std::to_string(n);
  add(name, n, step_bytes<Base, S>(n), [n] {
    return std::make_unique<StepCase<Base, Rule, S>>(std::vector<std::size_t>{n});
  });
}

void register_benchmarks() {
  using Bases = multopt::TypeList<bases::Sgd, bases::Adam, bases::Adagrad, bases::Rmsprop>;
  using Rules = multopt::TypeList<rules::Additive, rules::Multiplicative, rules::Hybrid>;
  for (std::size_t n : {kInCache, kLarge}) {
    multopt::for_each_type(multopt::TypeList<float, double>{}, [n](auto scalar) {
      using S = typename decltype(scalar)::type;
      const std::string tail = std::string(scalar_name<S>()) + "/" + std::to_string(n);
      add("BM_Traffic/" + tail, n, 7.0 * double(sizeof(S)) * double(n),
          [n] { return std::make_unique<TrafficCase<S>>(n); });
      multopt::for_each_type(Bases{}, [n](auto base) {
        multopt::for_each_type(Rules{}, [n](auto rule) {
          add_step<typename decltype(base)::type, typename decltype(rule)::type, S>(n);
        });
      });
      add("BM_Naive/adam/multiplicative/" + tail, n, 7.0 * double(sizeof(S)) * double(n),
          [n] { return std::make_unique<NaiveCase<S>>(n); });
    });
  }
  add_step<bases::Adam, rules::Multiplicative, float>(kSingle);
  for (std::size_t n : {kInCache, kLarge}) {
    // The same step with every gradient checked for NaN and infinity first (all are finite).
    add("BM_StepChecked/adam/multiplicative/float/" + std::to_string(n), n, step_bytes<bases::Adam, float>(n), [n] {
      return std::make_unique<StepCase<bases::Adam, rules::Multiplicative, float>>(
          std::vector<std::size_t>{n}, multopt::NonFinitePolicy::skip);
    });
  }
  const std::size_t many = kManyCount * kManySize;
  add("BM_ManyTensors/adam/multiplicative/float/" + std::to_string(kManyCount) + "x" +
          std::to_string(kManySize),
      many, step_bytes<bases::Adam, float>(many), [] {
        return std::make_unique<StepCase<bases::Adam, rules::Multiplicative, float>>(
            std::vector<std::size_t>(kManyCount, kManySize));
      });
}

// ---------------------------------------------------------------------------------------------
// The ratio summary, from the medians of this run.

using Results = std::map<std::string, double>;  // benchmark name -> median ns per element

// Passes every report to the display reporter and keeps each benchmark's median ns_per_elem
// (the "median" aggregate, or the median of the repetitions when there is no aggregate).
class SummaryReporter final : public benchmark::BenchmarkReporter {
 public:
  explicit SummaryReporter(std::unique_ptr<benchmark::BenchmarkReporter> display)
      : display_(std::move(display)) {}

  bool ReportContext(const Context& context) override { return display_->ReportContext(context); }
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      const auto counter = run.counters.find("ns_per_elem");
      if (counter == run.counters.end()) continue;
      const std::string& name = run.run_name.function_name;
      if (run.run_type == Run::RT_Aggregate) {
        if (run.aggregate_name == "median") medians_[name] = counter->second.value;
      } else {
        samples_[name].push_back(counter->second.value);
      }
    }
    display_->ReportRuns(runs);
  }
  void Finalize() override { display_->Finalize(); }

  Results results() const {
    Results out = medians_;
    for (auto [name, values] : samples_) {
      if (out.count(name) || values.empty()) continue;
      std::sort(values.begin(), values.end());
      const std::size_t k = values.size();
      out[name] = k % 2 ? values[k / 2] : 0.5 * (values[k / 2 - 1] + values[k / 2]);
    }
    return out;
  }

 private:
  std::unique_ptr<benchmark::BenchmarkReporter> display_;
  Results medians_;
  std::map<std::string, std::vector<double>> samples_;
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts(1);
  for (char c : s) {
    if (c == sep) parts.emplace_back();
    else parts.back() += c;
  }
  return parts;
}

class Summary {
 public:
  Summary(const Results& results, std::ostream& out) : results_(results), out_(out) {}

  // A section's title and column header are printed with its first line, if any.
  void section(const std::string& title) {
    char header[200];
    std::snprintf(header, sizeof header, "  %-48s %-46s %8s  %-8s  %s\n", "benchmark", "compared with",
                  "ratio", "target", "status");
    pending_ = "\n" + title + "\n" + header;
  }

  // ratio = numerator / denominator of time per element, or its inverse when speedup;
  // limit 0: shown for information only.
  void line(const std::string& num, const std::string& den, bool speedup, double limit) {
    const auto a = results_.find(num), b = results_.find(den);
    if (a == results_.end() || b == results_.end() || !(a->second > 0) || !(b->second > 0)) return;
    const double ratio = speedup ? b->second / a->second : a->second / b->second;
    char text[256];
    if (limit > 0) {
      const bool pass = speedup ? ratio >= limit : ratio <= limit;
      (pass ? passed_ : missed_) += 1;
      std::snprintf(text, sizeof text, "  %-48s %-46s %8.3f  %s %5.2f  %s\n", num.c_str(), den.c_str(),
                    ratio, speedup ? ">=" : "<=", limit, pass ? "PASS" : "MISS");
    } else {
      std::snprintf(text, sizeof text, "  %-48s %-46s %8.3f  %-8s  info\n", num.c_str(), den.c_str(), ratio, "");
    }
    out_ << pending_ << text;
    pending_.clear();
  }

  void print() {
    out_ << "\n=== Ratio summary: medians of ns_per_elem from this run, threads = " << g_threads << " ===\n";

    section("Step / traffic yardstick (same scalar and n; targets: adam, adagrad, rmsprop at 2^24 float)");
    for_each_step([&](const std::vector<std::string>& p, const std::string& name) {
      const bool target = p[1] != "sgd" && p[3] == "float" && p[4] == std::to_string(kLarge);
      line(name, "BM_Traffic/" + p[3] + "/" + p[4], false, target ? 1.15 : 0);
    });

    section("Rule / additive rule of the same base (targets: 2^24 float 1.10, 2^24 double 1.20, 2^14 float 2.0)");
    for_each_step([&](const std::vector<std::string>& p, const std::string& name) {
      if (p[2] == "additive") return;
      double limit = 0;
      if (p[4] == std::to_string(kLarge)) limit = p[3] == "float" ? 1.10 : 1.20;
      if (p[4] == std::to_string(kInCache) && p[3] == "float") limit = 2.0;
      line(name, "BM_Step/" + p[1] + "/additive/" + p[3] + "/" + p[4], false, limit);
    });

    section("Speedup of the step over the naive Eigen port (naive time / step time; target: 2^24 float >= 10)");
    for (const char* scalar : {"float", "double"})
      for (std::size_t n : {kInCache, kLarge}) {
        const std::string tail = std::string(scalar) + "/" + std::to_string(n);
        line("BM_Step/adam/multiplicative/" + tail, "BM_Naive/adam/multiplicative/" + tail, true,
             std::string(scalar) == "float" && n == kLarge ? 10.0 : 0);
      }

    section("Many tensors / one tensor of the same total size (target 1.3)");
    line("BM_ManyTensors/adam/multiplicative/float/" + std::to_string(kManyCount) + "x" + std::to_string(kManySize),
         "BM_Step/adam/multiplicative/float/" + std::to_string(kSingle), false, 1.3);

    section("Non-finite gradient check / unchecked step (NonFinitePolicy::skip; target: 2^24 float 1.05)");
    for (std::size_t n : {kInCache, kLarge}) {
      const std::string tail = "adam/multiplicative/float/" + std::to_string(n);
      line("BM_StepChecked/" + tail, "BM_Step/" + tail, false, n == kLarge ? 1.05 : 0);
    }

    out_ << "\nTargets: " << passed_ << " PASS, " << missed_ << " MISS (of those measured in this run)\n";
  }

 private:
  template <class F>
  void for_each_step(F&& f) {
    for (const auto& [name, value] : results_) {
      const std::vector<std::string> p = split(name, '/');
      if (p.size() == 5 && p[0] == "BM_Step") f(p, name);
    }
  }

  const Results& results_;
  std::ostream& out_;
  std::string pending_;
  int passed_ = 0, missed_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Command line.

int all_cores() {
#ifdef _OPENMP
  return omp_get_num_procs();
#else
  return std::max(1, int(std::thread::hardware_concurrency()));
#endif
}

// "N", "all" or "0" (every core); -1 when it is none of these.
int parse_threads(const std::string& text) {
  if (text == "all" || text == "0") return all_cores();
  char* end = nullptr;
  const long value = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || value < 1 || value > 4096) return -1;
  return int(value);
}

// The value of the last --name=value among args, or fallback.
std::string flag(const std::vector<std::string>& args, const std::string& name, const std::string& fallback) {
  std::string value = fallback;
  const std::string prefix = "--" + name + "=";
  for (const std::string& a : args)
    if (a.compare(0, prefix.size(), prefix) == 0) value = a.substr(prefix.size());
  return value;
}

bool truthy(const std::string& s) { return s == "true" || s == "yes" || s == "1" || s == "on"; }

void print_help() {
  benchmark::PrintDefaultHelp();
  std::fprintf(stdout,
               "multopt_bench:\n"
               "  [--threads=N|all]   threads of the step and of the traffic loop (default: the\n"
               "                      environment variable MULTOPT_THREADS, else 1)\n"
               "  defaults added before the flags given: --benchmark_repetitions=5\n"
               "  --benchmark_report_aggregates_only=true --benchmark_enable_random_interleaving=true\n");
}

}  // namespace

int main(int argc, char** argv) {
#ifdef __GLIBC__
  // Keep freed memory in the process and serve every allocation from it, as a framework's caching
  // allocator does: each benchmark's arrays (the optimizer's state included) then reuse pages the
  // process already holds, instead of fresh ones from the kernel (or, in a virtual machine, from
  // the host), whose first use and backing vary from one benchmark to the next.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, -1);
#endif
  std::string threads_text;
  if (const char* env = std::getenv("MULTOPT_THREADS")) threads_text = env;
  // Defaults, before the flags given (the last occurrence of a flag wins). Repetitions run in
  // random order, so that a drift of the machine's memory bandwidth during the run (other
  // tenants) spreads over every benchmark instead of biasing the ratios of the summary.
  std::vector<std::string> args{argv[0], "--benchmark_repetitions=5", "--benchmark_report_aggregates_only=true",
                                "--benchmark_enable_random_interleaving=true"};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.compare(0, 10, "--threads=") == 0) {
      threads_text = a.substr(10);
    } else if (a == "--threads" && i + 1 < argc) {
      threads_text = argv[++i];
    } else {
      args.push_back(a);
    }
  }
  if (!threads_text.empty()) {
    g_threads = parse_threads(threads_text);
    if (g_threads < 0) {
      std::fprintf(stderr, "multopt_bench: threads must be a positive number or 'all', not '%s'\n",
                   threads_text.c_str());
      return 2;
    }
  }
#ifndef _OPENMP
  if (g_threads > 1) {
    std::fprintf(stderr, "multopt_bench: built without OpenMP, running on 1 thread\n");
    g_threads = 1;
  }
#endif

  std::vector<char*> argv2;
  for (std::string& a : args) argv2.push_back(a.data());
  argv2.push_back(nullptr);
  int argc2 = int(args.size());
  benchmark::Initialize(&argc2, argv2.data(), print_help);
  if (benchmark::ReportUnrecognizedArguments(argc2, argv2.data())) return 1;

  register_benchmarks();
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
  {
    char text[64];
    std::snprintf(text, sizeof text, "%.2g float, %.2g double", naive_difference<float>(),
                  naive_difference<double>());
    benchmark::AddCustomContext("naive_vs_step_max_rel_diff", text);
  }

  // The display reporter, wrapped to keep the medians. CSV (deprecated) runs without a summary.
  const std::string format = flag(args, "benchmark_format", "console");
  std::unique_ptr<benchmark::BenchmarkReporter> display;
  if (format == "console") {
    const std::string color = flag(args, "benchmark_color", "auto");
    bool use_color = truthy(color);
#ifdef MULTOPT_BENCH_ISATTY
    if (color == "auto") use_color = isatty(STDOUT_FILENO) != 0;
#endif
    const bool tabular = truthy(flag(args, "benchmark_counters_tabular", "false"));
    display = std::make_unique<benchmark::ConsoleReporter>(benchmark::ConsoleReporter::OutputOptions(
        (use_color ? benchmark::ConsoleReporter::OO_Color : 0) | (tabular ? benchmark::ConsoleReporter::OO_Tabular : 0)));
  } else if (format == "json") {
    display = std::make_unique<benchmark::JSONReporter>();
  }
  if (!display) {
    benchmark::RunSpecifiedBenchmarks();
  } else {
    SummaryReporter reporter(std::move(display));
    benchmark::RunSpecifiedBenchmarks(&reporter);
    const Results results = reporter.results();
    if (!results.empty()) {
      Summary summary(results, format == "console" ? std::cout : std::cerr);
      summary.print();
    }
  }
  g_case.reset();
  benchmark::Shutdown();
  return 0;
}
