// The bases beyond the paper's four (Adamax, NAdam, RAdam, Adadelta, Lion): RAdam's two
// branches, NAdam's per-tensor mu_product through steps, skips, failed steps, named state and
// checkpoints, and their names, defaults and aliases. (Their formulas against an independent
// model: formula_test.cpp; golden replays: golden_test.cpp; threads, validation, non-finite
// gradients and the stages before the base: the suites over test::EveryOptimizer.)
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "test_support.hpp"

namespace {

using test::names;

}  // namespace

TEST_CASE("RAdam takes both branches: the bare first moment while rho_t <= 5, then the rectified step",
          "[bases]") {
  // β2 = 0.999 and a constant gradient: ρ_t ≤ 5 for t ≤ 5, each step θ − lr·m/(1−β1^t) = θ − lr·g;
  // at t = 6 the step is lr·r·√(1−β2^t)·m̂/(√v + eps) = lr·r (up to eps), as v = (1−β2^t)·g².
  double theta = 1.0, grad = 0.5;
  multopt::RAdam<double> opt(multopt::arg::lr = 0.1, multopt::arg::eps = 0.0);
  opt.add_params(&theta, &grad, 1);
  opt.step();
  CHECK(theta == 1.0 - 0.1 * 0.5);
  for (int t = 2; t <= 5; ++t) opt.step();
  CHECK(theta == Approx(1.0 - 5 * 0.1 * 0.5).epsilon(1e-14));
  const double before = theta, beta2 = 0.999, t = 6;
  const double rho_inf = 2 / (1 - beta2) - 1, rho_t = rho_inf - 2 * t * std::pow(beta2, t) / (1 - std::pow(beta2, t));
  REQUIRE(rho_t > 5);
  const double r = std::sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t));
  opt.step();
  CHECK(before - theta == Approx(0.1 * r).epsilon(1e-12));
}

TEST_CASE("Adadelta's additive lr defaults to 1.0, as torch's; other bases and rates keep theirs", "[bases]") {
  CHECK(multopt::Adadelta<double>().get("lr") == 1.0);
  CHECK(multopt::HAdadelta<double>().get("lr") == 1.0);
  CHECK(multopt::MAdadelta<double>().get("lr_out") == 1e-3);
  CHECK(multopt::make_optimizer<float>("adadelta", "additive")->get("lr") == 1.0);
  CHECK(multopt::Adam<double>().get("lr") == 1e-3);
  CHECK(multopt::Lion<double>().get("lr") == 1e-3);
}

TEST_CASE("the new bases by name, in AllBases, and as the paper's aliases", "[bases]") {
  const auto lion = multopt::make_optimizer<float>("lion", "multiplicative", {{"lr_out", "0.01"}});
  CHECK(std::string(lion->base_name()) == "lion");
  CHECK(std::string(lion->rule_name()) == "multiplicative");
  REQUIRE_THROWS_MATCHES(multopt::make_optimizer<float>("lamb", "additive"), std::invalid_argument,
                         names({"lamb", "adamax", "nadam", "radam", "adadelta", "lion", "sparse_adam"}));
  int count = 0;
  multopt::for_each_type(multopt::AllBases{}, [&](auto) { ++count; });
  CHECK(count == 10);
  static_assert(std::is_same_v<multopt::MNAdam<float>, multopt::Optimizer<multopt::bases::Nadam,
                                                                          multopt::rules::Multiplicative, float>>);
  static_assert(std::is_same_v<multopt::HLion<double>::BaseType, multopt::bases::Lion>);
  static_assert(std::is_same_v<multopt::EAdamax<double>::RuleType, multopt::rules::Exponential>);
  static_assert(std::is_same_v<multopt::MRAdam<float>::BaseType, multopt::bases::Radam>);
  static_assert(std::is_same_v<multopt::Adadelta<float>::RuleType, multopt::rules::Additive>);
  CHECK(multopt::Adamax<double>::state_names() == std::vector<std::string>{"exp_avg", "exp_inf"});
  CHECK(multopt::NAdam<double>::state_names() == std::vector<std::string>{"exp_avg", "exp_avg_sq", "mu_product"});
  CHECK(multopt::RAdam<double>::state_names() == std::vector<std::string>{"exp_avg", "exp_avg_sq"});
  CHECK(multopt::Adadelta<double>::state_names() == std::vector<std::string>{"square_avg", "acc_delta"});
  CHECK(multopt::Lion<double>::state_names() == std::vector<std::string>{"exp_avg"});
  CHECK(multopt::SparseAdam<double>::state_names() == std::vector<std::string>{"exp_avg", "exp_avg_sq"});
}

