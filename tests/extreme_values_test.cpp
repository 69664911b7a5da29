// Extreme values: parameters and gradients from ±0 and subnormals to the top of the range,
// saturated tanh, learning rates at their bounds, the exponential rule at the edges of the
// range, a long run of 10^6 steps for every base and rule, and every hyperparameter at ±inf,
// NaN and the largest values.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace arg = multopt::arg;

namespace {

namespace rules = multopt::rules;

// The rules under which no step changes a parameter's sign.
bool keeps_signs(const test::Combination& c) {
  return c.second == rules::Multiplicative::name || c.second == rules::Exponential::name ||
         c.second == rules::TanhMomentum::name;
}

bool is_nonnegative(const test::Combination& c) {
  return c.second == rules::NonNegativeClip::name || c.second == rules::NonNegativeReflect::name;
}

// Sets the learning rates (lr, and lr_out where the rule has one) to `rate`.
template <class P>
void set_rates(multopt::AnyOptimizer<P>& opt, double rate) {
  multopt::NamedValues rates;
  for (const auto& name : opt.hyperparameter_names())
    if (name == "lr" || name == "lr_out") rates.emplace_back(name, rate);
  opt.set_all(rates);
}

// Magnitudes from zero to `top`: 0, the smallest subnormal, the smallest normal, then powers of
// ten up to `top`, each with both signs.
template <class S>
std::vector<S> magnitudes(double top) {
  using limits = std::numeric_limits<S>;
  std::vector<S> values = {S(0), limits::denorm_min(), limits::min()};
  for (double x = 1e-30; x <= top; x *= 1e5) values.push_back(S(x));
  values.push_back(S(top));
  const std::size_t positive = values.size();
  for (std::size_t k = 0; k < positive; ++k) values.push_back(-values[k]);
  return values;
}

// The largest gradient whose square is still finite, with room for sums of a few of them.
template <class S>
double largest_gradient() {
  return sizeof(S) == sizeof(float) ? 1e18 : 1e150;
}

}  // namespace

// Every combination made by name; the 16-bit types have ranges of their own (mixed_precision_test).
TEMPLATE_TEST_CASE("every base and rule stays finite, and keeps signs where it should, from subnormal "
                   "to huge parameters and gradients",
                   "[extreme]", double, float) {
  using S = TestType;
  const auto combination = GENERATE(from_range(test::every_combination()));
  const std::vector<S> params = magnitudes<S>(std::numeric_limits<S>::max() / 4);
  const std::vector<S> grads = magnitudes<S>(largest_gradient<S>());
  for (const bool stateful : {false, true}) {
    INFO(test::describe(combination) << ", " << (stateful ? "every state array in use" : "default settings"));
    auto opt = stateful ? test::make_stateful<S>(combination) : test::make_named<S>(combination);
    opt->set("weight_decay", 0.0);  // θ·weight_decay would add a huge gradient to a small one
    // Every parameter against every gradient.
    std::vector<S> theta, grad;
    for (S p : params)
      for (S g : grads) {
        theta.push_back(p);
        grad.push_back(g);
      }
    const std::vector<S> start = theta;
    opt->add_params(theta.data(), grad.data(), theta.size());
    for (int k = 0; k < 5; ++k) opt->step();
    for (std::size_t i = 0; i < theta.size(); ++i) {
      INFO("theta " << start[i] << " grad " << grad[i] << " -> " << theta[i]);
      REQUIRE(std::isfinite(theta[i]));
      if (keeps_signs(combination)) {
        if (start[i] == 0) REQUIRE(theta[i] == 0);  // either sign of zero: -0 - (-0) is +0 in IEEE
        else REQUIRE(std::signbit(theta[i]) == std::signbit(start[i]));
      }
    }
  }
}

TEMPLATE_TEST_CASE("zero learning rates leave every parameter as it was", "[extreme]", double, float) {
  using S = TestType;
  const auto combination = GENERATE(from_range(test::every_combination()));
  INFO(test::describe(combination));
  auto opt = test::make_stateful<S>(combination);
  set_rates(*opt, 0.0);
  std::vector<S> theta = magnitudes<S>(1e6), grad(theta.size());
  for (std::size_t i = 0; i < grad.size(); ++i) grad[i] = S(std::sin(double(i)));
  // The non-negative rules still project onto θ >= 0.
  std::vector<S> expected = theta;
  for (S& x : expected) {
    if (combination.second == rules::NonNegativeClip::name) x = std::max(x, S(0));
    if (combination.second == rules::NonNegativeReflect::name) x = std::abs(x);
  }
  opt->add_params(theta.data(), grad.data(), theta.size());
  for (int k = 0; k < 3; ++k) opt->step();
  CHECK(theta == expected);  // bit for bit but for the sign of zeros: -0 - (-0) is +0 in IEEE
  CHECK(opt->step_count(0) == 3);
}

