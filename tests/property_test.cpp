// Properties of the update rules and of the stepping machinery, for every base in float and
// double, over sizes that are not multiples of any SIMD width; and the formulas of
// REFERENCE.md against an independent long-double model (reference_model.hpp).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "reference_model.hpp"
#include "test_support.hpp"

namespace arg = multopt::arg;

namespace {

namespace bases = multopt::bases;
namespace rules = multopt::rules;
using multopt::Optimizer;

constexpr std::size_t kSizes[] = {1, 7, 19, 37, 1000};

template <class F>
void for_each_base(F&& f) {
  test::for_each_type<bases::Sgd, bases::Adam, bases::Adagrad, bases::Rmsprop>(f);
}

// The bases as the property tests run them: SGD with momentum, Adagrad with a decaying rate.
template <class Base>
typename Base::Params base_params() {
  typename Base::Params p;
  if constexpr (std::is_same_v<Base, bases::Sgd>) p.momentum = 0.9;
  if constexpr (std::is_same_v<Base, bases::Adagrad>) p.lr_decay = 0.05;
  return p;
}

// The scale s of REFERENCE.md at step t, which multiplies lr and lr_out.
long double scale_of(const bases::Sgd::Params&, long) { return 1; }
long double scale_of(const bases::Rmsprop::Params&, long) { return 1; }
long double scale_of(const bases::Adam::Params& p, long t) {
  return 1 / (1 - std::pow(static_cast<long double>(p.beta1), static_cast<long double>(t)));
}
long double scale_of(const bases::Adagrad::Params& p, long t) {
  return 1 / (1 + static_cast<long double>(t - 1) * p.lr_decay);
}

// One tensor stepped by its own optimizer.
template <class Opt>
struct Run {
  using S = typename Opt::Scalar;
  Opt opt;
  std::vector<S> param, grad;

  Run(const typename Opt::Hyper& h, std::vector<S> init)
      : opt(test::make<Opt>(h)), param(std::move(init)), grad(param.size()) {
    opt.add_params(param.data(), grad.data(), param.size());
  }
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  void step(const std::vector<S>& g) {
    std::copy(g.begin(), g.end(), grad.begin());
    opt.step();
  }
  void set_param(const std::vector<S>& values) { std::copy(values.begin(), values.end(), param.begin()); }
  std::vector<S> state(int slot) const { return test::state_copy(opt, 0, slot); }
};

// Whether two runs of the same base hold bit-identical state arrays.
template <class A, class B>
bool same_state(const Run<A>& a, const Run<B>& b) {
  for (int slot = 0; slot < A::BaseType::slot_count; ++slot)
    if (!test::same_bits(a.state(slot), b.state(slot))) return false;
  return true;
}

// Values in [-2, 2] with an exact zero at every fourth place (from the fourth on, so that
// even one element moves).
template <class S>
std::vector<S> init_with_zeros(std::mt19937& rng, std::size_t n) {
  auto values = test::uniform<S>(rng, n, -2.0, 2.0);
  for (std::size_t i = 3; i < n; i += 4) values[i] = S(0);
  return values;
}

template <class S>
long double ulp(S x) {
  const S a = std::abs(x);
  return static_cast<long double>(std::nextafter(a, std::numeric_limits<S>::infinity())) - a;
}

}  // namespace

TEMPLATE_TEST_CASE("multiplicative and exponential rules keep every sign and every zero", "[property]", float,
                   double) {
  using S = TestType;
  for_each_base([](auto base_tag) {
    using Base = typename decltype(base_tag)::type;
    test::for_each_type<rules::Multiplicative, rules::Exponential>([](auto rule_tag) {
      using Opt = Optimizer<Base, typename decltype(rule_tag)::type, S>;
      for (const std::size_t n : kSizes) {
        INFO(Base::name << " with the " << Opt::RuleType::name << " rule, n = " << n);
        std::mt19937 rng(static_cast<unsigned>(n));
        typename Opt::Hyper h;
        h.base = base_params<Base>();
        h.rule.lr_out = 0.01;  // s·lr_out < 1 even for Adam's first steps (s = 10)
        h.weight_decay = 0.01;
        const auto init = init_with_zeros<S>(rng, n);
        Run<Opt> run(h, init);
        std::size_t broken = 0;
        for (int t = 0; t < 200; ++t) {
          run.step(test::uniform<S>(rng, n, -3.0, 3.0));
          for (std::size_t i = 0; i < n; ++i) {
            const S x = run.param[i];
            const bool kept = init[i] == S(0) ? x == S(0)
                                              : x != S(0) && std::isfinite(x) && std::signbit(x) == std::signbit(init[i]);
            broken += !kept;
          }
        }
        CHECK(broken == 0);
        CHECK(run.param != init);  // the weights did move
      }
    });
  });
}