namespace {

// NAdam's μ_t.
double mu(double beta1, double psi, long t) { return beta1 * (1.0 - 0.5 * std::pow(0.96, double(t) * psi)); }

// Three tensors of NAdam with the hybrid rule, and their gradients.
template <class S>
struct NadamRig {
  std::vector<std::vector<S>> params{{S(1), S(-2), S(0.5)}, {S(0.25), S(3), S(-1), S(2), S(1.5)}, {S(-0.75)}};
  std::vector<std::vector<S>> grads{params.size()};
  multopt::HNAdam<S> opt{multopt::arg::lr = 0.01, multopt::arg::lr_out = 0.01, multopt::arg::momentum_decay = 0.05};
  int t = 0;

  NadamRig() {
    for (std::size_t k = 0; k < params.size(); ++k) {
      grads[k].resize(params[k].size());
      opt.add_params(params[k].data(), grads[k].data(), params[k].size());
    }
  }
  void set_gradients() {
    ++t;
    for (std::size_t k = 0; k < grads.size(); ++k)
      for (std::size_t i = 0; i < grads[k].size(); ++i) grads[k][i] = S(std::sin(double(t * 7 + k * 3 + i)));
  }
  void step() {
    set_gradients();
    opt.step();
  }
};

}  // namespace

TEST_CASE("NAdam's mu_product is the product of every mu_t of the tensor's own steps", "[bases][scalar-state]") {
  NadamRig<double> rig;
  CHECK(rig.opt.scalar_state(0, "mu_product") == 1.0);
  for (int k = 0; k < 4; ++k) rig.step();
  double product = 1.0;
  for (long t = 1; t <= 4; ++t) product *= mu(0.9, 0.05, t);
  for (std::size_t k = 0; k < 3; ++k) CHECK(rig.opt.scalar_state(k, "mu_product") == Approx(product).epsilon(1e-15));
  CHECK(rig.opt.state_names(0) == std::vector<std::string>{"exp_avg", "exp_avg_sq", "mu_product"});

  // A tensor added later starts at 1 and counts its own steps.
  std::vector<double> late{1.0, 2.0}, late_grad{0.1, -0.2};
  rig.opt.add_params(late.data(), late_grad.data(), 2);
  CHECK(rig.opt.scalar_state(3, "mu_product") == 1.0);
  rig.step();
  CHECK(rig.opt.scalar_state(3, "mu_product") == Approx(mu(0.9, 0.05, 1)).epsilon(1e-15));
  CHECK(rig.opt.scalar_state(0, "mu_product") == Approx(product * mu(0.9, 0.05, 5)).epsilon(1e-15));
}

TEST_CASE("a skipped tensor and a step that throws leave mu_product as it was", "[bases][scalar-state]") {
  NadamRig<double> rig;
  rig.step();
  const double after_one = rig.opt.scalar_state(1, "mu_product");
  rig.opt.set_non_finite_policy(multopt::NonFinitePolicy::skip);
  rig.set_gradients();
  rig.grads[1][2] = std::numeric_limits<double>::quiet_NaN();
  rig.opt.step();
  CHECK(rig.opt.skipped_tensors() == std::vector<std::size_t>{1});
  CHECK(rig.opt.scalar_state(1, "mu_product") == after_one);
  CHECK(rig.opt.scalar_state(0, "mu_product") != after_one);

  rig.opt.set_non_finite_policy(multopt::NonFinitePolicy::throw_error);
  const double first = rig.opt.scalar_state(0, "mu_product");
  rig.set_gradients();
  rig.grads[2][0] = std::numeric_limits<double>::infinity();
  REQUIRE_THROWS_AS(rig.opt.step(), multopt::NonFiniteGradient);
  CHECK(rig.opt.scalar_state(0, "mu_product") == first);
  CHECK(rig.opt.scalar_state(1, "mu_product") == after_one);
}

TEST_CASE("tensors of one group and step count with different mu_product each step with their own",
          "[bases][scalar-state]") {
  // Tensors 0 and 1 would share coefficients; set tensor 1's product apart and compare it to an
  // optimizer that holds tensor 1 alone with the same product.
  NadamRig<double> rig;
  rig.step();
  rig.opt.set_scalar_state(1, "mu_product", 0.125);
  auto alone_params = rig.params[1];
  std::vector<double> alone_grads(alone_params.size());
  multopt::HNAdam<double> alone(rig.opt.hyper());
  alone.add_params(alone_params.data(), alone_grads.data(), alone_params.size());
  for (const char* name : {"exp_avg", "exp_avg_sq"}) alone.set_state(0, name, rig.opt.state(1, name), alone_params.size());
  alone.set_step_count(0, 1);
  alone.set_scalar_state(0, "mu_product", 0.125);
  for (int k = 0; k < 3; ++k) {
    rig.step();
    alone_grads = rig.grads[1];
    alone.step();
  }
  CHECK(test::same_bits(rig.params[1], alone_params));
  CHECK(rig.opt.scalar_state(1, "mu_product") == alone.scalar_state(0, "mu_product"));
  CHECK(rig.opt.scalar_state(1, "mu_product") != rig.opt.scalar_state(0, "mu_product"));
}

