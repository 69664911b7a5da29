// Properties of the update rules over every base in float and double, at sizes that are not
// multiples of any SIMD width: signs and zeros kept, the bound on a multiplicative step, the
// hybrid's two ends, the non-negative rules, tanh momentum at momentum 0; and settings changed
// between steps. (The stepping machinery: stepping_test.cpp; the formulas against an independent
// model: formula_test.cpp.)
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <type_traits>
#include <utility>
#include <vector>

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

// The scale s of docs/math.md at step t, which multiplies lr and lr_out.
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
  std::vector<S> state(int array) const { return test::state_copy(opt, 0, array); }
};

// Whether two runs of the same base hold bit-identical state arrays.
template <class A, class B>
bool same_state(const Run<A>& a, const Run<B>& b) {
  for (int array = 0; array < A::BaseType::array_count; ++array)
    if (!test::same_bits(a.state(array), b.state(array))) return false;
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