TEMPLATE_TEST_CASE("a saturated tanh moves a multiplicative weight by exactly s*lr_out*|theta|", "[extreme]", float,
                   double) {
  using S = TestType;
  multopt::MSGD<S> opt(arg::lr_in = 1e30, arg::lr_out = 0.25);
  std::vector<S> theta = {S(3), S(-3), S(1e-20), S(-1e30)}, grad = {S(1e-20), S(-1e-20), S(-2), S(5)};
  opt.add_params(theta.data(), grad.data(), theta.size());
  opt.step();
  // θ·(1 ∓ 0.25), against the sign of the gradient: the rounding of one multiplication.
  CHECK(theta[0] == S(3) * S(0.75));
  CHECK(theta[1] == S(-3) * S(0.75));
  CHECK(theta[2] == S(1e-20) * S(1.25));
  CHECK(theta[3] == S(-1e30) * S(1.25));
}

TEMPLATE_TEST_CASE("the exponential rule at the edges of the range: overflow to infinity, underflow to a "
                   "signed zero, zero stays zero at any rate",
                   "[extreme]", float, double) {
  using S = TestType;
  using limits = std::numeric_limits<S>;
  // One step with lr_out = 1 and a saturated tanh scales |θ| by 2 (growing) or 1/2 (shrinking).
  multopt::ESGD<S> opt(arg::lr_in = 1e30, arg::lr_out = 1.0);
  std::vector<S> theta = {limits::max(), -limits::max(), limits::denorm_min(), -limits::denorm_min(),
                          S(0), S(-0.0)};
  std::vector<S> grad = {S(-1), S(1), S(1), S(-1), S(1), S(-1)};
  opt.add_params(theta.data(), grad.data(), theta.size());
  opt.step();
  CHECK(theta[0] == limits::infinity());  // IEEE overflow, as θ·2 in any float code
  CHECK(theta[1] == -limits::infinity());
  CHECK(theta[2] == 0);
  CHECK(!std::signbit(theta[2]));
  CHECK(theta[3] == 0);
  CHECK(std::signbit(theta[3]));
  CHECK(theta[4] == 0);
  CHECK(theta[5] == 0);
  CHECK(std::signbit(theta[5]));

  // A rate so large that the factor itself overflows (2^1e30) would turn a weight of 1 into
  // inf: the step refuses it, naming lr_out, and changes nothing.
  multopt::ESGD<S> huge(arg::lr_in = 1.0, arg::lr_out = 1e30);
  std::vector<S> zeros = {S(0), S(-0.0), S(1)}, push = {S(-1), S(1), S(1)};
  const std::vector<S> before = zeros;
  huge.add_params(zeros.data(), push.data(), zeros.size());
  REQUIRE_THROWS_MATCHES(huge.step(), std::invalid_argument, test::names({"lr_out", "1e+30"}));
  CHECK(test::same_bits(zeros, before));
  CHECK(huge.step_count(0) == 0);
}

TEMPLATE_TEST_CASE("a long run: 10^6 steps of a quadratic stay finite and reach its minimum", "[extreme][long]",
                   double, float) {
  using S = TestType;
  const auto combination = GENERATE(from_range(test::every_combination()));
  INFO(test::describe(combination));
  // f(θ) = ½·Σ (θ_i − c_i)², from θ on the same side of zero as c (multiplicative rules keep signs).
  std::vector<S> target = {S(1.5), S(-0.75), S(2.0), S(0.25), S(-3.0)};
  std::vector<S> theta = {S(0.5), S(-1.5), S(1.0), S(1.25), S(-2.0)}, grad(theta.size());
  if (is_nonnegative(combination)) {
    for (S& c : target) c = std::abs(c);
    for (S& x : theta) x = std::abs(x);
  }
  auto opt = test::make_named<S>(combination);
  set_rates(*opt, 0.01);
  opt->add_params(theta.data(), grad.data(), theta.size());
  for (long step = 0; step < 1000000; ++step) {
    for (std::size_t i = 0; i < theta.size(); ++i) grad[i] = theta[i] - target[i];
    opt->step();
  }
  for (std::size_t i = 0; i < theta.size(); ++i) {
    INFO("theta " << theta[i] << " target " << target[i]);
    REQUIRE(std::isfinite(theta[i]));
    CHECK(std::abs(theta[i] - target[i]) <= 0.02 * std::abs(target[i]));
  }
}

