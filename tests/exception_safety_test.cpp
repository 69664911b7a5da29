// Exception safety: every call that throws (an invalid or unknown setting, a bad group, a bad
// registration) leaves the parameters, the state arrays, the step counts and every
// hyperparameter bit for bit as they were, and the run continues exactly as one that never
// saw the call.
#include <functional>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "test_support.hpp"

namespace {

template <class P>
using Named = multopt::AnyOptimizer<P>;

// Three tensors in two groups (one empty, one not a multiple of any packet width), every
// state array in use, gradients that depend on the parameters and the step; of a typed
// optimizer or one made by name.
template <class Opt>
struct Rig {
  using S = typename Opt::Scalar;
  static constexpr std::size_t kSizes[] = {7, 0, 19};

  std::unique_ptr<Opt> opt;
  std::vector<std::vector<S>> params, grads;
  long steps = 0;

  explicit Rig(std::unique_ptr<Opt> made) : opt(std::move(made)) {
    test::add_group_with(*opt, {{"weight_decay", 0.0}});
    std::mt19937 rng(11);
    params.reserve(std::size(kSizes));
    grads.reserve(std::size(kSizes));
    for (std::size_t k = 0; k < std::size(kSizes); ++k) {
      params.push_back(test::uniform<S>(rng, kSizes[k], -2.0, 2.0));
      grads.emplace_back(kSizes[k]);
      opt->add_params(params[k].data(), grads[k].data(), kSizes[k], k % 2);
    }
  }
  Rig(const Rig&) = delete;
  Rig& operator=(const Rig&) = delete;

  void step() {
    for (std::size_t k = 0; k < params.size(); ++k)
      for (std::size_t i = 0; i < params[k].size(); ++i)
        grads[k][i] = S(std::sin(1.7 * double(i) + 0.3 * double(steps) + double(k)) + 0.5 * double(params[k][i]));
    opt->step();
    ++steps;
  }
};

// Everything a call could change, copied.
template <class Opt>
struct Snapshot {
  using S = typename Opt::Scalar;
  std::vector<std::vector<S>> params;
  std::vector<test::TensorState<Opt>> state;
  std::vector<long> steps;
  std::vector<std::vector<double>> hyper;  // [group][field]
  multopt::ThreadSettings threading;

  explicit Snapshot(const Rig<Opt>& rig)
      : params(rig.params), state(test::tensor_states(*rig.opt)), threading(rig.opt->thread_settings()) {
    const Opt& opt = *rig.opt;
    for (std::size_t t = 0; t < opt.tensor_count(); ++t) steps.push_back(opt.step_count(t));
    for (std::size_t g = 0; g < opt.group_count(); ++g) {
      hyper.emplace_back();
      for (const auto& name : opt.hyperparameter_names()) hyper.back().push_back(opt.get(name, g));
    }
  }