// lr_in = 100 saturates tanh for all but tiny directions, so each step reaches the bound on most
// weights: a wrong scale s shows either as a step past the bound or as a bound never reached.
TEMPLATE_TEST_CASE("the multiplicative rule moves a weight by at most s*lr_out*|theta| per step, and by that much "
                   "when tanh saturates",
                   "[property]", float, double) {
  using S = TestType;
  for_each_base([](auto base_tag) {
    using Base = typename decltype(base_tag)::type;
    using Opt = Optimizer<Base, rules::Multiplicative, S>;
    typename Opt::Hyper h;
    h.base = base_params<Base>();
    h.rule.lr_in = 100.0;
    h.rule.lr_out = 0.02;
    // Rounding: lr_out·s, ·|θ| and ·tanh are each rounded (3 half-ulps, relative), θ − step once
    // (half an ulp of θ); the allowance is twice that.
    const long double eps = std::numeric_limits<S>::epsilon();
    for (const std::size_t n : kSizes) {
      INFO(Base::name << " n = " << n);
      std::mt19937 rng(static_cast<unsigned>(n) + 1);
      Run<Opt> run(h, test::uniform<S>(rng, n, -2.0, 2.0));
      std::size_t past_bound = 0, unsaturated_steps = 0;
      for (long t = 1; t <= 30; ++t) {
        const auto before = run.param;
        run.step(test::uniform<S>(rng, n, -1.0, 1.0));
        const long double limit = scale_of(h.base, t) * static_cast<long double>(h.rule.lr_out);
        long double largest = 0;  // of |Δθ| / (s·lr_out·|θ|)
        for (std::size_t i = 0; i < n; ++i) {
          const long double old = before[i], change = std::fabs(static_cast<long double>(run.param[i]) - old);
          const long double bound = limit * std::fabs(old);
          past_bound += change > bound * (1 + 4 * eps) + 2 * ulp(before[i]);
          if (old != 0) largest = std::max(largest, change / bound);
        }
        unsaturated_steps += largest < 0.99L;
      }
      CHECK(past_bound == 0);
      if (n >= 7) CHECK(unsaturated_steps == 0);
    }
  });
}

// Exact, not within an ulp: the hybrid rounds g·s·lr_out and (1−g)·s·lr once from double, so
// at g = 1 (g = 0) its coefficients are the multiplicative (additive) rule's bit for bit and the
// other term is an exact zero, whose subtraction changes nothing. The state belongs to the base
// and sees the same θ (through weight decay), so it is identical too.
TEMPLATE_TEST_CASE("the hybrid rule is the multiplicative rule at g = 1 and the additive rule at g = 0, bit for bit",
                   "[property]", float, double) {
  using S = TestType;
  for_each_base([](auto base_tag) {
    using Base = typename decltype(base_tag)::type;
    using Mult = Optimizer<Base, rules::Multiplicative, S>;
    using Add = Optimizer<Base, rules::Additive, S>;
    using Hyb = Optimizer<Base, rules::Hybrid, S>;
    const auto base = base_params<Base>();
    const double wd = 0.01, lr_in = 1.5, lr_out = 0.01, lr = 0.02;
    typename Mult::Hyper hm(arg::lr_in = lr_in, arg::lr_out = lr_out, arg::weight_decay = wd);
    typename Add::Hyper ha(arg::lr = lr, arg::weight_decay = wd);
    typename Hyb::Hyper h1(arg::lr_in = lr_in, arg::lr_out = lr_out, arg::lr = lr, arg::g_mix = 1.0,
                           arg::weight_decay = wd);
    typename Hyb::Hyper h0 = h1;
    h0.rule.g_mix = 0.0;
    hm.base = ha.base = h1.base = h0.base = base;
    for (const std::size_t n : kSizes) {
      INFO(Base::name << " n = " << n);
      std::mt19937 rng(static_cast<unsigned>(n) + 2);
      const auto init = test::uniform<S>(rng, n, -2.0, 2.0);
      Run<Mult> mult(hm, init);
      Run<Hyb> one(h1, init), zero(h0, init);
      Run<Add> add(ha, init);
      std::size_t param_mismatches = 0, state_mismatches = 0;
      for (int t = 0; t < 50; ++t) {
        const auto g = test::uniform<S>(rng, n, -1.0, 1.0);
        mult.step(g);
        one.step(g);
        add.step(g);
        zero.step(g);
        param_mismatches += (mult.param != one.param) + (add.param != zero.param);
        state_mismatches += !same_state(mult, one) + !same_state(add, zero);
      }
      CHECK(param_mismatches == 0);
      CHECK(state_mismatches == 0);
      CHECK(mult.param != add.param);  // the two ends do differ
    }
  });
}

