// The surface a framework expects (docs/api.md): lr_factor, clipping by the global norm,
// maximize, decoupled weight decay, named state, keyword construction and the complete
// type-erased optimizer. Each stage is checked against what it must equal bit for bit.
#include <cmath>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace arg = multopt::arg;
using test::names;

namespace {

// Two tensors (19 and 37 elements) of one optimizer, typed or made by name, stepped with the
// same gradients each time.
template <class Opt>
struct Pair {
  using S = typename Opt::Scalar;
  std::unique_ptr<Opt> opt;
  std::vector<S> a, b, ga, gb;

  Pair(std::unique_ptr<Opt> made, unsigned seed) : opt(std::move(made)) {
    std::mt19937 rng(seed);
    a = test::uniform<S>(rng, 19, -2.0, 2.0);
    b = test::uniform<S>(rng, 37, -2.0, 2.0);
    ga.resize(a.size());
    gb.resize(b.size());
    opt->add_params(a.data(), ga.data(), a.size());
    opt->add_params(b.data(), gb.data(), b.size());
  }
  Pair(const Pair&) = delete;
  Pair& operator=(const Pair&) = delete;

  void step(const std::vector<S>& grad_a, const std::vector<S>& grad_b) {
    ga = grad_a;
    gb = grad_b;
    opt->step();
  }
};

template <class P>
using NamedPair = Pair<multopt::AnyOptimizer<P>>;

template <class S>
std::vector<S> scaled(std::vector<S> values, S factor) {
  for (S& v : values) v *= factor;
  return values;
}

}  // namespace

// Every combination made by name; bf16 and half step in float, as float does.
TEMPLATE_TEST_CASE("lr_factor scales lr and lr_out: a factor of 1/2 is half the rates, bit for bit", "[surface]",
                   double, float, Eigen::bfloat16, Eigen::half) {
  using S = TestType;
  const auto combination = GENERATE(from_range(test::every_combination()));
  INFO(test::describe(combination));
  auto halved = test::make_stateful<S>(combination);
  for (const char* rate : {"lr", "lr_out"})
    if (halved->hyper().has(rate)) halved->set(rate, halved->get(rate) / 2);
  auto factored = test::make_stateful<S>(combination);
  factored->set("lr_factor", 0.5);
  NamedPair<S> expected(std::move(halved), 3), actual(std::move(factored), 3);
  std::mt19937 rng(5);
  for (int t = 0; t < 4; ++t) {
    const auto ga = test::uniform<S>(rng, 19, -1.0, 1.0), gb = test::uniform<S>(rng, 37, -1.0, 1.0);
    expected.step(ga, gb);
    actual.step(ga, gb);
  }
  CHECK(test::same_bits(actual.a, expected.a));
  CHECK(test::same_bits(actual.b, expected.b));
}

TEMPLATE_TEST_CASE("maximize steps as the negated gradient does, bit for bit", "[surface]", double, float,
                   Eigen::bfloat16, Eigen::half) {
  using S = TestType;
  const auto combination = GENERATE(from_range(test::every_combination()));
  INFO(test::describe(combination));
  auto maximizing = test::make_stateful<S>(combination);
  maximizing->set("maximize", 1);
  NamedPair<S> expected(test::make_stateful<S>(combination), 7), actual(std::move(maximizing), 7);
  std::mt19937 rng(9);
  for (int t = 0; t < 4; ++t) {
    const auto ga = test::uniform<S>(rng, 19, -1.0, 1.0), gb = test::uniform<S>(rng, 37, -1.0, 1.0);
    expected.step(scaled(ga, S(-1)), scaled(gb, S(-1)));
    actual.step(ga, gb);
  }
  CHECK(test::same_bits(actual.a, expected.a));
  CHECK(test::same_bits(actual.b, expected.b));
}