  friend bool operator==(const Snapshot& a, const Snapshot& b) {
    auto same_nested = [](const auto& x, const auto& y) {
      if (x.size() != y.size()) return false;
      for (std::size_t k = 0; k < x.size(); ++k)
        if (!test::same_bits(x[k], y[k])) return false;
      return true;
    };
    return same_nested(a.params, b.params) && a.state == b.state && a.steps == b.steps &&
           same_nested(a.hyper, b.hyper) && a.threading.threads == b.threading.threads &&
           a.threading.chunk == b.threading.chunk && a.threading.serial_below == b.threading.serial_below;
  }
};

template <class Opt>
using BadCall = std::pair<std::string, std::function<void(Rig<Opt>&)>>;

// The calls that must throw on any rig, typed or by name.
template <class Opt>
void add_common_bad_calls(std::vector<BadCall<Opt>>& calls, const std::vector<std::string>& names,
                          bool has_nesterov) {
  using S = typename Opt::Scalar;
  calls.push_back({"set an unknown name", [](Rig<Opt>& r) { r.opt->set("no_such_setting", 0.5); }});
  calls.push_back({"set in group 5", [=](Rig<Opt>& r) { r.opt->set(names.front(), 0.0, 5); }});
  calls.push_back({"set_hyper in group 5", [](Rig<Opt>& r) { r.opt->set_hyper(r.opt->hyper(), 5); }});
  calls.push_back({"add_params with a null param",
                   [](Rig<Opt>& r) { r.opt->add_params(nullptr, r.grads[0].data(), 3); }});
  calls.push_back({"add_params with a null grad",
                   [](Rig<Opt>& r) { r.opt->add_params(r.params[0].data(), static_cast<const S*>(nullptr), 3); }});
  calls.push_back({"add_params in group 5",
                   [](Rig<Opt>& r) { r.opt->add_params(r.params[0].data(), r.grads[0].data(), 7, 5); }});
  calls.push_back({"set_thread_settings with -1 threads", [](Rig<Opt>& r) {
                     multopt::ThreadSettings p;
                     p.threads = -1;
                     r.opt->set_thread_settings(p);
                   }});
  calls.push_back({"set_thread_settings with chunk 0", [](Rig<Opt>& r) {
                     multopt::ThreadSettings p;
                     p.chunk = 0;
                     r.opt->set_thread_settings(p);
                   }});
  calls.push_back({"step with a NaN gradient under throw_error", [](Rig<Opt>& r) {
                     r.opt->set_non_finite_policy(multopt::NonFinitePolicy::throw_error);
                     r.grads[2][18] = std::numeric_limits<S>::quiet_NaN();
                     r.opt->step();
                   }});
  if (has_nesterov) {  // the rig runs Nesterov, which forbids dampening
    calls.push_back({"set dampening under nesterov", [](Rig<Opt>& r) { r.opt->set("dampening", 0.5); }});
    calls.push_back({"set momentum 0 under nesterov", [](Rig<Opt>& r) { r.opt->set("momentum", 0.0, 1); }});
  }
}

// Every kind of call that must throw on the rig of a typed optimizer: its typed Hyper carries
// the bad values past Hyper's own checks, and Eigen maps are registered.
template <class Opt>
std::vector<BadCall<Opt>> bad_calls() {
  using H = typename Opt::Hyper;
  using S = typename Opt::Scalar;
  using Array = Eigen::Array<S, Eigen::Dynamic, 1>;
  std::vector<BadCall<Opt>> calls;
  for (const auto& name : H::names()) {
    const bool boolean = test::is_boolean<H>(name);
    for (const double bad : test::invalid_values(name, boolean, Opt::BaseType::name)) {
      const std::string what = name + " = " + test::text_of(bad);
      calls.push_back({"set " + what, [=](Rig<Opt>& r) { r.opt->set(name, bad, 1); }});
      if (boolean) continue;
      calls.push_back({"set_hyper " + what, [=](Rig<Opt>& r) { r.opt->set_hyper(test::with_field(r.opt->hyper(), name, bad)); }});
      calls.push_back({"add_group " + what, [=](Rig<Opt>& r) { r.opt->add_group(test::with_field(r.opt->hyper(), name, bad)); }});
    }
  }
  add_common_bad_calls<Opt>(calls, H::names(), test::is_boolean<H>("nesterov"));
  calls.push_back({"add_params with lengths 19 and 7", [](Rig<Opt>& r) {
                     Eigen::Map<Array> param(r.params[2].data(), 19);
                     r.opt->add_params(param, Eigen::Map<const Array>(r.grads[0].data(), 7));
                   }});
  calls.push_back({"add_params of strided storage", [](Rig<Opt>& r) {
                     Eigen::Map<Array, 0, Eigen::InnerStride<2>> param(r.params[2].data(), 9);
                     r.opt->add_params(param, Eigen::Map<const Array>(r.grads[2].data(), 9));
                   }});
  return calls;
}

// The same through AnyOptimizer: every bad value by set, set_all, set_hyper (NamedHyper holds
// any value, booleans' too, until set_hyper checks it) and add_group.
template <class P>
std::vector<BadCall<Named<P>>> bad_calls(const test::Combination& combination) {
  using Opt = Named<P>;
  std::vector<BadCall<Opt>> calls;
  const auto names = test::make_named<P>(combination)->hyperparameter_names();
  for (const auto& name : names) {
    for (const double bad : test::invalid_values(name, test::is_boolean(combination, name), combination.first)) {
      const std::string what = name + " = " + test::text_of(bad);
      calls.push_back({"set " + what, [=](Rig<Opt>& r) { r.opt->set(name, bad, 1); }});
      calls.push_back({"set_all lr_factor = 0.5, " + what,
                       [=](Rig<Opt>& r) { r.opt->set_all({{"lr_factor", 0.5}, {name, bad}}, 1); }});
      calls.push_back({"set_hyper " + what, [=](Rig<Opt>& r) {
                         auto hyper = r.opt->hyper();
                         hyper.set(name, bad);
                         r.opt->set_hyper(hyper);
                       }});
      calls.push_back({"add_group " + what, [=](Rig<Opt>& r) { r.opt->add_group({{name, bad}}); }});
    }
  }
  add_common_bad_calls<Opt>(calls, names, test::is_boolean(combination, "nesterov"));
  return calls;
}

template <class Opt>
void check_bad_calls(Rig<Opt>& rig, Rig<Opt>& twin, const std::vector<BadCall<Opt>>& calls,
                     const std::string& combination) {
  for (int k = 0; k < 3; ++k) {
    rig.step();
    twin.step();
  }
  const Snapshot<Opt> before(rig);
  REQUIRE(before.state.size() == 3);
  REQUIRE(before.steps == std::vector<long>{3, 3, 3});

  for (const auto& [what, call] : calls) {
    INFO(combination << ": " << what);
    REQUIRE_THROWS(call(rig));
    REQUIRE(Snapshot<Opt>(rig) == before);
  }
  CHECK(rig.opt->group_count() == 2);
  CHECK(rig.opt->tensor_count() == 3);

  for (int k = 0; k < 4; ++k) {
    rig.step();
    twin.step();
    REQUIRE(Snapshot<Opt>(rig) == Snapshot<Opt>(twin));
  }
  CHECK_FALSE(Snapshot<Opt>(rig) == before);  // the comparison can tell a stepped run apart
}

// The typed calls need the static type: one optimizer per base, each rule at least once
// (every combination goes through AnyOptimizer below).
using Typed = std::tuple<multopt::SGD<double>, multopt::MSGDTanhMomentum<double>, multopt::HAdam<double>,
                         multopt::Optimizer<multopt::bases::Adagrad, multopt::rules::Multiplicative, double>,
                         multopt::Optimizer<multopt::bases::Rmsprop, multopt::rules::Exponential, double>,
                         multopt::Optimizer<multopt::bases::Adamax, multopt::rules::NonNegativeClip, double>,
                         multopt::Optimizer<multopt::bases::Nadam, multopt::rules::NonNegativeReflect, double>,
                         multopt::Optimizer<multopt::bases::Radam, multopt::rules::Additive, double>,
                         multopt::Optimizer<multopt::bases::Adadelta, multopt::rules::Exponential, double>,
                         multopt::Optimizer<multopt::bases::Lion, multopt::rules::Hybrid, double>,
                         multopt::MAdam<float>, multopt::HSGD<float>>;

}  // namespace

