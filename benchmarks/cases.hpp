// The cases of multopt_bench: what one benchmark iteration runs (a real optimizer's step, the
// bandwidth yardstick, the naive Eigen port) over the arrays it owns, and how they are filled.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Core>
#include <multopt/multopt.hpp>

#ifdef _OPENMP
#include <omp.h>
#define MULTOPT_BENCH_PRAGMA(x) _Pragma(#x)
#else
#define MULTOPT_BENCH_PRAGMA(x)
#endif

namespace multopt_bench {

namespace bases = multopt::bases;
namespace rules = multopt::rules;

// Learning rates small enough that parameters stay finite and far from zero over the
// millions of steps of a full run, with gradients that never change.
constexpr double kLr = 1e-7;
constexpr double kLrOut = 1e-6;

inline int g_threads = 1;  // of the step, the traffic loop and the fills (--threads)

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

inline std::uint64_t mix(std::uint64_t x) {  // splitmix64's finalizer
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
constexpr double kLeastGradient = 0.1;  // every gradient's magnitude is in [0.1, 1)
template <class S>
void fill_grads(S* x, std::size_t n, std::uint64_t seed) { fill_random(x, n, seed, kLeastGradient, 0.9); }

// ---------------------------------------------------------------------------------------------
// Cases. A case is made once per run of a benchmark and stepped once untimed (the optimizer
// allocates its state on its first step); check() then says what is wrong with it, if anything.

struct Case {
  virtual ~Case() = default;
  virtual void run() = 0;
  virtual std::string check() const { return {}; }
};

template <class Rule>
typename Rule::Params rule_params() { return {}; }
template <>
inline rules::Additive::Params rule_params<rules::Additive>() {
  rules::Additive::Params p;
  p.lr = kLr;
  return p;
}
template <>
inline rules::Multiplicative::Params rule_params<rules::Multiplicative>() {
  rules::Multiplicative::Params p;
  p.lr_out = kLrOut;
  return p;
}
template <>
inline rules::Hybrid::Params rule_params<rules::Hybrid>() {
  rules::Hybrid::Params p;
  p.lr_out = kLrOut;
  p.lr = kLr;
  p.g_mix = 0.5;
  return p;
}

// Each base at its defaults but SGD, which gets momentum 0.9 (a base added to
// multopt::AllBases is benchmarked at its defaults until it gets a line here).
template <class Base>
typename Base::Params base_params() { return {}; }
template <>
inline bases::Sgd::Params base_params<bases::Sgd>() {
  bases::Sgd::Params p;
  p.momentum = 0.9;
  return p;
}

// The state arrays a base uses at the parameters it is benchmarked with.
template <class Base>
int used_arrays() {
  int arrays = 0;
  for (int k = 0; k < Base::array_count; ++k) arrays += Base::uses_array(base_params<Base>(), k) ? 1 : 0;
  return arrays;
}

// Bytes a step moves: parameter, gradient and each state array read; parameter and state written.
template <class Base, class S>
double step_bytes(std::size_t n) {
  return double(n) * double(sizeof(S)) * double(3 + 2 * used_arrays<Base>());
}

// Bytes a 16-bit step moves (docs/mixed-precision.md): the fp32 state read and written; the
// gradient (2 or 4 bytes) read; the 16-bit parameter written, and read unless the fp32 master
// weights are, which are read and written.
inline double step16_bytes(int arrays, bool master, std::size_t gradient_bytes, std::size_t n) {
  const double param = master ? 2.0 + 8.0 : 4.0;
  return double(n) * (param + double(gradient_bytes) + 8.0 * double(arrays));
}

// What a step does besides the base and the rule. Both decays stay at 0.
struct StepOptions {
  multopt::NonFinitePolicy policy = multopt::NonFinitePolicy::propagate;
  // Clipping by the global norm at half the least norm the gradients can have (each is at least
  // kLeastGradient in magnitude), so that every step scales them (by about 0.08).
  bool clipped = false;
  multopt::StorageMode storage;  // of 16-bit parameters, and of the state
  bool ema = false;              // a moving average of the weights (ema_decay 0.999)
  double grad_scale = 1.0;       // gradients unscaled by it as the step reads them
};

// A real multopt optimizer over caller buffers: one tensor per entry of sizes, its parameters of
// type S, its gradients of type G (S, or float for 16-bit S).
template <class Base, class Rule, class S, class G = S>
class StepCase final : public Case {
 public:
  explicit StepCase(const std::vector<std::size_t>& sizes, const StepOptions& options = {})
      : opt_(rule_params<Rule>(), base_params<Base>()) {
    opt_.set_non_finite_policy(options.policy);
    if (multopt::is_16bit<S> || options.storage.state != multopt::StateStorage::compute)
      opt_.set_storage(options.storage);
    if (options.ema) opt_.set_ema_decay(0.999);
    opt_.set_grad_scale(options.grad_scale);
    std::uint64_t seed = 1;
    std::size_t total = 0;
    for (std::size_t size : sizes) {
      params_.push_back(allocate<S>(size));
      grads_.push_back(allocate<G>(size));
      fill_params(params_.back().get(), size, seed++);
      fill_grads(grads_.back().get(), size, seed++);
      opt_.add_params(params_.back().get(), grads_.back().get(), size);
      total += size;
    }
    if (options.clipped) opt_.set_max_grad_norm(0.5 * kLeastGradient * std::sqrt(double(total)));
    opt_.set_thread_settings(multopt::ThreadSettings{g_threads});  // the library's defaults, but for the thread count
  }
  void run() override { opt_.step(); }
  std::string check() const override {
    const bool clipping = opt_.max_grad_norm() < std::numeric_limits<double>::infinity();
    if (clipping && !(opt_.grad_norm() > opt_.max_grad_norm()))
      return "clipping is not active: gradient norm " + std::to_string(opt_.grad_norm()) +
             " <= max_grad_norm " + std::to_string(opt_.max_grad_norm());
    if (!opt_.skipped_tensors().empty()) return "a tensor was skipped: all gradients should be finite";
    return {};
  }
  const S* param(std::size_t tensor) const { return params_[tensor].get(); }

 private:
  multopt::Optimizer<Base, Rule, S> opt_;
  std::vector<Buffer<S>> params_;
  std::vector<Buffer<G>> grads_;
};

// The bandwidth yardstick of an Adam step: a plain loop that reads 4 arrays and writes 3, with
// next to no arithmetic, vectorized by the compiler and split like the library's step (static
// schedule, serial below the library's default serial_below). With Ema, that of a step with a
// moving average of the weights: one more array read and written. With T = std::uint16_t, that
// of a step with 16-bit state: the two state arrays widened and narrowed as bfloat16 is, by
// shifts (next to no arithmetic; only the bytes count).
template <class T, class S>
S widened_state(T x) {
  if constexpr (std::is_same_v<T, S>) return x;
  else return multopt::detail::float_of(std::uint32_t(x) << 16);
}
template <class T, class S>
T narrowed_state(S x) {
  if constexpr (std::is_same_v<T, S>) return x;
  else return T(multopt::detail::float_bits(x) >> 16);
}

template <class S, bool Ema = false, class T = S>
void traffic(S* __restrict p, const S* __restrict g, T* __restrict m, T* __restrict v, S* __restrict ema,
             std::size_t n) {
  const S b1 = S(0.9), c1 = S(0.1), b2 = S(0.999), c2 = S(0.001), lr = S(kLr);
  const long count = long(n);
#ifdef _OPENMP
  const bool threaded = n >= multopt::ThreadSettings{}.serial_below && g_threads != 1;
#endif
  MULTOPT_BENCH_PRAGMA(omp parallel for simd schedule(static) num_threads(g_threads) if (parallel : threaded))
  for (long i = 0; i < count; ++i) {
    const S gi = g[i];
    const S mi = b1 * widened_state<T, S>(m[i]) + c1 * gi;
    const S vi = b2 * widened_state<T, S>(v[i]) + c2 * gi * gi;
    m[i] = narrowed_state<T>(mi);
    v[i] = narrowed_state<T>(vi);
    const S theta = p[i] - lr * (mi + vi);
    p[i] = theta;
    if constexpr (Ema) ema[i] = b2 * ema[i] + c2 * theta;
  }
}

template <class S, bool Ema = false, class T = S>
class TrafficCase final : public Case {
 public:
  explicit TrafficCase(std::size_t n)
      : n_(n), p_(allocate<S>(n)), g_(allocate<S>(n)), m_(allocate<T>(n)), v_(allocate<T>(n)),
        ema_(allocate<S>(Ema ? n : 0)) {
    fill_params(p_.get(), n, 1);
    fill_grads(g_.get(), n, 2);
    Buffer<S> state = allocate<S>(n);  // the state's values, narrowed where T is 16-bit
    fill_random(state.get(), n, 3, 0.0, 0.1);
    for (std::size_t i = 0; i < n; ++i) m_.get()[i] = narrowed_state<T>(state.get()[i]);
    fill_random(state.get(), n, 4, 0.0, 0.1);
    for (std::size_t i = 0; i < n; ++i) v_.get()[i] = narrowed_state<T>(state.get()[i]);
    if (Ema) fill_params(ema_.get(), n, 5);
  }
  void run() override { traffic<S, Ema, T>(p_.get(), g_.get(), m_.get(), v_.get(), ema_.get(), n_); }

 private:
  std::size_t n_;
  Buffer<S> p_, g_;
  Buffer<T> m_, v_;
  Buffer<S> ema_;
};

// The bandwidth yardstick of a 16-bit step: the traffic loop's arithmetic over the arrays the
// step reads and writes (docs/mixed-precision.md): the 16-bit parameters, the fp32 master
// weights where Master, gradients of type G (16-bit or float), and one or two fp32 state
// arrays. 16-bit values are widened and narrowed as bfloat16 is, by shifts (next to no
// arithmetic, in packets), fp16 values alike: only the bytes count.
template <int ArrayCount, bool Master, class G>
void traffic16(std::uint16_t* __restrict p, float* __restrict master, const G* __restrict g,
               float* __restrict m, float* __restrict v, std::size_t n) {
  static_assert(ArrayCount == 1 || ArrayCount == 2, "the yardsticks of SGD with momentum and of Adam");
  using multopt::detail::float_bits;
  using multopt::detail::float_of;
  const float b1 = 0.9f, c1 = 0.1f, b2 = 0.999f, c2 = 0.001f, lr = float(kLr);
  const long count = long(n);
#ifdef _OPENMP
  const bool threaded = n >= multopt::ThreadSettings{}.serial_below && g_threads != 1;
#endif
  MULTOPT_BENCH_PRAGMA(omp parallel for simd schedule(static) num_threads(g_threads) if (parallel : threaded))
  for (long i = 0; i < count; ++i) {
    float gi;
    if constexpr (std::is_same_v<G, float>) gi = g[i];
    else gi = float_of(std::uint32_t(g[i]) << 16);
    const float mi = b1 * m[i] + c1 * gi;
    m[i] = mi;
    float d = mi;
    if constexpr (ArrayCount == 2) {
      const float vi = b2 * v[i] + c2 * gi * gi;
      v[i] = vi;
      d += vi;
    }
    const float theta = (Master ? master[i] : float_of(std::uint32_t(p[i]) << 16)) - lr * d;
    if constexpr (Master) master[i] = theta;
    p[i] = std::uint16_t(float_bits(theta) >> 16);
  }
}

template <int ArrayCount, bool Master, class G>
class Traffic16Case final : public Case {
 public:
  explicit Traffic16Case(std::size_t n)
      : n_(n), p_(allocate<std::uint16_t>(n)), master_(allocate<float>(Master ? n : 1)), g_(allocate<G>(n)),
        m_(allocate<float>(n)), v_(allocate<float>(ArrayCount == 2 ? n : 1)) {
    Buffer<float> wide = allocate<float>(n);  // the float yardstick's values, cut to 16 bits
    fill_params(wide.get(), n, 1);
    narrow(wide.get(), p_.get(), n);
    if constexpr (Master) fill_params(master_.get(), n, 1);
    if constexpr (std::is_same_v<G, float>) {
      fill_grads(g_.get(), n, 2);
    } else {
      fill_grads(wide.get(), n, 2);
      narrow(wide.get(), g_.get(), n);
    }
    fill_random(m_.get(), n, 3, 0.0, 0.1);
    if constexpr (ArrayCount == 2) fill_random(v_.get(), n, 4, 0.0, 0.1);
  }
  void run() override { traffic16<ArrayCount, Master, G>(p_.get(), master_.get(), g_.get(), m_.get(), v_.get(), n_); }

 private:
  static void narrow(const float* x, std::uint16_t* out, std::size_t n) {
    const long count = long(n);
    MULTOPT_BENCH_PRAGMA(omp parallel for schedule(static) num_threads(g_threads))
    for (long i = 0; i < count; ++i) out[i] = std::uint16_t(multopt::detail::float_bits(x[i]) >> 16);
  }

  std::size_t n_;
  Buffer<std::uint16_t> p_;
  Buffer<float> master_;
  Buffer<G> g_;
  Buffer<float> m_, v_;
};

// What a straightforward port of the PyTorch reference writes for Adam + multiplicative: one
// whole-array Eigen expression per formula line of docs/math.md, a temporary array for d.
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
// Sparse rows (docs/performance.md, "Sparse rows"): a table of kTableRows rows of kRowWidth
// floats, and kBatches batches of kBatchRows row indices each, drawn with repeats from a
// Zipf-like law (a row below x with probability log(x + 1) / log(rows + 1): the first rows are
// the most looked up, as an embedding table's frequent tokens), with a gradient row each. A step
// takes the next batch, so that the rows touched move through a working set larger than the
// caches, as training's do.

constexpr std::size_t kTableRows = std::size_t(1) << 22, kRowWidth = 64, kBatchRows = std::size_t(1) << 14,
                      kBatches = 8;

struct RowBatches {
  std::vector<std::vector<std::int64_t>> indices;  // per batch, as drawn
  std::vector<std::vector<std::size_t>> rows;      // per batch, each touched row once, in increasing order
  std::vector<Buffer<float>> values;               // per batch: kBatchRows × kRowWidth
  std::size_t touched = 0;                         // elements a pass over every batch steps

  RowBatches() {
    for (std::size_t b = 0; b < kBatches; ++b) {
      std::vector<std::int64_t> drawn(kBatchRows);
      for (std::size_t k = 0; k < kBatchRows; ++k) {
        const double u = double(mix((std::uint64_t(b) << 32) ^ k) >> 11) * 0x1p-53;
        drawn[k] = std::min(std::int64_t(kTableRows) - 1, std::int64_t(std::exp(u * std::log(double(kTableRows) + 1.0))) - 1);
      }
      std::vector<std::size_t> once(drawn.begin(), drawn.end());
      std::sort(once.begin(), once.end());
      once.erase(std::unique(once.begin(), once.end()), once.end());
      touched += once.size() * kRowWidth;
      indices.push_back(std::move(drawn));
      rows.push_back(std::move(once));
      values.push_back(allocate<float>(kBatchRows * kRowWidth));
      fill_grads(values.back().get(), kBatchRows * kRowWidth, 100 + b);
    }
  }
  // Elements a step touches, on average over the batches.
  std::size_t touched_per_step() const { return touched / kBatches; }
};

inline const RowBatches& row_batches() {
  static const RowBatches batches;
  return batches;
}

// multopt's step of the table with a batch's rows (TensorRefs::rows): coalesced, then each
// touched row stepped.
template <class Base, class Rule>
class RowsCase final : public Case {
 public:
  RowsCase() : param_(allocate<float>(kTableRows * kRowWidth)) {
    fill_params(param_.get(), kTableRows * kRowWidth, 1);
    groups_[0].rule = rule_params<Rule>();
    groups_[0].base = base_params<Base>();
    for (const multopt::StateArrayInfo& info : multopt::state_arrays<Base, float>(groups_[0].base)) {
      state_.push_back(allocate<float>(kTableRows * kRowWidth));
      fill_zero(state_.back().get(), kTableRows * kRowWidth);
      refs_[0].state[std::size_t(info.index)] = state_.back().get();
    }
    refs_[0].param = param_.get();
    refs_[0].size = kTableRows * kRowWidth;
    refs_[0].steps = &steps_;
    options_.threading = multopt::ThreadSettings{g_threads};
  }
  void run() override {
    const RowBatches& batches = row_batches();
    const std::size_t b = next_++ % kBatches;
    refs_[0].grad = batches.values[b].get();
    refs_[0].rows = {batches.indices[b].data(), kBatchRows, kRowWidth};
    multopt::step_tensors(refs_, groups_, options_, work_);
  }

 private:
  Buffer<float> param_;
  std::vector<Buffer<float>> state_;
  long steps_ = 0;
  std::size_t next_ = 0;
  std::vector<multopt::TensorRefs<Base, float>> refs_{1};
  std::vector<multopt::Hyper<Base, Rule>> groups_{1};
  multopt::StepOptions options_;
  multopt::StepWork<Base, Rule, float> work_;
};

// The yardstick of a rows step: the traffic loop over the same rows, each once (the batch's
// rows coalesced beforehand), reading its gradient row and its row of the table and of two state
// arrays, writing the three; rows split over threads as the step splits them.
class RowTrafficCase final : public Case {
 public:
  RowTrafficCase()
      : p_(allocate<float>(kTableRows * kRowWidth)), m_(allocate<float>(kTableRows * kRowWidth)),
        v_(allocate<float>(kTableRows * kRowWidth)) {
    fill_params(p_.get(), kTableRows * kRowWidth, 1);
    fill_random(m_.get(), kTableRows * kRowWidth, 3, 0.0, 0.1);
    fill_random(v_.get(), kTableRows * kRowWidth, 4, 0.0, 0.1);
  }
  void run() override {
    const RowBatches& batches = row_batches();
    const std::size_t b = next_++ % kBatches;
    const std::vector<std::size_t>& rows = batches.rows[b];
    const float* g = batches.values[b].get();
    const float b1 = 0.9f, c1 = 0.1f, b2 = 0.999f, c2 = 0.001f, lr = float(kLr);
    float* __restrict p = p_.get();
    float* __restrict m = m_.get();
    float* __restrict v = v_.get();
    const long count = long(rows.size());
    MULTOPT_BENCH_PRAGMA(omp parallel for schedule(static) num_threads(g_threads) if (g_threads != 1))
    for (long k = 0; k < count; ++k) {
      const std::size_t at = rows[std::size_t(k)] * kRowWidth;
      const float* __restrict gk = g + std::size_t(k) * kRowWidth;
      MULTOPT_BENCH_PRAGMA(omp simd)
      for (std::size_t i = 0; i < kRowWidth; ++i) {
        const float gi = gk[i];
        const float mi = b1 * m[at + i] + c1 * gi;
        const float vi = b2 * v[at + i] + c2 * gi * gi;
        m[at + i] = mi;
        v[at + i] = vi;
        p[at + i] = p[at + i] - lr * (mi + vi);
      }
    }
  }

 private:
  Buffer<float> p_, m_, v_;
  std::size_t next_ = 0;
};

}  // namespace multopt_bench