namespace {

// A non-negative rule against the additive rule stepped from the same θ with the same state:
// each step must give expected(additive result), and never a negative weight.
template <class Base, class Rule, class S, class Expected>
void check_nonnegative_rule(Expected expected) {
  using Opt = Optimizer<Base, Rule, S>;
  using Add = Optimizer<Base, rules::Additive, S>;
  typename Opt::Hyper h(arg::lr = 0.1, arg::weight_decay = 0.01);
  h.base = base_params<Base>();
  typename Add::Hyper ha(arg::lr = 0.1, arg::weight_decay = 0.01);
  ha.base = h.base;
  for (const std::size_t n : kSizes) {
    INFO(Base::name << " with the " << Rule::name << " rule, n = " << n);
    std::mt19937 rng(static_cast<unsigned>(n) + 3);
    auto init = test::uniform<S>(rng, n, 0.0, 1.0);
    for (std::size_t i = 3; i < n; i += 4) init[i] = S(0);
    Run<Opt> run(h, init);
    Run<Add> additive(ha, init);
    std::size_t negative = 0, mismatched = 0, crossed = 0;
    for (int t = 0; t < 60; ++t) {
      additive.set_param(run.param);
      const auto g = test::uniform<S>(rng, n, -0.5, 1.5);  // mostly downhill, towards and past zero
      run.step(g);
      additive.step(g);
      for (std::size_t i = 0; i < n; ++i) {
        negative += !(run.param[i] >= S(0));
        mismatched += run.param[i] != expected(additive.param[i]);
        crossed += additive.param[i] < S(0);
      }
    }
    CHECK(negative == 0);
    CHECK(mismatched == 0);
    if (n >= 7) CHECK(crossed > 0);  // the additive rule would have gone negative somewhere
  }
}

}  // namespace

TEMPLATE_TEST_CASE("clip and reflect keep every weight >= 0: max(additive, 0) and |additive|", "[property]", float,
                   double) {
  using S = TestType;
  for_each_base([](auto base_tag) {
    using Base = typename decltype(base_tag)::type;
    check_nonnegative_rule<Base, rules::NonNegativeClip, S>([](S x) { return std::max(x, S(0)); });
    check_nonnegative_rule<Base, rules::NonNegativeReflect, S>([](S x) { return std::abs(x); });
  });
}