// In double and float: the expected run's gradients are scaled in S, which 16-bit rounds.
TEMPLATE_TEST_CASE("clipping scales every gradient by max_norm / (‖g‖ + 1e-6) of all tensors together",
                   "[surface]", double, float) {
  using S = TestType;
  const auto combination = GENERATE(from_range(test::every_combination()));
  INFO(test::describe(combination));
  const double max_norm = 0.75;
  NamedPair<S> expected(test::make_stateful<S>(combination), 11), actual(test::make_stateful<S>(combination), 11);
  actual.opt->set_max_grad_norm(max_norm);
  std::mt19937 rng(13);
  for (int t = 0; t < 4; ++t) {
    // Gradients of norm above and (on the last step) below max_norm.
    const double size = t < 3 ? 1.0 : 0.05;
    const auto ga = test::uniform<S>(rng, 19, -size, size), gb = test::uniform<S>(rng, 37, -size, size);
    long double sum = 0;
    for (const auto* g : {&ga, &gb})
      for (S v : *g) sum += (long double)v * v;
    const double norm = double(std::sqrt(sum));
    const double factor = std::min(1.0, max_norm / (norm + 1e-6));
    const auto given_a = ga, given_b = gb;
    expected.step(scaled(ga, S(factor)), scaled(gb, S(factor)));
    actual.step(ga, gb);
    CHECK(actual.opt->grad_norm() == Approx(norm).epsilon(1e-6));
    CHECK(test::same_bits(actual.ga, given_a));  // the caller's gradients are not written
    CHECK(test::same_bits(actual.gb, given_b));
    INFO("step " << t + 1 << " norm " << norm);
    // The factor is computed from the library's own sum, which may differ from this one in its
    // last bits; parameters agree to rounding.
    for (std::size_t i = 0; i < actual.a.size(); ++i) CHECK(actual.a[i] == Approx(expected.a[i]).epsilon(1e-5));
    for (std::size_t i = 0; i < actual.b.size(); ++i) CHECK(actual.b[i] == Approx(expected.b[i]).epsilon(1e-5));
  }
}

TEMPLATE_TEST_CASE("clipping gives the same parameters at any thread count and chunk length", "[surface]", float,
                   double) {
  using S = TestType;
  const std::size_t n = 70000;  // above the serial threshold, several scan blocks and chunks
  auto run = [&](multopt::ThreadSettings threading) {
    multopt::MAdam<S> opt(arg::lr_out = 0.01, arg::decoupled_weight_decay = 0.1, arg::weight_decay = 0.01);
    opt.set_max_grad_norm(1.0);
    opt.set_thread_settings(threading);
    std::mt19937 rng(17);
    auto param = test::uniform<S>(rng, n, -1.0, 1.0);
    std::vector<S> grad(n);
    opt.add_params(param.data(), grad.data(), n);
    for (int t = 0; t < 3; ++t) {
      const auto next = test::uniform<S>(rng, n, -1.0, 1.0);
      std::copy(next.begin(), next.end(), grad.begin());  // the optimizer reads this buffer
      opt.step();
    }
    return param;
  };
  const auto serial = run({1});
  for (const multopt::ThreadSettings threading : {multopt::ThreadSettings{2, 0, 1000}, multopt::ThreadSettings{3, 0, 64},
                                                  multopt::ThreadSettings{7, 0, 16384}})
    CHECK(test::same_bits(run(threading), serial));
}

TEST_CASE("max_grad_norm must be > 0; +inf turns clipping off", "[surface]") {
  multopt::Adam<float> opt;
  for (const double bad : {0.0, -1.0, std::nan("")})
    REQUIRE_THROWS_MATCHES(opt.set_max_grad_norm(bad), std::invalid_argument,
                           names({"max_grad_norm", test::text_of(bad)}));
  CHECK(std::isinf(opt.max_grad_norm()));
  opt.set_max_grad_norm(2.0);
  CHECK(opt.max_grad_norm() == 2.0);
}

TEST_CASE("decoupled weight decay shrinks θ by lr_factor·rate·λ before the step, as AdamW", "[surface]") {
  // With a zero gradient Adam's direction is 0, so the decay alone moves θ.
  for (const double factor : {1.0, 0.5}) {
    multopt::HAdam<double> opt(arg::lr = 0.1, arg::lr_out = 0.3, arg::g_mix = 0.25, arg::decoupled_weight_decay = 0.2,
                               arg::lr_factor = factor);
    std::vector<double> p{1.0, -2.0, 0.0}, g(3, 0.0);
    opt.add_params(p.data(), g.data(), 3);
    opt.step();
    const double keep = 1.0 - factor * (0.25 * 0.3 + 0.75 * 0.1) * 0.2;
    CHECK(p == std::vector<double>{keep, -2.0 * keep, 0.0});
  }
}

