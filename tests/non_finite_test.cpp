// Non-finite gradients: under NonFinitePolicy::skip a tensor whose gradient holds a NaN or an
// infinity keeps its parameters, state and step count while the others step exactly as they
// would alone; under throw_error nothing changes and the exception names the first bad element;
// propagate, the default, steps as torch.optim does. Every base and rule, serial and threaded,
// in every parameter type.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "test_support.hpp"

using test::names;

namespace {

// Tensors whose sizes fill no packet evenly; the second spans several chunks.
const std::vector<std::size_t> kSizes = {37, 300, 5};

// One optimizer over every tensor, checking gradients, beside one unchecked optimizer per
// tensor that steps only when the checked one should step that tensor; all of the combination,
// made by name.
template <class P>
struct Rig {
  using S = P;
  test::Combination combination;
  test::Made<P> checked;
  std::vector<test::Made<P>> alone;
  std::vector<std::vector<S>> params, grads, alone_params;
  long steps = 0;

  Rig(const test::Combination& c, multopt::NonFinitePolicy policy, const multopt::ThreadSettings& threading,
      const std::vector<std::size_t>& sizes = kSizes)
      : combination(c), checked(test::make_stateful<P>(c)) {
    checked->set_non_finite_policy(policy);
    checked->set_thread_settings(threading);
    for (std::size_t size : sizes) add(size);
  }

  void add(std::size_t size) {
    const std::size_t k = params.size();
    std::vector<S> values(size);
    for (std::size_t i = 0; i < size; ++i) values[i] = S(std::cos(0.7 * double(i) + double(k)) + 0.1);
    params.push_back(values);
    alone_params.push_back(values);
    grads.emplace_back(size);
    alone.push_back(test::make_named<P>(combination));
    alone.back()->set_hyper(checked->hyper());
  }
  // Registers the tensors added since the last call.
  void register_all() {
    for (std::size_t k = checked->tensor_count(); k < params.size(); ++k) {
      checked->add_params(params[k].data(), grads[k].data(), params[k].size());
      alone[k]->add_params(alone_params[k].data(), grads[k].data(), params[k].size());
    }
  }
  void set_gradients() {
    for (std::size_t k = 0; k < grads.size(); ++k)
      for (std::size_t i = 0; i < grads[k].size(); ++i)
        grads[k][i] = S(std::sin(1.3 * double(i) + 0.4 * double(steps) + double(k)));
    ++steps;
  }
  // Steps the checked optimizer and, alone, every tensor but the bad ones.
  void step(const std::vector<std::size_t>& bad) {
    checked->step();
    for (std::size_t k = 0; k < alone.size(); ++k)
      if (std::find(bad.begin(), bad.end(), k) == bad.end()) alone[k]->step();
  }
  void require_same_as_alone() const {
    for (std::size_t k = 0; k < params.size(); ++k) {
      INFO("tensor " << k);
      REQUIRE(test::same_bits(params[k], alone_params[k]));
      REQUIRE(checked->step_count(k) == alone[k]->step_count(0));
      REQUIRE(test::tensor_state(*checked, k) == test::tensor_state(*alone[k], 0));
    }
  }
};

template <class S>
const S quiet_nan = std::numeric_limits<S>::quiet_NaN();
template <class S>
const S infinity = std::numeric_limits<S>::infinity();

}  // namespace