// Exact: with momentum 0 SGD passes its input through, so both compute tanh(lr_in·(g + wd·θ))
// and apply θ − lr_out·|θ|·that with the same coefficients.
TEMPLATE_TEST_CASE("tanh momentum with momentum 0 is plain multiplicative SGD, bit for bit", "[property]", float,
                   double) {
  using S = TestType;
  using Tanh = multopt::MSGDTanhMomentum<S>;
  using Mult = multopt::MSGD<S>;
  const typename Tanh::Hyper ht(arg::lr_in = 1.5, arg::lr_out = 0.02, arg::weight_decay = 0.01);
  const typename Mult::Hyper hm(arg::lr_in = 1.5, arg::lr_out = 0.02, arg::weight_decay = 0.01);
  for (const std::size_t n : kSizes) {
    INFO("n = " << n);
    std::mt19937 rng(static_cast<unsigned>(n) + 4);
    const auto init = test::uniform<S>(rng, n, -2.0, 2.0);
    Run<Tanh> with_tanh(ht, init);
    Run<Mult> plain(hm, init);
    std::size_t mismatches = 0;
    for (int t = 0; t < 50; ++t) {
      const auto g = test::uniform<S>(rng, n, -2.0, 2.0);
      with_tanh.step(g);
      plain.step(g);
      mismatches += with_tanh.param != plain.param;
    }
    CHECK(mismatches == 0);
    CHECK(plain.param != init);
  }
}

namespace {

template <class S>
std::vector<S> gradient(std::size_t tensor, long step, std::size_t n) {
  std::vector<S> g(n);
  for (std::size_t i = 0; i < n; ++i) g[i] = S(std::sin(0.37 * double(i) + 1.3 * double(step) + 2.1 * double(tensor)));
  return g;
}

}  // namespace

// Every combination made by name.
TEMPLATE_TEST_CASE("each tensor keeps its own step count: one added later runs as in a fresh optimizer",
                   "[property]", float, double) {
  using S = TestType;
  const auto combination = GENERATE(from_range(test::every_combination()));
  INFO(test::describe(combination));
  const std::size_t sizes[] = {7, 19, 1};
  const long added_at[] = {0, 5, 8}, total_steps = 15;
  std::vector<std::vector<S>> params, grads;
  for (std::size_t k = 0; k < 3; ++k) {
    std::mt19937 rng(static_cast<unsigned>(k) + 5);
    params.push_back(test::uniform<S>(rng, sizes[k], -2.0, 2.0));
    grads.emplace_back(sizes[k]);
  }
  const auto shared = test::make_stateful<S>(combination);
  std::vector<test::Made<S>> alone;  // each tensor in its own fresh optimizer, on copies of its values
  std::vector<std::vector<S>> alone_params(3), alone_grads(3);
  std::size_t mismatches = 0;
  for (long step = 0; step < total_steps; ++step) {
    for (std::size_t k = 0; k < 3; ++k) {
      if (added_at[k] != step) continue;
      REQUIRE(shared->add_params(params[k].data(), grads[k].data(), sizes[k]) == k);
      CHECK(shared->step_count(k) == 0);
      CHECK(test::tensor_state(*shared, k).holds_no_array());
      alone_params[k] = params[k];
      alone_grads[k].resize(sizes[k]);
      alone.push_back(test::make_stateful<S>(combination));
      alone.back()->add_params(alone_params[k].data(), alone_grads[k].data(), sizes[k]);
    }
    for (std::size_t k = 0; k < alone.size(); ++k) {
      const auto g = gradient<S>(k, step - added_at[k], sizes[k]);
      std::copy(g.begin(), g.end(), grads[k].begin());
      std::copy(g.begin(), g.end(), alone_grads[k].begin());
      alone[k]->step();
    }
    shared->step();
    for (std::size_t k = 0; k < alone.size(); ++k) {
      mismatches += !test::same_bits(params[k], alone_params[k]);
      mismatches += test::tensor_state(*shared, k) != test::tensor_state(*alone[k], 0);
    }
  }
  CHECK(mismatches == 0);
  CHECK(shared->step_count(0) == 15);
  CHECK(shared->step_count(1) == 10);
  CHECK(shared->step_count(2) == 7);
}