TEST_CASE("keywords set hyperparameters by name, in any order", "[surface]") {
  const multopt::MAdam<float> named(arg::lr_out = 1e-2, arg::lr_in = 2.0, arg::beta2 = 0.99, arg::amsgrad = true,
                                    arg::weight_decay = 1e-4);
  multopt::MAdam<float>::Hyper fields;
  fields.rule.lr_in = 2.0;
  fields.rule.lr_out = 1e-2;
  fields.base.beta2 = 0.99;
  fields.base.amsgrad = true;
  fields.weight_decay = 1e-4;
  for (const auto& name : multopt::MAdam<float>::hyperparameter_names()) CHECK(named.get(name) == fields.get(name));
  // A keyword's value is validated as set() validates it.
  REQUIRE_THROWS_MATCHES(multopt::Adam<float>(arg::beta1 = 1.5), std::invalid_argument, names({"beta1", "1.5"}));
  // g names g_mix everywhere.
  multopt::HSGD<float> hybrid(arg::g_mix = 0.25);
  CHECK(hybrid.get("g") == 0.25);
  hybrid.set("g", 0.5);
  CHECK(hybrid.get("g_mix") == 0.5);
}

TEMPLATE_TEST_CASE("named state moves a run into another optimizer, which continues it bit for bit", "[surface]",
                   float, double) {
  using S = TestType;
  using Opt = multopt::Adam<S>;
  typename Opt::Hyper hyper(arg::lr = 0.05, arg::amsgrad = true);
  Pair<Opt> source(std::make_unique<Opt>(hyper), 19), target(std::make_unique<Opt>(hyper), 19);
  std::mt19937 rng(23);
  const auto gradients = [&] { return std::pair{test::uniform<S>(rng, 19, -1, 1), test::uniform<S>(rng, 37, -1, 1)}; };
  for (int t = 0; t < 5; ++t) {
    const auto [ga, gb] = gradients();
    source.step(ga, gb);
  }
  CHECK(Opt::state_names() == std::vector<std::string>{"exp_avg", "exp_avg_sq", "max_exp_avg_sq"});
  CHECK(source.opt->state_names(0) == Opt::state_names());
  CHECK(target.opt->state_names(0).empty());
  target.a = source.a;
  target.b = source.b;
  for (std::size_t k = 0; k < 2; ++k) {
    for (const auto& name : source.opt->state_names(k))
      target.opt->set_state(k, name, source.opt->state(k, name), source.opt->size(k));
    target.opt->set_step_count(k, source.opt->step_count(k));
  }
  for (int t = 0; t < 3; ++t) {
    const auto [ga, gb] = gradients();
    source.step(ga, gb);
    target.step(ga, gb);
  }
  CHECK(test::same_bits(target.a, source.a));
  CHECK(test::same_bits(target.b, source.b));
  CHECK(target.opt->step_count(1) == 8);
  CHECK(test::same_bits(test::state_copy(*target.opt, 1, 2), test::state_copy(*source.opt, 1, 2)));
}

TEST_CASE("SGD's momentum buffer copied in before the first step is used as torch uses it", "[surface]") {
  multopt::SGD<double> opt(arg::lr = 0.1, arg::momentum = 0.9);
  std::vector<double> p{1.0}, g{2.0};
  const double buffer[] = {0.5};
  opt.add_params(p.data(), g.data(), 1);
  opt.set_state(0, "momentum_buffer", buffer, 1);
  opt.step();
  CHECK(opt.state(0, "momentum_buffer")[0] == 0.9 * 0.5 + 2.0);
  CHECK(p[0] == 1.0 - 0.1 * (0.9 * 0.5 + 2.0));
}

TEST_CASE("bad named state is refused with its name and changes nothing", "[surface]") {
  multopt::Adam<float> opt;
  std::vector<float> p(4, 1.0f), g(4, 0.5f), values(4, 0.25f);
  opt.add_params(p.data(), g.data(), 4);
  opt.step();
  const auto before = test::state_copy(opt, 0, 0);
  REQUIRE_THROWS_MATCHES(opt.set_state(0, "momentum", values.data(), 4), std::invalid_argument,
                         names({"momentum", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}));
  REQUIRE_THROWS_MATCHES(opt.set_state(0, "exp_avg", values.data(), 3), std::invalid_argument,
                         names({"exp_avg", "4", "3"}));
  REQUIRE_THROWS_MATCHES(opt.set_state(0, "max_exp_avg_sq", values.data(), 4), std::invalid_argument,
                         names({"max_exp_avg_sq"}));  // amsgrad is off
  REQUIRE_THROWS_MATCHES(opt.set_state(1, "exp_avg", values.data(), 4), std::out_of_range, names({"tensor", "1"}));
  REQUIRE_THROWS_MATCHES(opt.set_step_count(0, -1), std::invalid_argument, names({"-1"}));
  REQUIRE_THROWS_MATCHES(opt.state(0, "exp_inf"), std::invalid_argument, names({"exp_inf"}));
  CHECK(test::same_bits(test::state_copy(opt, 0, 0), before));
  CHECK(opt.step_count(0) == 1);
}