// Every combination made by name, in double, float and both 16-bit types (whose gradients here
// are 16-bit too, checked as such).
TEMPLATE_TEST_CASE("skip leaves a tensor with a NaN or infinite gradient as it was and steps the others",
                   "[non-finite]", double, float, Eigen::bfloat16, Eigen::half) {
  using S = TestType;
  const auto combination = GENERATE(from_range(test::every_combination()));
  const bool threaded = GENERATE(false, true);
  INFO(test::describe(combination) << ", " << (threaded ? "threaded" : "serial"));
  Rig<S> rig(combination, multopt::NonFinitePolicy::skip, test::threaded(threaded ? 3 : 1, 64));
  rig.register_all();

  rig.set_gradients();
  rig.step({});
  CHECK(rig.checked->skipped_tensors().empty());
  rig.require_same_as_alone();

  // A NaN in the last chunk of tensor 1, and a new tensor 3 whose first gradient is infinite:
  // the first chunks of tensor 1 and the state of tensor 3 must not be touched either.
  rig.add(21);
  rig.register_all();
  rig.set_gradients();
  rig.grads[1].back() = quiet_nan<S>;
  rig.grads[3][20] = -infinity<S>;
  rig.step({1, 3});
  CHECK(rig.checked->skipped_tensors() == std::vector<std::size_t>{1, 3});
  CHECK(test::tensor_state(*rig.checked, 3).holds_no_array());
  rig.require_same_as_alone();

  // Infinities at the first element of tensor 0 and in the middle of tensor 2.
  rig.set_gradients();
  rig.grads[0][0] = infinity<S>;
  rig.grads[2][2] = -infinity<S>;
  rig.step({0, 2});
  CHECK(rig.checked->skipped_tensors() == std::vector<std::size_t>{0, 2});
  rig.require_same_as_alone();

  rig.set_gradients();
  rig.step({});
  CHECK(rig.checked->skipped_tensors().empty());
  rig.require_same_as_alone();
  CHECK(rig.checked->step_count(0) == 3);
  CHECK(rig.checked->step_count(1) == 3);
  CHECK(rig.checked->step_count(3) == 2);
}

// Under skip without clipping, the step checks a tensor of one chunk itself, right before
// stepping it (the others are checked before the step): one it skips must end as if skipped
// before the step, at its first step too (no state or master weights made for it), at any
// thread count and chunk length, and be listed among the others in tensor order.
TEMPLATE_TEST_CASE("skip checks a tensor of one chunk in the step and leaves it as one skipped before",
                   "[non-finite]", double, float, Eigen::bfloat16, Eigen::half) {
  using S = TestType;
  const auto combination = GENERATE(from_range(test::every_combination()));
  const int threads = GENERATE(1, 2);
  const std::size_t chunk = GENERATE(std::size_t(64), std::size_t(1) << 14);
  INFO(test::describe(combination) << ", " << threads << " threads, chunks of " << chunk);
  // In chunks of 64, tensors 4 and 5 span several; every other tensor is one chunk.
  Rig<S> rig(combination, multopt::NonFinitePolicy::skip, test::threaded(threads, chunk), {1, 8, 37, 64, 300, 65, 5});
  rig.register_all();

  // At their first step: a NaN or an infinity in the first element, the last, or the only one.
  rig.set_gradients();
  rig.grads[0][0] = quiet_nan<S>;
  rig.grads[2][0] = infinity<S>;
  rig.grads[3][63] = quiet_nan<S>;
  rig.grads[4][299] = -infinity<S>;
  rig.step({0, 2, 3, 4});
  CHECK(rig.checked->skipped_tensors() == std::vector<std::size_t>{0, 2, 3, 4});
  for (std::size_t k : {0, 2, 3, 4}) {
    INFO("tensor " << k);
    CHECK(test::tensor_state(*rig.checked, k).holds_no_array());
    CHECK(rig.checked->master(k) == nullptr);
    CHECK(rig.checked->step_count(k) == 0);
  }
  CHECK(rig.checked->step_count(1) == 1);
  rig.require_same_as_alone();

  rig.set_gradients();
  rig.step({});
  CHECK(rig.checked->skipped_tensors().empty());
  rig.require_same_as_alone();

  // Later steps: the last element, one in the middle, the one element of a second chunk of 64.
  rig.set_gradients();
  rig.grads[1][7] = -infinity<S>;
  rig.grads[5][64] = quiet_nan<S>;
  rig.grads[6][2] = quiet_nan<S>;
  rig.step({1, 5, 6});
  CHECK(rig.checked->skipped_tensors() == std::vector<std::size_t>{1, 5, 6});
  rig.require_same_as_alone();

  rig.set_gradients();
  rig.step({});
  rig.require_same_as_alone();
  for (std::size_t k = 0; k < rig.params.size(); ++k) CHECK(rig.checked->step_count(k) == 3);
}