namespace {

// n values stepped as one tensor, as tensors cut at odd offsets, and cut and threaded: every
// element must see the same arithmetic, wherever it falls in a packet or a padded tail.
template <class S>
std::size_t split_mismatches(const test::Combination& combination) {
  constexpr std::size_t n = 1000;
  const std::size_t cuts[] = {0, 3, 20, 521, n};
  std::mt19937 rng(6);
  const auto init = test::uniform<S>(rng, n, -2.0, 2.0);
  std::vector<S> whole = init, pieces = init, threaded = init, grad(n);
  const auto one = test::make_stateful<S>(combination), cut = test::make_stateful<S>(combination),
             cut_threaded = test::make_stateful<S>(combination);
  one->add_params(whole.data(), grad.data(), n);
  for (std::size_t k = 0; k + 1 < std::size(cuts); ++k) {
    cut->add_params(pieces.data() + cuts[k], grad.data() + cuts[k], cuts[k + 1] - cuts[k]);
    cut_threaded->add_params(threaded.data() + cuts[k], grad.data() + cuts[k], cuts[k + 1] - cuts[k]);
  }
  multopt::Parallel parallel;  // threads in OpenMP builds; the same serial loop otherwise
  parallel.threads = 3;
  parallel.serial_below = 0;
  parallel.chunk = 40;
  cut_threaded->set_parallel(parallel);

  std::size_t mismatches = 0;
  for (int t = 0; t < 20; ++t) {
    const auto g = test::uniform<S>(rng, n, -1.0, 1.0);
    std::copy(g.begin(), g.end(), grad.begin());  // in place: the optimizers hold its address
    for (const auto* opt : {&one, &cut, &cut_threaded}) (*opt)->step();
    mismatches += !test::same_bits(whole, pieces) + !test::same_bits(whole, threaded);
  }
  const auto expected = test::tensor_state(*one, 0);
  for (std::size_t a = 0; a < expected.arrays.size(); ++a) {
    std::vector<S> joined, joined_threaded;
    for (std::size_t k = 0; k < cut->tensor_count(); ++k) {
      const auto part = test::tensor_state(*cut, k).arrays[a];
      const auto part_threaded = test::tensor_state(*cut_threaded, k).arrays[a];
      joined.insert(joined.end(), part.begin(), part.end());
      joined_threaded.insert(joined_threaded.end(), part_threaded.begin(), part_threaded.end());
    }
    mismatches += !test::same_bits(joined, expected.arrays[a]) + !test::same_bits(joined_threaded, expected.arrays[a]);
  }
  for (std::size_t k = 0; k < cut->tensor_count(); ++k)  // scalar state: one per tensor, the same in each
    mismatches += !test::same_bits(test::tensor_state(*cut, k).scalars, expected.scalars) +
                  !test::same_bits(test::tensor_state(*cut_threaded, k).scalars, expected.scalars);
  return mismatches + (whole == init);  // a run that never moved would prove nothing
}

}  // namespace

// Every combination made by name.
TEMPLATE_TEST_CASE("one tensor or the same values cut at odd offsets, serial or threaded, step bit-identically",
                   "[property]", float, double) {
  const auto combination = GENERATE(from_range(test::every_combination()));
  INFO(test::describe(combination));
  CHECK(split_mismatches<TestType>(combination) == 0);
}

namespace {

// Registers an Eigen object and steps it beside the same values through the pointer overload:
// the object's own memory must change, in place, to the same values.
template <class Opt, class P, class G>
void check_steps_in_place(P&& param, const G& grad) {
  using S = typename Opt::Scalar;
  const S* const address = param.data();
  const std::size_t n = std::size_t(param.size());
  const std::vector<S> before(address, address + n);
  std::vector<S> expected = before;
  const std::vector<S> g(grad.data(), grad.data() + n);
  const auto h = test::stateful_hyper<typename Opt::Hyper>();
  Opt by_eigen = test::make<Opt>(h), by_pointer = test::make<Opt>(h);
  by_eigen.add_params(param, grad);
  by_pointer.add_params(expected.data(), g.data(), n);
  for (int t = 0; t < 3; ++t) {
    by_eigen.step();
    by_pointer.step();
  }
  CHECK(param.data() == address);
  const std::vector<S> after(address, address + n);
  CHECK(test::same_bits(after, expected));
  CHECK(after != before);
}

}  // namespace