// The typed suites that loop over test::every_combination() test what it lists: every base
// and every rule, each combination once, made by name as what it is.
TEST_CASE("alias_name spells the alias of multopt.hpp of a base and rule, and refuses pairs without one",
          "[surface]") {
  CHECK(multopt::alias_name("adam", "hybrid") == "HAdam");
  CHECK(multopt::alias_name("sgd", "additive") == "SGD");
  CHECK(multopt::alias_name("rmsprop", "multiplicative") == "MRMSprop");
  CHECK(multopt::alias_name("nadam", "exponential") == "ENAdam");
  CHECK(multopt::alias_name("adadelta", "additive") == "Adadelta");
  std::set<std::string> all;
  multopt::for_each_type(multopt::AllBases{}, [&](auto base) {
    multopt::for_each_type(multopt::AliasedRules{}, [&](auto rule) {
      all.insert(multopt::alias_name(decltype(base)::type::name, decltype(rule)::type::name));
    });
  });
  CHECK(all.size() == 40);
  CHECK_THROWS_WITH(multopt::alias_name("sgd", "nonnegative_clip"),
                    "multopt: no alias names the nonnegative_clip rule on the sgd base");
  CHECK_THROWS_WITH(multopt::alias_name("lamb", "additive"), "multopt: no alias names the additive rule on the lamb base");
}

TEST_CASE("every_combination lists each base with each rule defined for it", "[surface]") {
  const auto combinations = test::every_combination();
  CHECK(combinations.size() == 10 * 6 + 1);  // tanh momentum is defined for sgd only
  std::set<std::string> bases, rules;
  for (const auto& c : combinations) {
    const auto made = test::make_named<float>(c);
    CHECK(made->base_name() == c.first);
    CHECK(made->rule_name() == c.second);
    bases.insert(c.first);
    rules.insert(c.second);
  }
  CHECK(std::set<test::Combination>(combinations.begin(), combinations.end()).size() == combinations.size());
  CHECK(bases.size() == 10);
  CHECK(rules.size() == 7);
}

TEST_CASE("AnyOptimizer offers named state, clipping and checkpoints with schedules", "[surface]") {
  const auto make = [] {
    auto opt = multopt::make_optimizer<double>("rmsprop", "hybrid",
                                               {{"momentum", "0.5"}, {"g", "0.5"}, {"max_grad_norm", "0.5"}});
    opt->add_group({{"lr", 0.02}, {"maximize", 1}});
    return opt;
  };
  auto opt = make();
  CHECK(opt->max_grad_norm() == 0.5);
  CHECK(opt->group_count() == 2);
  CHECK(opt->get("lr", 1) == 0.02);
  std::vector<double> a(5, 1.0), b(3, -1.0), ga(5, 0.3), gb(3, 0.2);
  opt->add_params(a.data(), ga.data(), 5, 0);
  opt->add_params(b.data(), gb.data(), 3, 1);
  multopt::LrSchedule warmup(multopt::curves::linear(0.5, 1.0, 4));
  for (int t = 0; t < 2; ++t) {
    warmup.apply(*opt);
    opt->step();
  }
  CHECK(opt->get("lr_factor", 1) == 0.625);
  CHECK(opt->state_names(0) == std::vector<std::string>{"square_avg", "momentum_buffer"});
  std::stringstream saved;
  multopt::save_checkpoint(saved, *opt, warmup);

  auto resumed = make();
  std::vector<double> ra = a, rb = b;
  resumed->add_params(ra.data(), ga.data(), 5, 0);
  resumed->add_params(rb.data(), gb.data(), 3, 1);
  multopt::LrSchedule resumed_warmup(multopt::curves::linear(0.5, 1.0, 4));
  multopt::load_checkpoint(saved, *resumed, resumed_warmup);
  CHECK(resumed_warmup.epoch() == 2);
  for (int t = 0; t < 3; ++t) {
    warmup.apply(*opt);
    opt->step();
    resumed_warmup.apply(*resumed);
    resumed->step();
  }
  CHECK(test::same_bits(ra, a));
  CHECK(test::same_bits(rb, b));
  CHECK(resumed->step_count(1) == 5);
}