namespace {

// The values item 14 of the hardening issue feeds every hyperparameter: ±inf, NaN, the largest
// double and the largest S.
template <class S>
std::vector<double> extreme_settings() {
  using limits = std::numeric_limits<double>;
  std::vector<double> values = {limits::infinity(), -limits::infinity(), limits::quiet_NaN(), limits::max()};
  if (double(std::numeric_limits<S>::max()) != limits::max()) values.push_back(double(std::numeric_limits<S>::max()));
  return values;
}

// Sets `name` (a hyperparameter, or max_grad_norm, the setting of the optimizer itself) to value.
template <class P>
void set_setting(multopt::AnyOptimizer<P>& opt, const std::string& name, double value) {
  if (name == "max_grad_norm") opt.set_max_grad_norm(value);
  else opt.set(name, value);
}

template <class P>
double get_setting(const multopt::AnyOptimizer<P>& opt, const std::string& name) {
  return name == "max_grad_norm" ? opt.max_grad_norm() : opt.get(name);
}

}  // namespace

// Each value is either refused, by set() or by the step, with a message naming the setting and
// nothing changed, or accepted, and then every step on parameters and gradients in [-1, 1]
// gives finite parameters. Both from the defaults and with every state array and rule term in
// use (Nesterov momentum, AMSGrad, centered RMSprop, coupled decay). The parameters are reset
// before each step: finite data each time, with the state the steps before built.
TEMPLATE_TEST_CASE("every hyperparameter at +-inf, NaN, the largest double or the largest scalar is refused "
                   "naming it, or steps finite data to finite parameters",
                   "[extreme][hyper]", double, float) {
  using S = TestType;
  const auto combination = GENERATE(from_range(test::every_combination()));
  const std::vector<S> start = {S(1), S(-1), S(0.5), S(-0.25), S(1e-3), S(0), S(-0.0), S(0.75), S(-1e-6),
                                S(0.125), S(-0.5)};
  std::vector<std::string> settings = test::make_named<S>(combination)->hyperparameter_names();
  settings.push_back("max_grad_norm");
  for (const bool stateful : {false, true}) {
    for (const auto& name : settings) {
      for (const double value : extreme_settings<S>()) {
        INFO(test::describe(combination) << ", " << (stateful ? "every state array in use" : "default settings")
                                         << ": " << name << " = " << test::text_of(value));
        auto opt = stateful ? test::make_stateful<S>(combination) : test::make_named<S>(combination);
        std::vector<S> theta = start, grad(start.size());
        opt->add_params(theta.data(), grad.data(), theta.size());
        const double before = get_setting(*opt, name);
        try {
          set_setting(*opt, name, value);
        } catch (const std::invalid_argument& e) {
          REQUIRE_THAT(e, test::names({name}));
          CHECK(test::same_bits(std::vector<double>{get_setting(*opt, name)}, std::vector<double>{before}));
          continue;
        }
        for (int k = 0; k < 3; ++k) {
          theta = start;
          for (std::size_t i = 0; i < grad.size(); ++i) grad[i] = S(i % 4 == 3 ? 0.0 : std::cos(double(3 * i + k)));
          const auto state = test::tensor_states(*opt);
          const long steps = opt->step_count(0);
          try {
            opt->step();
          } catch (const std::invalid_argument& e) {
            INFO("step " << k + 1 << " refused: " << e.what());
            REQUIRE_THAT(e, test::names({name}));
            REQUIRE(test::same_bits(theta, start));
            REQUIRE(opt->step_count(0) == steps);
            REQUIRE(test::tensor_states(*opt) == state);
            break;
          }
          for (std::size_t i = 0; i < theta.size(); ++i) {
            INFO("step " << k + 1 << ": theta " << start[i] << " grad " << grad[i] << " -> " << theta[i]);
            REQUIRE(std::isfinite(theta[i]));
          }
        }
      }
    }
  }
}
