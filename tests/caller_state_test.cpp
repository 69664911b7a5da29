// The public step over caller-owned state (step_tensors.hpp): a caller that makes the state
// arrays as state_arrays() describes them steps exactly as Optimizer does, and every refusal
// names what it refuses and changes nothing.
#include "caller_state.hpp"
#include "test_support.hpp"

#include <array>
#include <functional>
#include <limits>
#include <sstream>
#include <string>

namespace {

using multopt::master_array;
using multopt::StepOptions;
using multopt::TensorRefs;
using test::CallerState;
using test::filled;
using test::CallerTensor;

// Every array of the caller's tensor k equals the optimizer's of that name, bit for bit.
template <class Opt, class Caller>
void require_same_state(const Opt& opt, const Caller& caller) {
  using Base = typename Opt::BaseType;
  for (std::size_t k = 0; k < caller.tensors.size(); ++k) {
    const auto& t = caller.tensors[k];
    INFO("tensor " << k);
    CHECK(opt.step_count(k) == t.steps);
    for (int array = 0; array < Base::array_count; ++array) {
      INFO(Base::array_names[array]);
      const auto* held = opt.state(k, array);
      const bool uses = Base::uses_array(opt.hyper(t.group).base, array);
      if (!uses || !held) continue;
      CHECK(test::same_bits(t.arrays[std::size_t(array)],
                            std::vector<typename Opt::Compute>(held, held + opt.size(k))));
    }
    if constexpr (multopt::contract::scalar_count<Base> > 0)
      for (int s = 0; s < multopt::contract::scalar_count<Base>; ++s)
        CHECK(opt.scalar_state(k, Base::scalar_names[s]) == t.scalars[std::size_t(s)]);
  }
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("step_tensors over caller-owned state steps as Optimizer does, bit for bit", "[caller_state]",
                        test::EveryOptimizer<double>) {
  using Opt = TestType;
  using P = typename Opt::Scalar;
  const auto stateful = test::stateful_hyper<typename Opt::Hyper>();
  auto second = stateful;
  second.lr_factor = 0.5;
  second.maximize = true;
  second.decoupled_weight_decay = 0.1;
  Opt opt(stateful);
  opt.add_group(second);
  opt.set_max_grad_norm(2.0);
  opt.set_thread_settings(test::threaded(2, 16));
  CallerState<Opt> caller;
  caller.groups = {stateful, second};
  caller.options.max_grad_norm = 2.0;
  caller.options.threading = test::threaded(2, 16);
  std::mt19937 rng(7);
  std::vector<std::vector<P>> params, grads;
  for (std::size_t size : {std::size_t(3), std::size_t(37), std::size_t(100)}) {
    params.push_back(filled<P>(rng, size, -1.0, 1.0));
    grads.emplace_back(size);
  }
  for (std::size_t k = 0; k < params.size(); ++k)
    caller.tensors.push_back(CallerTensor<typename Opt::BaseType, P>::of(params[k], grads[k], k % 2));
  for (std::size_t k = 0; k < params.size(); ++k) opt.add_params(params[k].data(), grads[k].data(), params[k].size(), k % 2);
  for (int step = 0; step < 5; ++step) {
    test::new_gradients(caller, grads, rng);
    opt.step();
    const multopt::StepReport report = caller.step();
    CHECK(report.grad_norm == opt.grad_norm());
    CHECK(report.skipped.empty());
    for (std::size_t k = 0; k < params.size(); ++k) REQUIRE(test::same_bits(caller.tensors[k].param, params[k]));
    require_same_state(opt, caller);
  }
}

TEST_CASE("step_tensors with 16-bit parameters keeps master weights as one more state array", "[caller_state]") {
  using P = Eigen::bfloat16;
  using Opt = multopt::MAdam<P>;
  for (const multopt::Rounding rounding :
       {multopt::Rounding::master, multopt::Rounding::nearest, multopt::Rounding::stochastic}) {
    INFO(multopt::rounding_name(rounding));
    std::mt19937 rng(3);
    std::vector<P> param = filled<P>(rng, 45, -1.0, 1.0), grad(45);
    Opt opt(multopt::arg::lr_out = 0.05);
    opt.set_storage({rounding, 11});
    opt.add_params(param.data(), grad.data(), param.size());
    CallerState<Opt> caller;
    caller.groups = {opt.hyper()};
    caller.options.storage = {rounding, 11};
    caller.tensors.push_back(CallerTensor<Opt::BaseType, P>::of(param, grad));
    for (int step = 0; step < 4; ++step) {
      const auto values = filled<P>(rng, param.size(), -1.0, 1.0);
      std::copy(values.begin(), values.end(), grad.begin());
      caller.tensors[0].grad = grad;
      opt.step();
      caller.step();
      REQUIRE(test::same_bits(caller.tensors[0].param, param));
      if (rounding == multopt::Rounding::master) {
        REQUIRE(opt.master(0));
        CHECK(test::same_bits(caller.tensors[0].master, std::vector<float>(opt.master(0), opt.master(0) + 45)));
      } else {
        CHECK(caller.tensors[0].master.empty());
      }
    }
  }
}

TEST_CASE("step_tensors gives the same bits at any thread count, and skips in the step as up front",
          "[caller_state]") {
  using Opt = multopt::HAdam<float>;
  std::vector<std::vector<float>> results;
  std::vector<std::vector<std::size_t>> skips;
  for (const int threads : {1, 2, 3}) {
    CallerState<Opt> caller;
    caller.groups = {test::stateful_hyper<Opt::Hyper>()};
    caller.options.non_finite_policy = multopt::NonFinitePolicy::skip;
    caller.options.threading = test::threaded(threads, 64);
    std::mt19937 rng(5);
    for (std::size_t size : {std::size_t(40), std::size_t(1000), std::size_t(7)})
      caller.tensors.push_back(CallerTensor<Opt::BaseType, float>::of(filled<float>(rng, size, -1, 1), filled<float>(rng, size, -1, 1)));
    caller.tensors[2].grad[3] = std::numeric_limits<float>::infinity();  // one chunk: checked in the step
    caller.tensors[1].grad[900] = std::numeric_limits<float>::quiet_NaN();  // several: checked up front
    for (int step = 0; step < 3; ++step) skips.push_back(caller.step().skipped);
    CHECK(caller.tensors[1].steps == 0);
    CHECK(caller.tensors[2].steps == 0);
    CHECK(caller.tensors[0].steps == 3);
    std::vector<float> all;
    for (const auto& t : caller.tensors) all.insert(all.end(), t.param.begin(), t.param.end());
    for (const auto& a : caller.tensors[0].arrays) all.insert(all.end(), a.begin(), a.end());
    results.push_back(all);
  }
  for (const auto& skipped : skips) CHECK(skipped == std::vector<std::size_t>{1, 2});
  CHECK(test::same_bits(results[0], results[1]));
  CHECK(test::same_bits(results[0], results[2]));
}

TEST_CASE("state_arrays names what a base needs for its settings, with the initial values", "[caller_state]") {
  multopt::bases::Adam::Params adam;
  auto arrays = multopt::state_arrays<multopt::bases::Adam, float>(adam);
  REQUIRE(arrays.size() == 2);
  CHECK(std::string(arrays[0].name) == "exp_avg");
  CHECK(std::string(arrays[1].name) == "exp_avg_sq");
  adam.amsgrad = true;
  arrays = multopt::state_arrays<multopt::bases::Adam, Eigen::half>(adam);
  REQUIRE(arrays.size() == 4);
  CHECK(std::string(arrays[2].name) == "max_exp_avg_sq");
  CHECK(std::string(arrays[3].name) == "master_weights");
  CHECK(arrays[3].index == master_array);
  CHECK(multopt::state_arrays<multopt::bases::Adam, Eigen::half>(adam, {multopt::Rounding::nearest, 0}).size() == 3);
  multopt::bases::Adagrad::Params adagrad;
  adagrad.initial_accumulator_value = 0.25;
  arrays = multopt::state_arrays<multopt::bases::Adagrad, double>(adagrad);
  REQUIRE(arrays.size() == 1);
  CHECK(std::string(arrays[0].name) == "sum");
  CHECK(arrays[0].initial == 0.25);
  CHECK(multopt::state_arrays<multopt::bases::Sgd, double>({}).empty());  // no momentum, no buffer
}

// The refusals, each of one thing wrong in tensor 1 of two or in the call, on NAdam (scalar state)
// with AMSGrad-like optional arrays absent: the message names the thing, and nothing changes.
TEST_CASE("step_tensors refuses a bad pointer, count or setting before it changes anything", "[caller_state]") {
  using Opt = multopt::MNAdam<double>;
  using Base = Opt::BaseType;
  using Refs = TensorRefs<Base, double>;
  struct Bad {
    std::string what;
    std::vector<std::string> named;
    std::function<void(std::vector<Refs>&, std::vector<Opt::Hyper>&, StepOptions&)> damage;
  };
  double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<Bad> cases = {
      {"null grad", {"tensor", "1", "grad"}, [](auto& r, auto&, auto&) { r[1].grad = nullptr; }},
      {"null param", {"tensor", "1", "param"}, [](auto& r, auto&, auto&) { r[1].param = nullptr; }},
      {"null state array", {"tensor", "1", "exp_avg_sq"}, [](auto& r, auto&, auto&) { r[1].state[1] = nullptr; }},
      {"null steps", {"tensor", "1", "steps"}, [](auto& r, auto&, auto&) { r[1].steps = nullptr; }},
      {"null scalars", {"tensor", "1", "mu_product"}, [](auto& r, auto&, auto&) { r[1].scalars = nullptr; }},
      {"NaN scalar", {"tensor", "1", "mu_product", "nan"}, [nan](auto& r, auto&, auto&) { *r[1].scalars = nan; }},
      {"negative steps", {"tensor", "1", "-4"}, [](auto& r, auto&, auto&) { *r[1].steps = -4; }},
      {"steps that cannot advance", {"tensor", "1", std::to_string(multopt::max_step_count)},
       [](auto& r, auto&, auto&) { *r[1].steps = multopt::max_step_count; }},
      {"no such group", {"tensor", "1", "group", "5"}, [](auto& r, auto&, auto&) { r[1].group = 5; }},
      {"invalid setting", {"beta2", "1.5"}, [](auto&, auto& g, auto&) { g[0].base.beta2 = 1.5; }},
      {"overflowing settings", {"overflow", "lr_out"}, [](auto&, auto& g, auto&) { g[0].rule.lr_out = 1.7e308; }},
      {"threads", {"threads", "1025"}, [](auto&, auto&, auto& o) { o.threading.threads = 1025; }},
      {"chunk", {"chunk", "0"}, [](auto&, auto&, auto& o) { o.threading.chunk = 0; }},
      {"max_grad_norm", {"max_grad_norm", "0"}, [](auto&, auto&, auto& o) { o.max_grad_norm = 0.0; }},
      {"storage for double", {"stored"}, [](auto&, auto&, auto& o) { o.storage.rounding = multopt::Rounding::stochastic; }},
      {"non-finite gradient under throw_error", {"tensor", "1", "gradient", "throw_error"},
       [](auto& r, auto&, auto& o) {
         o.non_finite_policy = multopt::NonFinitePolicy::throw_error;
         const_cast<double*>(r[1].grad)[2] = std::numeric_limits<double>::infinity();
       }},
  };
  for (const Bad& bad : cases) {
    INFO(bad.what);
    CallerState<Opt> caller;
    caller.groups = {Opt::Hyper()};
    std::mt19937 rng(1);
    for (int k = 0; k < 2; ++k)
      caller.tensors.push_back(CallerTensor<Base, double>::of(filled<double>(rng, 9, -1, 1), filled<double>(rng, 9, -1, 1)));
    caller.step();
    std::vector<Refs> refs;
    for (auto& t : caller.tensors) refs.push_back(t.refs(caller.groups[0].base));
    bad.damage(refs, caller.groups, caller.options);
    const auto damaged = caller.tensors;  // the damage itself may write the caller's memory
    REQUIRE_THROWS_MATCHES(multopt::step_tensors(refs, caller.groups, caller.options, caller.work),
                           std::invalid_argument, test::names(bad.named));
    for (std::size_t k = 0; k < 2; ++k) {
      CHECK(test::same_bits(caller.tensors[k].param, damaged[k].param));
      CHECK(caller.tensors[k].steps == damaged[k].steps);
      CHECK((caller.tensors[k].scalars == damaged[k].scalars || std::isnan(damaged[k].scalars[0])));
      for (std::size_t array = 0; array < 2; ++array)
        CHECK(test::same_bits(caller.tensors[k].arrays[array], damaged[k].arrays[array]));
    }
  }
}

TEST_CASE("16-bit parameters: settings that overflow the storage type are refused before anything changes",
          "[caller_state]") {
  for (const multopt::Rounding rounding :
       {multopt::Rounding::master, multopt::Rounding::nearest, multopt::Rounding::stochastic}) {
    INFO(multopt::rounding_name(rounding));
    std::vector<Eigen::half> param(8, Eigen::half(1.0f)), grad(8, Eigen::half(1.0f));
    const auto before = param;
    multopt::SGD<Eigen::half> sgd(multopt::arg::lr = 1e5);
    multopt::Adam<Eigen::half> adam(multopt::arg::lr = 1e6);
    sgd.add_params(param.data(), grad.data(), param.size());
    adam.add_params(param.data(), grad.data(), param.size());
    sgd.set_storage({rounding, 1});
    adam.set_storage({rounding, 1});
    REQUIRE_THROWS_MATCHES(sgd.step(), std::invalid_argument, test::names({"overflow", "float16", "lr", "100000"}));
    REQUIRE_THROWS_MATCHES(adam.step(), std::invalid_argument, test::names({"overflow", "float16", "lr", "1000000"}));
    CHECK(test::same_bits(param, before));
    CHECK(sgd.step_count(0) == 0);
    CHECK(adam.step_count(0) == 0);
    CHECK(adam.state(0, "exp_avg") == nullptr);
  }
  // bfloat16 has float's range: the same SGD step stores a finite -99999 (rounded).
  std::vector<Eigen::bfloat16> param(8, Eigen::bfloat16(1.0f)), grad(8, Eigen::bfloat16(1.0f));
  multopt::SGD<Eigen::bfloat16> sgd(multopt::arg::lr = 1e5);
  sgd.add_params(param.data(), grad.data(), param.size());
  sgd.step();
  CHECK(float(param[0]) == float(Eigen::bfloat16(-99999.0f)));
}

TEST_CASE("a step count that cannot advance is refused; a checkpoint holds every count a step reaches",
          "[caller_state]") {
  std::vector<double> param(4, 1.0), grad(4, 0.5);
  multopt::Adam<double> opt;
  opt.add_params(param.data(), grad.data(), param.size());
  REQUIRE_THROWS_MATCHES(opt.set_step_count(0, multopt::max_step_count), std::invalid_argument,
                         test::names({"step", "count", std::to_string(multopt::max_step_count)}));
  opt.set_step_count(0, multopt::max_step_count - 1);
  opt.step();
  CHECK(opt.step_count(0) == multopt::max_step_count);
  std::stringstream saved;
  multopt::save_checkpoint(saved, opt);
  std::vector<double> other_param = param;
  multopt::Adam<double> loaded;
  loaded.add_params(other_param.data(), grad.data(), other_param.size());
  multopt::load_checkpoint(saved, loaded);
  CHECK(loaded.step_count(0) == multopt::max_step_count);
  const auto before = param;
  const auto moment = test::state_copy(opt, 0, 0);
  REQUIRE_THROWS_MATCHES(opt.step(), std::invalid_argument,
                         test::names({"tensor", "0", std::to_string(multopt::max_step_count)}));
  CHECK(test::same_bits(param, before));
  CHECK(test::same_bits(test::state_copy(opt, 0, 0), moment));
  CHECK(opt.step_count(0) == multopt::max_step_count);
}