TEST_CASE("Eigen overloads step the caller's arrays, matrices and maps in place", "[property][eigen]") {
  SECTION("ArrayXf") {
    Eigen::ArrayXf param = Eigen::ArrayXf::LinSpaced(37, -2.0f, 2.0f), grad = Eigen::ArrayXf::LinSpaced(37, 1.0f, -1.0f);
    check_steps_in_place<multopt::MAdam<float>>(param, grad);
  }
  SECTION("ArrayXXd") {
    Eigen::ArrayXXd param = Eigen::ArrayXXd::Random(3, 5), grad = Eigen::ArrayXXd::Random(3, 5);
    check_steps_in_place<multopt::HAdagrad<double>>(param, grad);
  }
  SECTION("Map over a std::vector, with a const Map gradient") {
    std::vector<float> buffer(19), grad_buffer(19);
    for (std::size_t i = 0; i < buffer.size(); ++i) {
      buffer[i] = 0.1f * float(i) - 1.0f;
      grad_buffer[i] = std::cos(float(i));
    }
    Eigen::Map<Eigen::ArrayXf> param(buffer.data(), 19);
    check_steps_in_place<multopt::MRMSprop<float>>(param, Eigen::Map<const Eigen::ArrayXf>(grad_buffer.data(), 19));
  }
  SECTION("MatrixXf") {
    Eigen::MatrixXf param = Eigen::MatrixXf::Random(4, 3), grad = Eigen::MatrixXf::Random(4, 3);
    check_steps_in_place<multopt::EAdam<float>>(param, grad);
  }
  SECTION("row-major matrix") {
    using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    RowMajor param = RowMajor::Random(3, 7), grad = RowMajor::Random(3, 7);
    check_steps_in_place<multopt::SGD<double>>(param, grad);
  }
  SECTION("a column of a matrix, leaving the other columns alone") {
    Eigen::MatrixXd param = Eigen::MatrixXd::Random(5, 3), grad = Eigen::MatrixXd::Random(5, 3);
    const Eigen::MatrixXd before = param;
    check_steps_in_place<multopt::MSGD<double>>(param.col(1), grad.col(1));
    CHECK((param.col(0) == before.col(0)));
    CHECK((param.col(2) == before.col(2)));
    CHECK((param.col(1) != before.col(1)));
  }
}

// A copy would step the caller's buffers a second time with state of its own, so optimizers
// move but do not copy; a moved-to optimizer goes on exactly where the original was.
static_assert(!std::is_copy_constructible_v<multopt::HAdam<float>> && !std::is_copy_assignable_v<multopt::HAdam<float>>);
static_assert(std::is_nothrow_move_constructible_v<multopt::HAdam<float>> &&
              std::is_nothrow_move_assignable_v<multopt::HAdam<float>>);

TEST_CASE("a moved optimizer steps on bit-identically to one that stayed put", "[property]") {
  std::vector<float> stayed(23), moved(23), grad(23);
  for (std::size_t i = 0; i < grad.size(); ++i) {
    stayed[i] = moved[i] = 0.5f - 0.04f * float(i);
    grad[i] = std::sin(float(i));
  }
  multopt::HAdam<float> reference, original;
  reference.add_params(stayed.data(), grad.data(), stayed.size());
  original.add_params(moved.data(), grad.data(), moved.size());
  for (int k = 0; k < 3; ++k) {
    reference.step();
    original.step();
  }
  multopt::HAdam<float> target(std::move(original));
  for (int k = 0; k < 4; ++k) {
    reference.step();
    target.step();
  }
  CHECK(target.step_count(0) == 7);
  CHECK(stayed == moved);
  multopt::HAdam<float> assigned;
  assigned = std::move(target);
  reference.step();
  assigned.step();
  CHECK(stayed == moved);
}