TEMPLATE_LIST_TEST_CASE("a call that throws leaves parameters, state, step counts and settings as they were",
                        "[exception-safety]", Typed) {
  using Opt = TestType;
  const auto make = [] { return std::make_unique<Opt>(test::stateful_hyper<typename Opt::Hyper>()); };
  Rig<Opt> rig(make()), twin(make());  // the twin never sees a bad call
  check_bad_calls(rig, twin, bad_calls<Opt>(),
                  std::string(Opt::BaseType::name) + " with the " + Opt::RuleType::name + " rule");
}

TEMPLATE_TEST_CASE("a call through AnyOptimizer that throws leaves parameters, state, step counts and settings as "
                   "they were, for every combination",
                   "[exception-safety]", double, float, Eigen::bfloat16, Eigen::half) {
  using P = TestType;
  const auto combination = GENERATE(from_range(test::every_combination()));
  Rig<Named<P>> rig(test::make_stateful<P>(combination)), twin(test::make_stateful<P>(combination));
  check_bad_calls(rig, twin, bad_calls<P>(combination), test::describe(combination));
}

TEST_CASE("a failed set_all through make_optimizer applies none of its settings", "[exception-safety]") {
  auto make = [] { return multopt::make_optimizer<double>("adam", "hybrid", {{"lr", "0.01"}, {"amsgrad", "1"}}); };
  auto opt = make(), twin = make();
  std::vector<double> param{1.0, -2.0, 0.5}, grad{0.3, -0.1, 0.7};
  std::vector<double> twin_param = param, twin_grad = grad;
  opt->add_params(param.data(), grad.data(), param.size());
  twin->add_params(twin_param.data(), twin_grad.data(), twin_param.size());
  opt->step();
  twin->step();

  std::vector<double> settings_before;
  for (const auto& name : opt->hyperparameter_names()) settings_before.push_back(opt->get(name));
  const std::vector<double> param_before = param;
  // Valid changes first: the invalid beta2 after them must undo them.
  REQUIRE_THROWS_AS(opt->set_all({{"lr", 0.5}, {"g_mix", 0.25}, {"beta2", 1.0}}), std::invalid_argument);
  std::vector<double> settings_after;
  for (const auto& name : opt->hyperparameter_names()) settings_after.push_back(opt->get(name));
  CHECK(test::same_bits(settings_after, settings_before));
  CHECK(test::same_bits(param, param_before));
  CHECK(opt->step_count(0) == 1);

  for (int k = 0; k < 3; ++k) {
    opt->step();
    twin->step();
  }
  CHECK(test::same_bits(param, twin_param));
  CHECK(opt->step_count(0) == 4);
}

TEST_CASE("Hyper::set and set_all leave the struct as it was when they throw", "[exception-safety]") {
  using H = multopt::HRMSprop<float>::Hyper;
  H h = test::stateful_hyper<H>();
  const H before = h;
  REQUIRE_THROWS_AS(h.set_all({{"alpha", 0.5}, {"lr", 0.2}, {"eps", -1.0}}), std::invalid_argument);
  REQUIRE_THROWS_AS(h.set("centered", 3.0), std::invalid_argument);
  REQUIRE_THROWS_AS(h.set("no_such_setting", 1.0), std::invalid_argument);
  for (const auto& name : H::names()) {
    INFO(name);
    CHECK(h.get(name) == before.get(name));
  }
}