// A step frees only in the tensors it steps: one skipped in the step keeps the state its
// hyperparameters stopped using and its master weights, as one skipped before the step (here,
// an optimizer that clips at a norm no gradient reaches, which checks every gradient first).
TEST_CASE("a tensor skipped in the step keeps the state and master weights a step would drop",
          "[non-finite][mixed]") {
  using bf16 = Eigen::bfloat16;
  const int threads = GENERATE(1, 2);
  INFO(threads << " threads");
  using Opt = multopt::SGD<bf16>;
  Opt in_step(multopt::arg::lr = 0.1, multopt::arg::momentum = 0.9);
  Opt before(multopt::arg::lr = 0.1, multopt::arg::momentum = 0.9);
  before.set_max_grad_norm(1e30);
  std::vector<float> grads[2] = {std::vector<float>(10, 0.5f), std::vector<float>(20, -0.25f)};
  std::vector<bf16> params[2][2];
  Opt* opts[2] = {&in_step, &before};
  for (int o = 0; o < 2; ++o) {
    opts[o]->set_non_finite_policy(multopt::NonFinitePolicy::skip);
    opts[o]->set_thread_settings(test::threaded(threads, 16));
    for (int k = 0; k < 2; ++k) {
      params[o][k].assign(grads[k].size(), bf16(1.5f));
      opts[o]->add_params(params[o][k].data(), grads[k].data(), grads[k].size());
    }
    opts[o]->step();
  }
  REQUIRE(in_step.state(0, "momentum_buffer") != nullptr);
  REQUIRE(in_step.master(0) != nullptr);

  // Momentum off and rounding to nearest: a step frees the momentum buffer and master weights.
  const std::vector<bf16> param0 = params[0][0];
  const std::vector<float> buffer0(in_step.state(0, "momentum_buffer"), in_step.state(0, "momentum_buffer") + 10);
  const std::vector<float> master0(in_step.master(0), in_step.master(0) + 10);
  grads[0][9] = std::numeric_limits<float>::quiet_NaN();
  for (Opt* opt : opts) {
    opt->set("momentum", 0.0);
    opt->set_storage({multopt::Rounding::nearest, 0});
    opt->step();
    CHECK(opt->skipped_tensors() == std::vector<std::size_t>{0});
  }
  CHECK(test::same_bits(params[0][0], param0));
  REQUIRE(in_step.state(0, "momentum_buffer") != nullptr);
  CHECK(test::same_bits(std::vector<float>(in_step.state(0, "momentum_buffer"), in_step.state(0, "momentum_buffer") + 10),
                        buffer0));
  REQUIRE(in_step.master(0) != nullptr);
  CHECK(test::same_bits(std::vector<float>(in_step.master(0), in_step.master(0) + 10), master0));
  CHECK(in_step.state(1, "momentum_buffer") == nullptr);
  CHECK(in_step.master(1) == nullptr);
  CHECK(in_step.step_count(0) == 1);
  CHECK(in_step.step_count(1) == 2);
  for (std::size_t k = 0; k < 2; ++k) {
    INFO("tensor " << k);
    CHECK(test::same_bits(params[0][k], params[1][k]));
    CHECK(test::tensor_state(in_step, k) == test::tensor_state(before, k));
  }
}