TEMPLATE_TEST_CASE("settings changed between steps take effect at the next step", "[property]", float, double) {
  using S = TestType;
  constexpr std::size_t n = 19;
  std::mt19937 rng(7);
  const auto init = test::uniform<S>(rng, n, -2.0, 2.0);
  auto next_gradient = [&] { return test::uniform<S>(rng, n, -1.0, 1.0); };
  const auto sgd_with_momentum = [] {
    typename multopt::SGD<S>::Hyper hyper(arg::lr = 0.1);
    hyper.base = base_params<bases::Sgd>();
    return hyper;
  };

  SECTION("lr = 0 freezes additive SGD with momentum while its buffer runs on; lr > 0 moves it again") {
    Run<multopt::SGD<S>> run(sgd_with_momentum(), init);
    for (int t = 0; t < 3; ++t) run.step(next_gradient());
    run.opt.set("lr", 0.0);
    const auto frozen = run.param;
    const auto buffer = run.state(0);
    for (int t = 0; t < 3; ++t) run.step(next_gradient());
    CHECK(test::same_bits(run.param, frozen));
    CHECK_FALSE(test::same_bits(run.state(0), buffer));
    run.opt.set("lr", 0.1);
    run.step(next_gradient());
    CHECK(run.param != frozen);
  }
  SECTION("lr_out = 0 freezes multiplicative Adam") {
    Run<multopt::MAdam<S>> run(typename multopt::MAdam<S>::Hyper(arg::lr_in = 1.0, arg::lr_out = 0.01), init);
    for (int t = 0; t < 3; ++t) run.step(next_gradient());
    run.opt.set("lr_out", 0.0);
    const auto frozen = run.param;
    for (int t = 0; t < 3; ++t) run.step(next_gradient());
    CHECK(test::same_bits(run.param, frozen));
  }
  SECTION("g_mix set from 1 to 0 turns hybrid SGD into additive SGD at the next step") {
    Run<multopt::HSGD<S>> hybrid(
        typename multopt::HSGD<S>::Hyper(arg::lr_in = 1.0, arg::lr_out = 0.01, arg::lr = 0.05, arg::g_mix = 1.0), init);
    for (int t = 0; t < 3; ++t) hybrid.step(next_gradient());
    hybrid.opt.set("g_mix", 0.0);
    Run<multopt::SGD<S>> additive(typename multopt::SGD<S>::Hyper(arg::lr = 0.05), hybrid.param);
    const auto g = next_gradient();
    hybrid.step(g);
    additive.step(g);
    CHECK(hybrid.param == additive.param);
  }
  SECTION("set_hyper on one group changes only that group's tensors") {
    multopt::MSGD<S> opt(arg::lr_in = 1.0, arg::lr_out = 0.05);
    opt.add_group(opt.hyper());
    std::vector<S> first = init, second = init, grad(n);
    opt.add_params(first.data(), grad.data(), n, 0);
    opt.add_params(second.data(), grad.data(), n, 1);
    auto g = next_gradient();
    std::copy(g.begin(), g.end(), grad.begin());
    opt.step();
    auto frozen = opt.hyper(1);
    frozen.rule.lr_out = 0.0;
    opt.set_hyper(frozen, 1);
    const auto first_before = first, second_before = second;
    g = next_gradient();
    std::copy(g.begin(), g.end(), grad.begin());
    opt.step();
    CHECK(first != first_before);
    CHECK(test::same_bits(second, second_before));
  }
  SECTION("momentum set to 0 frees the buffer; set back, the buffer restarts as on a first step") {
    Run<multopt::SGD<S>> run(sgd_with_momentum(), init);
    for (int t = 0; t < 3; ++t) run.step(next_gradient());
    run.opt.set("momentum", 0.0);
    run.step(next_gradient());
    CHECK(run.opt.state(0, 0) == nullptr);
    run.opt.set("momentum", 0.9);
    Run<multopt::SGD<S>> fresh(sgd_with_momentum(), run.param);
    const auto g = next_gradient();
    run.step(g);
    fresh.step(g);
    CHECK(test::same_bits(run.param, fresh.param));
    CHECK(test::same_bits(run.state(0), fresh.state(0)));
  }
}

namespace {

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", value);
  return text;
}

