// Exception safety: every call that throws (an invalid or unknown setting, a bad group, a bad
// registration) leaves the parameters, the state arrays, the step counts and every
// hyperparameter bit for bit as they were, and the run continues exactly as one that never
// saw the call.
#include <functional>
#include <iterator>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "test_support.hpp"

namespace {

// Three tensors in two groups (one empty, one not a multiple of any packet width), every
// state array in use, gradients that depend on the parameters and the step.
template <class Opt>
struct Rig {
  using S = typename Opt::Scalar;
  static constexpr std::size_t kSizes[] = {7, 0, 19};

  Opt opt = test::make<Opt>(test::stateful_hyper<typename Opt::Hyper>());
  std::vector<std::vector<S>> params, grads;
  long steps = 0;

  Rig() {
    typename Opt::Hyper second = opt.hyper();
    second.weight_decay = 0.0;
    opt.add_group(second);
    std::mt19937 rng(11);
    params.reserve(std::size(kSizes));
    grads.reserve(std::size(kSizes));
    for (std::size_t k = 0; k < std::size(kSizes); ++k) {
      params.push_back(test::uniform<S>(rng, kSizes[k], -2.0, 2.0));
      grads.emplace_back(kSizes[k]);
      opt.add_params(params[k].data(), grads[k].data(), kSizes[k], k % 2);
    }
  }
  Rig(const Rig&) = delete;
  Rig& operator=(const Rig&) = delete;

  void step() {
    for (std::size_t k = 0; k < params.size(); ++k)
      for (std::size_t i = 0; i < params[k].size(); ++i)
        grads[k][i] = S(std::sin(1.7 * double(i) + 0.3 * double(steps) + double(k)) + 0.5 * double(params[k][i]));
    opt.step();
    ++steps;
  }
};

// Everything a call could change, copied.
template <class Opt>
struct Snapshot {
  using S = typename Opt::Scalar;
  std::vector<std::vector<S>> params;
  std::vector<std::vector<std::vector<S>>> state;  // [tensor][slot]
  std::vector<long> steps;
  std::vector<std::vector<double>> hyper;  // [group][field]
  multopt::Parallel parallel;

  explicit Snapshot(const Rig<Opt>& rig) : params(rig.params), parallel(rig.opt.parallel()) {
    const Opt& opt = rig.opt;
    for (std::size_t t = 0; t < opt.tensor_count(); ++t) {
      steps.push_back(opt.step_count(t));
      state.emplace_back();
      for (int slot = 0; slot < Opt::BaseType::slot_count; ++slot) state.back().push_back(test::state_copy(opt, t, slot));
    }
    for (std::size_t g = 0; g < opt.group_count(); ++g) hyper.push_back(test::hyper_values(opt, g));
  }