TEMPLATE_TEST_CASE("mu_product survives a checkpoint and a named-state copy: both continue bit for bit",
                   "[bases][scalar-state][checkpoint]", float, double) {
  using S = TestType;
  NadamRig<S> straight, resumed, copied;
  for (int k = 0; k < 5; ++k) straight.step();
  std::stringstream file;
  multopt::save_checkpoint(file, straight.opt);
  const auto before = straight.params;
  for (int k = 0; k < 5; ++k) straight.step();

  resumed.params = before;  // the caller's parameters: a checkpoint does not hold them
  resumed.t = 5;
  multopt::load_checkpoint(file, resumed.opt);
  for (std::size_t k = 0; k < 3; ++k) CHECK(resumed.opt.scalar_state(k, "mu_product") != 1.0);
  for (int k = 0; k < 5; ++k) resumed.step();
  for (std::size_t k = 0; k < 3; ++k) {
    CHECK(test::same_bits(resumed.params[k], straight.params[k]));
    CHECK(resumed.opt.scalar_state(k, "mu_product") == straight.opt.scalar_state(k, "mu_product"));
  }

  // The same by name: every array, the step count and mu_product.
  NadamRig<S> source;
  for (int k = 0; k < 5; ++k) source.step();
  copied.params = source.params;
  copied.t = 5;
  for (std::size_t k = 0; k < 3; ++k) {
    for (const auto& name : source.opt.state_names(k)) {
      if (name == "mu_product") copied.opt.set_scalar_state(k, name, source.opt.scalar_state(k, name));
      else copied.opt.set_state(k, name, source.opt.state(k, name), source.opt.size(k));
    }
    copied.opt.set_step_count(k, source.opt.step_count(k));
  }
  for (int k = 0; k < 5; ++k) copied.step();
  for (std::size_t k = 0; k < 3; ++k) CHECK(test::same_bits(copied.params[k], straight.params[k]));
}

TEST_CASE("scalar state by name: clear errors that change nothing", "[bases][scalar-state][validation]") {
  NadamRig<double> rig;
  rig.step();
  const double product = rig.opt.scalar_state(0, "mu_product");
  REQUIRE_THROWS_MATCHES(rig.opt.state(0, "mu_product"), std::invalid_argument, names({"mu_product", "scalar_state"}));
  std::vector<double> values(3, 0.5);
  REQUIRE_THROWS_MATCHES(rig.opt.set_state(0, "mu_product", values.data(), 3), std::invalid_argument,
                         names({"mu_product", "set_scalar_state"}));
  REQUIRE_THROWS_MATCHES(rig.opt.scalar_state(0, "exp_avg"), std::invalid_argument, names({"exp_avg", "state"}));
  REQUIRE_THROWS_MATCHES(rig.opt.scalar_state(0, "mu"), std::invalid_argument,
                         names({"mu", "exp_avg", "exp_avg_sq", "mu_product"}));
  REQUIRE_THROWS_MATCHES(rig.opt.scalar_state(7, "mu_product"), std::out_of_range, names({"tensor", "7"}));
  for (double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    REQUIRE_THROWS_MATCHES(rig.opt.set_scalar_state(0, "mu_product", bad), std::invalid_argument,
                           names({"mu_product", test::text_of(bad)}));
  }
  CHECK(rig.opt.scalar_state(0, "mu_product") == product);
  multopt::Adam<double> adam;
  double p = 1, g = 1;
  adam.add_params(&p, &g, 1);
  REQUIRE_THROWS_MATCHES(adam.scalar_state(0, "mu_product"), std::invalid_argument, names({"adam", "mu_product"}));

  const auto erased = multopt::make_optimizer<double>("nadam", "additive");
  erased->add_params(&p, &g, 1);
  erased->set_scalar_state(0, "mu_product", 0.5);
  CHECK(erased->scalar_state(0, "mu_product") == 0.5);
}

TEST_CASE("a checkpoint whose scalar state is missing or not finite is refused and changes nothing",
          "[bases][scalar-state][checkpoint]") {
  using namespace multopt::detail;
  NadamRig<double> rig;
  rig.step();
  const double product = rig.opt.scalar_state(0, "mu_product");
  auto refuses = [&](auto change, const char* words) {
    std::istringstream in(test::with_header(rig.opt, change));  // refused before any state array is read
    CHECK_THROWS_WITH(multopt::load_checkpoint(in, rig.opt), Catch::Contains(words));
    CHECK(rig.opt.scalar_state(0, "mu_product") == product);
  };
  refuses([](CheckpointHeader& h) { h.tensors[0].scalars.clear(); }, "tensor 0 has 0 scalar states");
  refuses([](CheckpointHeader& h) { h.tensors[1].scalars.push_back(1.0); }, "tensor 1 has 2 scalar states");
  refuses([](CheckpointHeader& h) { h.tensors[2].scalars[0] = std::nan(""); }, "tensor 2 has a scalar state");
}