TEMPLATE_TEST_CASE("throw_error names the first non-finite element and changes nothing", "[non-finite]", double,
                   float, Eigen::bfloat16, Eigen::half) {
  using S = TestType;
  const auto combination = GENERATE(from_range(test::every_combination()));
  const bool threaded = GENERATE(false, true);
  INFO(test::describe(combination) << ", " << (threaded ? "threaded" : "serial"));
  Rig<S> rig(combination, multopt::NonFinitePolicy::throw_error, test::threaded(threaded ? 3 : 1, 64));
  rig.add(9);  // tensor 3: its first step throws, so it must keep no state
  rig.register_all();
  rig.set_gradients();
  rig.grads[3][0] = quiet_nan<S>;
  REQUIRE_THROWS_AS(rig.checked->step(), multopt::NonFiniteGradient);
  CHECK(rig.checked->step_count(0) == 0);
  CHECK(test::tensor_state(*rig.checked, 3).holds_no_array());
  rig.grads[3][0] = S(0.5);
  rig.step({});
  rig.require_same_as_alone();

  rig.set_gradients();
  rig.grads[1][250] = -infinity<S>;
  rig.grads[1][299] = quiet_nan<S>;
  rig.grads[2][4] = quiet_nan<S>;
  REQUIRE_THROWS_MATCHES(rig.checked->step(), multopt::NonFiniteGradient,
                         names({"tensor 1", "-inf", "element 250", "throw_error"}));
  try {
    rig.checked->step();
  } catch (const multopt::NonFiniteGradient& e) {
    CHECK(e.tensor() == 1);
    CHECK(e.index() == 250);
  }
  rig.require_same_as_alone();  // nothing stepped: the tensors alone did not step either

  rig.set_gradients();
  rig.step({});
  rig.require_same_as_alone();
  CHECK(rig.checked->step_count(1) == 2);
}

TEMPLATE_TEST_CASE("propagate, the default, steps every tensor bit for bit as when nothing is checked",
                   "[non-finite]", double, float, Eigen::bfloat16, Eigen::half) {
  using S = TestType;
  const auto combination = GENERATE(from_range(test::every_combination()));
  INFO(test::describe(combination));
  Rig<S> rig(combination, multopt::NonFinitePolicy::propagate, multopt::ThreadSettings{});
  CHECK(test::make_named<S>(combination)->non_finite_policy() == multopt::NonFinitePolicy::propagate);
  rig.register_all();
  rig.set_gradients();
  rig.grads[1][7] = quiet_nan<S>;
  rig.grads[2][0] = infinity<S>;
  rig.step({});
  CHECK(rig.checked->skipped_tensors().empty());
  rig.require_same_as_alone();
  CHECK(rig.checked->step_count(1) == 1);
}

TEST_CASE("a NaN gradient reaches the parameter under propagate, as in torch.optim", "[non-finite]") {
  multopt::Adam<double> opt;
  std::vector<double> param = {1.0, 2.0}, grad = {0.5, std::nan("")};
  opt.add_params(param.data(), grad.data(), 2);
  opt.step();
  CHECK(param[0] < 1.0);
  CHECK(std::isnan(param[1]));
  CHECK(std::isnan(opt.state(0, 1)[1]));
}

TEST_CASE("the non-finite policy is validated and reachable through the type-erased optimizer", "[non-finite]") {
  multopt::MSGD<float> opt;
  REQUIRE_THROWS_MATCHES(opt.set_non_finite_policy(static_cast<multopt::NonFinitePolicy>(7)),
                         std::invalid_argument, names({"non_finite_policy", "7"}));
  CHECK(opt.non_finite_policy() == multopt::NonFinitePolicy::propagate);

  const auto erased = multopt::make_optimizer<float>("rmsprop", "hybrid");
  erased->set_non_finite_policy(multopt::NonFinitePolicy::skip);
  CHECK(erased->non_finite_policy() == multopt::NonFinitePolicy::skip);
  std::vector<float> param(3, 1.0f), grad = {0.1f, std::numeric_limits<float>::infinity(), 0.2f};
  erased->add_params(param.data(), grad.data(), 3);
  erased->step();
  CHECK(erased->skipped_tensors() == std::vector<std::size_t>{0});
  CHECK(erased->step_count(0) == 0);
  CHECK(param == std::vector<float>(3, 1.0f));
  CHECK(std::string(multopt::policy_name(multopt::NonFinitePolicy::throw_error)) == "throw_error");
}