  friend bool operator==(const Snapshot& a, const Snapshot& b) {
    auto same_nested = [](const auto& x, const auto& y) {
      if (x.size() != y.size()) return false;
      for (std::size_t k = 0; k < x.size(); ++k)
        if (!test::same_bits(x[k], y[k])) return false;
      return true;
    };
    if (a.state.size() != b.state.size()) return false;
    for (std::size_t t = 0; t < a.state.size(); ++t)
      if (!same_nested(a.state[t], b.state[t])) return false;
    return same_nested(a.params, b.params) && a.steps == b.steps && same_nested(a.hyper, b.hyper) &&
           a.parallel.threads == b.parallel.threads && a.parallel.chunk == b.parallel.chunk &&
           a.parallel.serial_below == b.parallel.serial_below;
  }
};

template <class Opt>
using BadCall = std::pair<std::string, std::function<void(Rig<Opt>&)>>;

// Every kind of call that must throw on the rig.
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
      calls.push_back({"set " + what, [=](Rig<Opt>& r) { r.opt.set(name, bad, 1); }});
      if (boolean) continue;
      calls.push_back({"set_hyper " + what, [=](Rig<Opt>& r) { r.opt.set_hyper(test::with_field(r.opt.hyper(), name, bad)); }});
      calls.push_back({"add_group " + what, [=](Rig<Opt>& r) { r.opt.add_group(test::with_field(r.opt.hyper(), name, bad)); }});
    }
  }
  calls.push_back({"set an unknown name", [](Rig<Opt>& r) { r.opt.set("no_such_setting", 0.5); }});
  calls.push_back({"set in group 5", [](Rig<Opt>& r) { r.opt.set(H::names().front(), 0.0, 5); }});
  calls.push_back({"set_hyper in group 5", [](Rig<Opt>& r) { r.opt.set_hyper(r.opt.hyper(), 5); }});
  calls.push_back({"add_params with a null param",
                   [](Rig<Opt>& r) { r.opt.add_params(nullptr, r.grads[0].data(), 3); }});
  calls.push_back({"add_params with a null grad",
                   [](Rig<Opt>& r) { r.opt.add_params(r.params[0].data(), nullptr, 3); }});
  calls.push_back({"add_params in group 5",
                   [](Rig<Opt>& r) { r.opt.add_params(r.params[0].data(), r.grads[0].data(), 7, 5); }});
  calls.push_back({"add_params with lengths 19 and 7", [](Rig<Opt>& r) {
                     Eigen::Map<Array> param(r.params[2].data(), 19);
                     r.opt.add_params(param, Eigen::Map<const Array>(r.grads[0].data(), 7));
                   }});
  calls.push_back({"add_params of strided storage", [](Rig<Opt>& r) {
                     Eigen::Map<Array, 0, Eigen::InnerStride<2>> param(r.params[2].data(), 9);
                     r.opt.add_params(param, Eigen::Map<const Array>(r.grads[2].data(), 9));
                   }});
  calls.push_back({"set_parallel with -1 threads", [](Rig<Opt>& r) {
                     multopt::Parallel p;
                     p.threads = -1;
                     r.opt.set_parallel(p);
                   }});
  calls.push_back({"set_parallel with chunk 0", [](Rig<Opt>& r) {
                     multopt::Parallel p;
                     p.chunk = 0;
                     r.opt.set_parallel(p);
                   }});
  calls.push_back({"step with a NaN gradient under throw_error", [](Rig<Opt>& r) {
                     r.opt.set_non_finite_policy(multopt::NonFinitePolicy::throw_error);
                     r.grads[2][18] = std::numeric_limits<S>::quiet_NaN();
                     r.opt.step();
                   }});
  if (test::is_boolean<H>("nesterov")) {  // the rig runs Nesterov, which forbids dampening
    calls.push_back({"set dampening under nesterov", [](Rig<Opt>& r) { r.opt.set("dampening", 0.5); }});
    calls.push_back({"set momentum 0 under nesterov", [](Rig<Opt>& r) { r.opt.set("momentum", 0.0, 1); }});
  }
  return calls;
}

using Checked = decltype(std::tuple_cat(std::declval<test::EveryOptimizer<double>>(),
                                        std::declval<std::tuple<multopt::MAdam<float>, multopt::HSGD<float>>>()));

}  // namespace

TEMPLATE_LIST_TEST_CASE("a call that throws leaves parameters, state, step counts and settings as they were",
                        "[exception-safety]", Checked) {
  using Opt = TestType;
  Rig<Opt> rig, twin;  // the twin never sees a bad call
  for (int k = 0; k < 3; ++k) {
    rig.step();
    twin.step();
  }
  const Snapshot<Opt> before(rig);
  REQUIRE(before.state.size() == 3);
  REQUIRE(before.steps == std::vector<long>{3, 3, 3});

  const auto calls = bad_calls<Opt>();
  for (const auto& [what, call] : calls) {
    INFO(Opt::BaseType::name << " with the " << Opt::RuleType::name << " rule: " << what);
    REQUIRE_THROWS(call(rig));
    REQUIRE(Snapshot<Opt>(rig) == before);
  }
  CHECK(rig.opt.group_count() == 2);
  CHECK(rig.opt.tensor_count() == 3);

  for (int k = 0; k < 4; ++k) {
    rig.step();
    twin.step();
    REQUIRE(Snapshot<Opt>(rig) == Snapshot<Opt>(twin));
  }
  CHECK_FALSE(Snapshot<Opt>(rig) == before);  // the comparison can tell a stepped run apart
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