// Random settings within REFERENCE.md's ranges; the bits of `variant` switch on the optional
// features: momentum (SGD, RMSprop), amsgrad, lr_decay; then Nesterov, initial_accumulator_value,
// centered; then weight decay.
multopt::Settings random_settings(const std::string& base, const std::string& rule, bool tanh_momentum,
                                  unsigned variant, std::mt19937& rng) {
  auto u = [&](double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); };
  multopt::Settings s;
  auto put = [&](const char* name, double value) { s.emplace_back(name, number(value)); };
  const bool first = variant & 1, second = variant & 2, third = variant & 4;
  if (base == "sgd") {
    if (first || tanh_momentum) put("momentum", u(0.5, 0.95));
    if ((first || tanh_momentum) && second) put("nesterov", 1);
    else if (first) put("dampening", u(0.0, 0.5));
  } else if (base == "adam") {
    put("beta1", u(0.5, 0.95));
    put("beta2", u(0.9, 0.9999));
    put("eps", u(1e-8, 1e-3));
    if (first) put("amsgrad", 1);
  } else if (base == "adagrad") {
    if (first) put("lr_decay", u(0.01, 0.2));
    if (second) put("initial_accumulator_value", u(0.01, 0.5));
    put("eps", u(1e-10, 1e-3));
  } else {
    put("alpha", u(0.5, 0.99));
    put("eps", u(1e-8, 1e-3));
    if (first) put("momentum", u(0.1, 0.9));
    if (second) put("centered", 1);
  }
  if (third) put("weight_decay", u(0.001, 0.1));
  if (tanh_momentum) s.emplace_back("momentum_type", "tanh");
  if (rule == "additive" || rule == "hybrid") put("lr", u(0.001, 0.01));
  if (rule != "additive") {
    put("lr_in", u(0.5, 3.0));
    put("lr_out", u(0.001, 0.02));
  }
  if (rule == "hybrid") put("g", u(0.0, 1.0));
  return s;
}

std::string describe(const multopt::Settings& settings) {
  std::string text;
  for (const auto& [name, value] : settings) text += name + "=" + value + " ";
  return text;
}

// The worst relative error over 3 steps of multopt in S against the model, for one setting.
template <class S>
double worst_error_against_model(const std::string& base, const std::string& rule, const multopt::Settings& settings,
                                 std::mt19937& rng) {
  const std::size_t n = 1 + rng() % 40;
  std::vector<double> init(n);
  std::uniform_real_distribution<double> magnitude(0.5, 2.0);
  for (auto& x : init) x = (rng() % 2 ? 1 : -1) * magnitude(rng);  // far from 0: relative error is meaningful
  const auto opt = multopt::make_optimizer<S>(base, rule, settings);
  std::vector<S> param(init.begin(), init.end()), grad(n);
  opt->add_params(param.data(), grad.data(), n);
  reference::Model model(base, rule, settings, init);
  double worst = 0;
  for (int t = 0; t < 3; ++t) {
    const auto g = test::uniform<double>(rng, n, -1.0, 1.0);
    std::copy(g.begin(), g.end(), grad.begin());
    opt->step();
    model.step(g);
    for (std::size_t i = 0; i < n; ++i) {
      const long double ref = model.theta()[i];
      worst = std::max(worst, double(std::fabs(static_cast<long double>(param[i]) - ref) / std::fabs(ref)));
    }
  }
  return worst;
}

}  // namespace

TEST_CASE("every base and rule follows REFERENCE.md's formulas: 3 steps within 1e-13 (double) and 1e-5 (float) "
          "of an independent long-double model",
          "[property][formula]") {
  struct Combination {
    const char* base;
    const char* rule;
    bool tanh_momentum;
  };
  std::vector<Combination> combinations;
  for (const char* base : {"sgd", "adam", "adagrad", "rmsprop"})
    for (const char* rule : {"additive", "multiplicative", "hybrid", "exponential"})
      combinations.push_back({base, rule, false});
  combinations.push_back({"sgd", "multiplicative", true});

  std::mt19937 rng(2024);
  for (const auto& c : combinations) {
    for (unsigned variant = 0; variant < 8; ++variant) {
      for (int trial = 0; trial < 3; ++trial) {
        const auto settings = random_settings(c.base, c.rule, c.tanh_momentum, variant, rng);
        INFO(c.base << " with the " << c.rule << " rule: " << describe(settings));
        CHECK(worst_error_against_model<double>(c.base, c.rule, settings, rng) <= 1e-13);
        CHECK(worst_error_against_model<float>(c.base, c.rule, settings, rng) <= 1e-5);
      }
    }
  }
}
