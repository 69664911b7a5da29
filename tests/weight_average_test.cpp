// The training-loop settings of Optimizer beyond the group's hyperparameters: the moving average
// of the weights (ema_decay, its arrays, swap_ema, checkpoints), loss-scale unscaling
// (grad_scale) and NonFinitePolicy::skip_all, for every base × rule made by name, with float,
// double and bfloat16 parameters. Refusals name the value and change nothing.
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace {

using Catch::Matchers::Contains;

// A run of a combination made by name with stateful settings: two tensors of 37 and 5 elements
// (each ends in a partial packet), positive so that every rule steps them; gradients from the
// step count and the element, times `scale`.
template <class P>
struct Run {
  using C = multopt::Arithmetic<P>;
  static constexpr std::size_t tensors = 2;

  explicit Run(const test::Combination& c) : opt(test::make_stateful<P>(c)) {
    const std::size_t sizes[tensors] = {37, 5};
    for (std::size_t k = 0; k < tensors; ++k) {
      for (std::size_t i = 0; i < sizes[k]; ++i) params[k].push_back(P(0.5 + 0.25 * std::sin(1.0 + double(i + 40 * k))));
      grads[k].assign(sizes[k], P(0));
      opt->add_params(params[k].data(), grads[k].data(), sizes[k]);
    }
  }
  Run(const Run&) = delete;  // the optimizer points into params and grads
  Run& operator=(const Run&) = delete;

  void fill_gradients(double scale = 1.0) {
    const double t = double(opt->step_count(0) + 1);
    for (std::size_t k = 0; k < tensors; ++k)
      for (std::size_t i = 0; i < grads[k].size(); ++i)
        grads[k][i] = P(scale * (0.5 * std::cos(t * double(i + 1 + k)) + 0.1 * double(i % 3)));
  }
  void step(double scale = 1.0) {
    fill_gradients(scale);
    opt->step();
  }
  // What the average follows: the fp32 result, the master weights of 16-bit parameters.
  std::vector<C> theta(std::size_t k) const {
    if (const C* master = opt->master(k)) return {master, master + params[k].size()};
    return std::vector<C>(params[k].begin(), params[k].end());
  }
  std::vector<C> ema(std::size_t k) const {
    const C* average = opt->ema(k);
    return average ? std::vector<C>(average, average + params[k].size()) : std::vector<C>();
  }
  std::string save() const {
    std::ostringstream out(std::ios::binary);
    multopt::save_checkpoint(out, *opt);
    return out.str();
  }
  void load(const std::string& bytes) {
    std::istringstream in(bytes, std::ios::binary);
    multopt::load_checkpoint(in, *opt);
  }

  test::Made<P> opt;
  std::vector<P> params[tensors], grads[tensors];
};

template <class P>
bool same_params(const Run<P>& a, const Run<P>& b) {
  for (std::size_t k = 0; k < Run<P>::tensors; ++k)
    if (!test::same_bits(a.params[k], b.params[k])) return false;
  return true;
}

// How many elements of `average` differ from d·previous + (1 − d)·theta, computed here in C, by
// more than a few units in the last place of its terms (a compiler may fuse the multiply-add).
template <class C>
std::size_t off_formula(const std::vector<C>& average, const std::vector<C>& previous, const std::vector<C>& theta,
                        double d) {
  const C decay = C(d), complement = C(1.0 - d);
  std::size_t off = 0;
  for (std::size_t i = 0; i < theta.size(); ++i) {
    const C expected = decay * previous[i] + complement * theta[i];
    const C ulp = std::numeric_limits<C>::epsilon() * (std::abs(decay * previous[i]) + std::abs(complement * theta[i]));
    off += !(std::abs(average[i] - expected) <= 4 * ulp);
  }
  return off;
}

// The message of what `f` throws; empty if it throws nothing.
template <class F>
std::string refusal(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEMPLATE_TEST_CASE("the moving average is θ at the first step, then d·ema + (1 − d)·θ, at any thread count",
                   "[ema]", float, double, Eigen::bfloat16) {
  using C = multopt::Arithmetic<TestType>;
  constexpr double d = 0.9;
  for (const auto& combination : test::every_combination()) {
    INFO(test::describe(combination));
    Run<TestType> plain(combination), serial(combination), threaded(combination);
    serial.opt->set_ema_decay(d);
    serial.opt->set_thread_settings(test::threaded(1));
    threaded.opt->set_ema_decay(d);
    threaded.opt->set_thread_settings(test::threaded(3, 16));
    std::vector<C> previous[Run<TestType>::tensors];
    for (int step = 1; step <= 6; ++step) {
      INFO("step " << step);
      plain.step();
      serial.step();
      threaded.step();
      CHECK(plain.opt->ema(0) == nullptr);
      REQUIRE(same_params(serial, plain));  // the average leaves the trajectory alone
      REQUIRE(same_params(threaded, plain));
      for (std::size_t k = 0; k < Run<TestType>::tensors; ++k) {
        const std::vector<C> average = serial.ema(k), theta = plain.theta(k);
        CHECK(test::same_bits(average, threaded.ema(k)));
        if (step == 1) CHECK(test::same_bits(average, theta));
        else CHECK(off_formula(average, previous[k], theta, d) == 0);
        previous[k] = average;
      }
    }
  }
}

TEMPLATE_TEST_CASE("an average turned on mid-run starts at θ; a step with it off frees it", "[ema]", float, double,
                   Eigen::bfloat16) {
  using C = multopt::Arithmetic<TestType>;
  for (const auto& combination : test::every_combination()) {
    INFO(test::describe(combination));
    Run<TestType> run(combination);
    for (int step = 0; step < 3; ++step) run.step();
    run.opt->set_ema_decay(0.5);
    CHECK(run.opt->ema(0) == nullptr);  // made by the next step
    run.step();
    CHECK(test::same_bits(run.ema(0), run.theta(0)));
    const std::vector<C> previous = run.ema(1);
    run.step();
    CHECK(off_formula(run.ema(1), previous, run.theta(1), 0.5) == 0);
    run.opt->set_ema_decay(std::nullopt);
    run.step();
    CHECK(run.opt->ema(0) == nullptr);
    CHECK(run.opt->ema(1) == nullptr);
    run.opt->set_ema_decay(0.5);
    run.step();
    CHECK(test::same_bits(run.ema(1), run.theta(1)));
  }
}

TEMPLATE_TEST_CASE("an average set by the caller is continued, not restarted", "[ema]", float, Eigen::bfloat16) {
  using C = multopt::Arithmetic<TestType>;
  Run<TestType> run({"adam", "hybrid"});
  const std::vector<C> given(37, C(2));
  CHECK_THAT(refusal([&] { run.opt->set_ema(0, given.data(), 36); }), Contains("36 values"));
  CHECK(run.opt->ema(0) == nullptr);
  run.opt->set_ema(0, given.data(), given.size());
  run.opt->set_ema_decay(0.75);
  run.step();
  CHECK(off_formula(run.ema(0), given, run.theta(0), 0.75) == 0);
  CHECK(test::same_bits(run.ema(1), run.theta(1)));  // made by the step: θ
}

TEMPLATE_TEST_CASE("resuming from a checkpoint continues the average and the loss scale bit for bit", "[ema]",
                   float, double, Eigen::bfloat16) {
  for (const auto& combination : test::every_combination()) {
    INFO(test::describe(combination));
    Run<TestType> straight(combination), first(combination), resumed(combination);
    for (Run<TestType>* run : {&straight, &first}) {
      run->opt->set_ema_decay(0.9);
      run->opt->set_grad_scale(4);
    }
    for (int step = 0; step < 4; ++step) {
      straight.step();
      first.step();
    }
    const std::string saved = first.save();
    CHECK(saved[8] == 4);  // format version 4
    for (std::size_t k = 0; k < Run<TestType>::tensors; ++k) resumed.params[k] = first.params[k];
    resumed.load(saved);
    CHECK(resumed.opt->ema_decay() == std::optional<double>(0.9));
    CHECK(resumed.opt->grad_scale() == 4);
    CHECK(resumed.save() == saved);
    for (int step = 0; step < 4; ++step) {
      straight.step();
      resumed.step();
    }
    CHECK(same_params(resumed, straight));
    CHECK(test::same_bits(resumed.ema(0), straight.ema(0)));
    CHECK(resumed.save() == straight.save());

    // Without them a checkpoint keeps its older version, and loading it restores them off.
    Run<TestType> plain(combination);
    plain.step();
    const std::string older = plain.save();
    CHECK(int(older[8]) == (multopt::is_16bit<TestType> ? 3 : 2));
    resumed.load(older);
    CHECK(!resumed.opt->ema_decay());
    CHECK(resumed.opt->grad_scale() == 1);
    CHECK(resumed.opt->ema(0) == nullptr);
    CHECK(resumed.save() == older);
  }
}

TEST_CASE("a checkpoint's moving-average settings and flags are checked before anything changes", "[ema]") {
  Run<float> target({"adam", "additive"});
  target.opt->set_ema_decay(0.5);
  target.step();
  const std::string before = target.save();
  // Checkpoints (without state arrays) of an optimizer of the same tensors, their headers changed.
  multopt::Adam<float> like;
  std::vector<float> w(37, 1.0f), g(37, 0.0f), v(5, 1.0f), h(5, 0.0f);
  like.add_params(w.data(), g.data(), 37);
  like.add_params(v.data(), h.data(), 5);
  const auto with_settings = [&](double grad_scale, double ema_decay, std::uint64_t ema_flag) {
    return test::with_header(like, [&](multopt::detail::CheckpointHeader& header) {
      header.settings.emplace_back("grad_scale", grad_scale);
      header.settings.emplace_back("ema_decay", ema_decay);
      header.tensors[0].ema = ema_flag;
    });
  };
  const std::pair<std::string, const char*> refused[] = {
      {with_settings(1.0, 1.0, 0), "ema_decay = 1 is invalid"},
      {with_settings(1e-300, 0.5, 0), "grad_scale = 1"},  // 1/grad_scale is beyond float
      {with_settings(1.0, 0.5, 2), "moving-average flag of 2"}};
  for (const auto& [bytes, words] : refused) {
    const std::string& checkpoint = bytes;  // a structured binding, which a C++17 lambda cannot capture
    CHECK_THAT(refusal([&] { target.load(checkpoint); }), Contains(words));
    CHECK(target.save() == before);
  }
}

TEMPLATE_TEST_CASE("swap_ema exchanges parameters and averages exactly, and back", "[ema]", float, double) {
  using C = multopt::Arithmetic<TestType>;
  Run<TestType> run({"adam", "multiplicative"});
  run.opt->set_ema_decay(0.5);
  CHECK_THAT(refusal([&] { run.opt->swap_ema(); }), Contains("tensor 0 has no moving average"));
  for (int step = 0; step < 3; ++step) run.step();
  std::vector<C> params[Run<TestType>::tensors], averages[Run<TestType>::tensors];
  for (std::size_t k = 0; k < Run<TestType>::tensors; ++k) {
    params[k] = run.theta(k);
    averages[k] = run.ema(k);
  }
  run.opt->swap_ema();
  for (std::size_t k = 0; k < Run<TestType>::tensors; ++k) {
    CHECK(test::same_bits(run.theta(k), averages[k]));
    CHECK(test::same_bits(run.ema(k), params[k]));
  }
  run.opt->swap_ema();
  for (std::size_t k = 0; k < Run<TestType>::tensors; ++k) {
    CHECK(test::same_bits(run.theta(k), params[k]));
    CHECK(test::same_bits(run.ema(k), averages[k]));
  }
}

TEST_CASE("swap_ema refuses 16-bit parameters, whose fp32 averages it cannot hold, and changes nothing", "[ema]") {
  Run<Eigen::bfloat16> run({"sgd", "additive"});
  run.opt->set_ema_decay(0.5);
  run.step();
  const auto params = run.params[0];
  const auto average = run.ema(0);
  CHECK_THAT(refusal([&] { run.opt->swap_ema(); }), Contains("16-bit parameter cannot") && Contains("ema(tensor)"));
  CHECK(test::same_bits(run.params[0], params));
  CHECK(test::same_bits(run.ema(0), average));
}

TEMPLATE_TEST_CASE("a power-of-two grad_scale steps as gradients divided by it, clipped or not", "[grad_scale]",
                   float, double, Eigen::bfloat16) {
  constexpr double scale = 1024;
  for (const bool clipping : {false, true}) {
    for (const auto& combination : test::every_combination()) {
      INFO(test::describe(combination) << (clipping ? ", clipping" : ""));
      Run<TestType> scaled(combination), divided(combination);
      scaled.opt->set_grad_scale(scale);
      if (clipping) {
        scaled.opt->set_max_grad_norm(0.5);
        divided.opt->set_max_grad_norm(0.5);
      }
      for (int step = 0; step < 4; ++step) {
        scaled.step(scale);
        divided.step();
        REQUIRE(same_params(scaled, divided));
        CHECK(test::tensor_states(*scaled.opt) == test::tensor_states(*divided.opt));
        if (!clipping) continue;
        double sum = 0;  // the norm of the unscaled gradients
        for (const auto& grad : divided.grads)
          for (TestType g : grad) sum += double(g) * double(g);
        CHECK(scaled.opt->grad_norm() == divided.opt->grad_norm());
        CHECK(scaled.opt->grad_norm() == Approx(std::sqrt(sum)).epsilon(1e-5));
        CHECK(scaled.opt->grad_norm() > 0.5);  // so clipping acted
      }
    }
  }
}

TEMPLATE_TEST_CASE("skip_all leaves every tensor as it was when any gradient is not finite", "[non-finite]", float,
                   double, Eigen::bfloat16) {
  using C = multopt::Arithmetic<TestType>;
  for (const auto& combination : test::every_combination()) {
    INFO(test::describe(combination));
    Run<TestType> run(combination);
    run.opt->set_ema_decay(0.9);
    run.step();
    run.step();
    run.opt->set_non_finite_policy(multopt::NonFinitePolicy::skip_all);
    run.fill_gradients();
    run.grads[1][2] = TestType(std::numeric_limits<float>::quiet_NaN());
    const auto params0 = run.params[0], params1 = run.params[1];
    const auto states = test::tensor_states(*run.opt);
    const std::vector<C> ema0 = run.ema(0), ema1 = run.ema(1);
    run.opt->step();
    CHECK(run.opt->skipped_tensors() == std::vector<std::size_t>{0, 1});
    CHECK(test::same_bits(run.params[0], params0));
    CHECK(test::same_bits(run.params[1], params1));
    CHECK(test::tensor_states(*run.opt) == states);
    CHECK(test::same_bits(run.ema(0), ema0));
    CHECK(test::same_bits(run.ema(1), ema1));
    CHECK(run.opt->step_count(0) == 2);
    CHECK(run.opt->step_count(1) == 2);
    // Under skip, only the tensor with the NaN.
    run.opt->set_non_finite_policy(multopt::NonFinitePolicy::skip);
    run.opt->step();
    CHECK(run.opt->skipped_tensors() == std::vector<std::size_t>{1});
    CHECK(run.opt->step_count(0) == 3);
    CHECK(run.opt->step_count(1) == 2);
    CHECK(!test::same_bits(run.ema(0), ema0));
    CHECK(test::same_bits(run.ema(1), ema1));
  }
}

TEMPLATE_TEST_CASE("refused ema_decay and grad_scale values are named and change nothing", "[ema][grad_scale]",
                   float, double, Eigen::bfloat16) {
  Run<TestType> run({"adam", "hybrid"});
  run.opt->set_ema_decay(0.5);
  run.opt->set_grad_scale(2);
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  const std::pair<double, const char*> decays[] = {{1.0, "ema_decay = 1 "}, {-0.1, "ema_decay = -0.1"},
                                                   {nan, "ema_decay = nan"}};
  for (const auto& [decay, words] : decays) {
    const double refused = decay;  // a structured binding, which a C++17 lambda cannot capture
    CHECK_THAT(refusal([&] { run.opt->set_ema_decay(refused); }), Contains(words));
    CHECK(run.opt->ema_decay() == std::optional<double>(0.5));
  }
  const std::pair<double, const char*> scales[] = {{0.0, "grad_scale = 0 "}, {-1.0, "grad_scale = -1 "},
                                                   {inf, "grad_scale = inf"}};
  for (const auto& [scale, words] : scales) {
    const double refused = scale;  // a structured binding, which a C++17 lambda cannot capture
    CHECK_THAT(refusal([&] { run.opt->set_grad_scale(refused); }), Contains(words));
    CHECK(run.opt->grad_scale() == 2);
  }
  // 1/1e-300 is beyond float, which 16-bit parameters compute in, not beyond double.
  if constexpr (std::is_same_v<multopt::Arithmetic<TestType>, float>) {
    CHECK_THAT(refusal([&] { run.opt->set_grad_scale(1e-300); }), Contains("grad_scale = 1") && Contains("e-300"));
    CHECK(run.opt->grad_scale() == 2);
  } else {
    run.opt->set_grad_scale(1e-300);
    CHECK(run.opt->grad_scale() == 1e-300);
  }
  // By name, as configuration files give them.
  const auto by_name = [](const char* name, const char* text) {
    return refusal([&] { multopt::make_optimizer<TestType>("adam", "hybrid", {{name, text}}); });
  };
  CHECK_THAT(by_name("ema_decay", "1"), Contains("ema_decay = 1 "));
  CHECK_THAT(by_name("grad_scale", "-1"), Contains("grad_scale = -1 "));
  const auto made = multopt::make_optimizer<TestType>("adam", "hybrid", {{"ema_decay", "0.999"}, {"grad_scale", "8"}});
  CHECK(made->ema_decay() == std::optional<double>(0.999));
  CHECK(made->grad_scale() == 8);
}

TEST_CASE("step_tensors refuses a moving average of a tensor whose gradient is given as rows", "[ema]") {
  using Base = multopt::bases::Sgd;
  std::vector<float> param = {1, 2, 3, 4, 5, 6}, ema = {7, 7, 7, 7, 7, 7}, grad = {0.5f, 0.5f};
  const std::int64_t rows[] = {1};
  long steps = 0;
  multopt::TensorRefs<Base, float> refs;
  refs.param = param.data();
  refs.grad = grad.data();
  refs.size = param.size();
  refs.ema = ema.data();
  refs.steps = &steps;
  refs.rows = {rows, 1, 2};
  multopt::StepOptions options;
  options.ema_decay = 0.5;
  const std::string message = refusal([&] {
    multopt::step_tensors(std::vector{refs}, multopt::Hyper<Base, multopt::rules::Additive>(), options);
  });
  CHECK_THAT(message, Contains("rows") && Contains("ema_decay = 0.5"));
  CHECK(param == std::vector<float>{1, 2, 3, 4, 5, 6});
  CHECK(ema == std::vector<float>(6, 7));
  CHECK(steps == 0);
}
