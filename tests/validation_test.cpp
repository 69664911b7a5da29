// Validation: every rule of docs/math.md's section Validation through every entry point (the
// typed constructors, set, set_hyper, add_group, the type-erased optimizer and
// multopt::make_optimizer with its string settings), each failing with std::invalid_argument
// whose message names the setting and the bad value; and the registration errors of
// add_params (lengths, contiguity, null pointers) and of group indices.
#include <algorithm>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "test_support.hpp"

using test::names;

namespace {

template <class Opt>
std::unique_ptr<multopt::AnyOptimizer<typename Opt::Scalar>> make_erased(const multopt::Settings& settings = {}) {
  return multopt::make_optimizer<typename Opt::Scalar>(Opt::BaseType::name, Opt::RuleType::name, settings);
}

template <class Tuple>
struct SettingNames;
template <class... Opt>
struct SettingNames<std::tuple<Opt...>> {
  // Every setting name that some combination knows.
  static std::set<std::string> all() {
    std::set<std::string> names;
    for (const auto& list : {Opt::Hyper::names()...}) names.insert(list.begin(), list.end());
    return names;
  }
};

using SgdOptimizers =
    decltype(std::tuple_cat(std::declval<test::RulesOn<multopt::bases::Sgd, double>>(),
                            std::declval<std::tuple<multopt::MSGDTanhMomentum<double>>>()));

}  // namespace

// The generic tests below iterate over Hyper::names(); this pins those lists to docs/math.md,
// so that no setting the contract names can slip out of them.
TEST_CASE("each combination's settings are exactly those docs/math.md gives its base and rule",
          "[validation]") {
  const std::map<std::string, std::vector<std::string>> base_settings = {
      {"sgd", {"momentum", "dampening", "nesterov"}},
      {"adam", {"beta1", "beta2", "eps", "amsgrad"}},
      {"adagrad", {"lr_decay", "initial_accumulator_value", "eps"}},
      {"rmsprop", {"alpha", "eps", "momentum", "centered"}},
      {"adamax", {"beta1", "beta2", "eps"}},
      {"nadam", {"beta1", "beta2", "eps", "momentum_decay"}},
      {"radam", {"beta1", "beta2", "eps"}},
      {"adadelta", {"rho", "eps"}},
      {"lion", {"beta1", "beta2"}},
      {"sparse_adam", {"beta1", "beta2", "eps"}}};
  const std::map<std::string, std::vector<std::string>> rule_settings = {
      {"additive", {"lr"}},
      {"multiplicative", {"lr_in", "lr_out"}},
      {"hybrid", {"lr_in", "lr_out", "lr", "g_mix"}},
      {"exponential", {"lr_in", "lr_out"}},
      {"nonnegative_clip", {"lr"}},
      {"nonnegative_reflect", {"lr"}}};
  for (const auto& [base, base_names] : base_settings) {
    for (const auto& [rule, rule_names] : rule_settings) {
      std::vector<std::string> expected = base_names;
      expected.insert(expected.end(), rule_names.begin(), rule_names.end());
      expected.insert(expected.end(), {"weight_decay", "decoupled_weight_decay", "lr_factor", "maximize"});
      std::sort(expected.begin(), expected.end());
      auto actual = multopt::make_optimizer<double>(base, rule)->hyperparameter_names();
      std::sort(actual.begin(), actual.end());
      INFO(base << " " << rule);
      CHECK(actual == expected);
    }
  }
  auto tanh_names = multopt::make_optimizer<float>("sgd", "multiplicative_tanh_momentum")->hyperparameter_names();
  std::sort(tanh_names.begin(), tanh_names.end());
  CHECK(tanh_names ==
        std::vector<std::string>{"dampening", "decoupled_weight_decay", "lr_factor", "lr_in", "lr_out",
                                          "maximize", "momentum", "nesterov", "weight_decay"});
}

TEMPLATE_LIST_TEST_CASE("every out-of-range or NaN setting is rejected by every entry point, "
                        "naming the setting and the value",
                        "[validation]", test::EveryOptimizer<double>) {
  using Opt = TestType;
  using H = typename Opt::Hyper;
  Opt opt;
  const auto erased = make_erased<Opt>();
  for (const auto& name : H::names()) {
    const bool boolean = test::is_boolean<H>(name);
    for (const double bad : test::invalid_values(name, boolean, Opt::BaseType::name)) {
      const std::string text = test::text_of(bad);
      INFO(Opt::BaseType::name << " with the " << Opt::RuleType::name << " rule: " << name << " = " << text);
      const auto named = names({name, text});
      REQUIRE_THROWS_MATCHES(opt.set(name, bad), std::invalid_argument, named);
      REQUIRE_THROWS_MATCHES(erased->set(name, bad), std::invalid_argument, named);
      REQUIRE_THROWS_MATCHES(erased->set_all({{name, bad}}), std::invalid_argument, named);
      // The factory reads case-file names (the hybrid's `g`); messages use the library's own.
      REQUIRE_THROWS_MATCHES(make_erased<Opt>({{test::case_file_name(name), text}}), std::invalid_argument, named);
      if (boolean) continue;  // a bool field cannot hold a bad value: only set(name, value) can pass one
      const H hyper = test::with_field(H{}, name, bad);
      REQUIRE_THROWS_MATCHES(Opt(hyper), std::invalid_argument, named);
      REQUIRE_THROWS_MATCHES(opt.set_hyper(hyper), std::invalid_argument, named);
      REQUIRE_THROWS_MATCHES(opt.add_group(hyper), std::invalid_argument, named);
    }
  }
}

// The other side of every range: its closed ends and large values are settings, not errors.
TEMPLATE_LIST_TEST_CASE("the ends of every valid range are accepted", "[validation]", test::EveryOptimizer<double>) {
  using Opt = TestType;
  using H = typename Opt::Hyper;
  for (const auto& name : H::names()) {
    std::vector<double> valid = {0.0, 1e300};
    if (test::is_boolean<H>(name)) valid = {0.0, 1.0};
    if (name == "nesterov") valid = {0.0};  // 1 needs momentum; see the nesterov test
    if (name == "beta1" || name == "beta2") valid = {0.0, std::nextafter(1.0, 0.0)};
    if (name == "g_mix" || name == "rho" || name == "alpha" || name == "momentum") valid = {0.0, 1.0};
    if ((name == "beta1" || name == "beta2") && std::string(Opt::BaseType::name) == "lion") valid = {0.0, 1.0};
    for (const double value : valid) {
      INFO(Opt::BaseType::name << " with the " << Opt::RuleType::name << " rule: " << name << " = " << value);
      Opt opt;
      REQUIRE_NOTHROW(opt.set(name, value));
      CHECK(opt.get(name) == value);
      if (test::is_boolean<H>(name)) continue;
      const H hyper = test::with_field(H{}, name, value);
      REQUIRE_NOTHROW(Opt(hyper));
      REQUIRE_NOTHROW(opt.add_group(hyper));
      CHECK(opt.get(name, 1) == value);
    }
  }
}

TEMPLATE_LIST_TEST_CASE("nesterov is rejected without momentum > 0 and with dampening != 0, and stays enforced",
                        "[validation]", SgdOptimizers) {
  using Opt = TestType;
  using H = typename Opt::Hyper;
  H damped;
  damped.base.momentum = 0.9;
  damped.base.dampening = 0.5;
  damped.base.nesterov = true;
  H no_momentum = damped;
  no_momentum.base.momentum = 0.0;
  no_momentum.base.dampening = 0.0;
  // The messages name nesterov, its value and the two settings it depends on.
  const auto named = names({"nesterov", "1", "momentum", "dampening"});
  for (const H& bad : {damped, no_momentum}) {
    REQUIRE_THROWS_MATCHES(Opt(bad.rule, bad.base), std::invalid_argument, named);
    Opt opt;
    REQUIRE_THROWS_MATCHES(opt.set_hyper(bad), std::invalid_argument, named);
    REQUIRE_THROWS_MATCHES(opt.add_group(bad), std::invalid_argument, named);
  }
  Opt opt;
  REQUIRE_THROWS_MATCHES(opt.set("nesterov", 1), std::invalid_argument, named);
  REQUIRE_THROWS_MATCHES(make_erased<Opt>({{"nesterov", "1"}}), std::invalid_argument, named);
  REQUIRE_THROWS_MATCHES(make_erased<Opt>({{"momentum", "0.9"}, {"dampening", "0.5"}, {"nesterov", "1"}}),
                         std::invalid_argument, named);

  // Once valid, the constraint holds for later changes of either setting it depends on.
  H valid = damped;
  valid.base.dampening = 0.0;
  Opt nesterov(valid.rule, valid.base);
  REQUIRE_THROWS_MATCHES(nesterov.set("momentum", 0), std::invalid_argument, named);
  REQUIRE_THROWS_MATCHES(nesterov.set("dampening", 0.5), std::invalid_argument, named);

  // set_all changes interlocked settings together, in either direction.
  const auto erased = make_erased<Opt>();
  REQUIRE_NOTHROW(erased->set_all({{"nesterov", 1}, {"momentum", 0.9}}));
  CHECK(erased->get("nesterov") == 1.0);
  REQUIRE_NOTHROW(erased->set_all({{"momentum", 0}, {"nesterov", 0}}));
  CHECK(erased->get("momentum") == 0.0);
}

// docs/math.md sets no range for dampening, but NaN is no setting: were it accepted, it would
// turn every weight into NaN from the second step on.
TEMPLATE_LIST_TEST_CASE("dampening = NaN is rejected by every entry point", "[validation]", SgdOptimizers) {
  using Opt = TestType;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const auto named = names({"dampening", "nan"});
  Opt opt;
  REQUIRE_THROWS_MATCHES(opt.set("dampening", nan), std::invalid_argument, named);
  const auto hyper = test::with_field(typename Opt::Hyper{}, "dampening", nan);
  REQUIRE_THROWS_MATCHES(Opt(hyper), std::invalid_argument, named);
  REQUIRE_THROWS_MATCHES(opt.set_hyper(hyper), std::invalid_argument, named);
  REQUIRE_THROWS_MATCHES(opt.add_group(hyper), std::invalid_argument, named);
  REQUIRE_THROWS_MATCHES(make_erased<Opt>({{"dampening", "nan"}}), std::invalid_argument, named);
}

TEMPLATE_LIST_TEST_CASE("unknown setting names are rejected, naming the name and the known ones",
                        "[validation]", test::EveryOptimizer<double>) {
  using Opt = TestType;
  const auto own = Opt::Hyper::names();
  std::vector<std::string> unknown = {"lr_typo", "LR", "momentum_type", ""};
  if (!Opt::Hyper::has("g_mix")) unknown.push_back("g");  // elsewhere, g names g_mix
  for (const auto& name : SettingNames<test::EveryOptimizer<double>>::all())
    if (std::find(own.begin(), own.end(), name) == own.end()) unknown.push_back(name);  // another's setting

  Opt opt;
  const auto erased = make_erased<Opt>();
  // The message names the offending name (quoted, so that the empty name shows too) and the known ones.
  for (const auto& name : unknown) {
    INFO(Opt::BaseType::name << " with the " << Opt::RuleType::name << " rule: '" << name << "'");
    const auto named = names({"unknown", "'" + name + "'", own.front(), own.back()});
    REQUIRE_THROWS_MATCHES(opt.set(name, 0.5), std::invalid_argument, named);
    REQUIRE_THROWS_MATCHES(opt.get(name), std::invalid_argument, named);
    REQUIRE_THROWS_MATCHES(erased->set(name, 0.5), std::invalid_argument, named);
    REQUIRE_THROWS_MATCHES(erased->set_all({{own.front(), 0.0}, {name, 0.5}}), std::invalid_argument, named);
    REQUIRE_THROWS_MATCHES(erased->get(name), std::invalid_argument, named);
    // In settings, `g` is the hybrid's mix weight and momentum_type is a word: both tested below.
    if (name == "g" || name == "momentum_type") continue;
    REQUIRE_THROWS_MATCHES(make_erased<Opt>({{name, "0.5"}}), std::invalid_argument, named);
  }
}

TEST_CASE("make_optimizer rejects unknown base and rule names, listing the known ones", "[validation]") {
  using multopt::make_optimizer;
  REQUIRE_THROWS_MATCHES(make_optimizer<double>("bogus", "additive"), std::invalid_argument,
                         names({"base", "'bogus'", "sgd", "adam", "adagrad", "rmsprop"}));
  REQUIRE_THROWS_MATCHES(make_optimizer<float>("Adam", "additive"), std::invalid_argument, names({"base", "'Adam'"}));
  REQUIRE_THROWS_MATCHES(make_optimizer<double>("sgd", "bogus"), std::invalid_argument,
                         names({"rule", "'bogus'", "additive", "multiplicative", "hybrid", "exponential"}));
  REQUIRE_THROWS_MATCHES(make_optimizer<double>("adam", ""), std::invalid_argument, names({"rule", "''"}));
  for (const char* base : {"adam", "adagrad", "rmsprop"}) {
    INFO(base);
    REQUIRE_THROWS_MATCHES(make_optimizer<double>(base, "multiplicative_tanh_momentum"), std::invalid_argument,
                           names({"multiplicative_tanh_momentum", base}));
  }
}

TEST_CASE("make_optimizer accepts momentum_type none and tanh where defined", "[validation]") {
  CHECK(std::string(multopt::make_optimizer<double>("sgd", "multiplicative", {{"momentum_type", "tanh"}})
                        ->rule_name()) == "multiplicative_tanh_momentum");
  for (const char* rule : {"additive", "multiplicative", "hybrid", "exponential"}) {
    INFO(rule);
    CHECK(std::string(multopt::make_optimizer<double>("adam", rule, {{"momentum_type", "none"}})->rule_name()) ==
          rule);
  }
}

TEST_CASE("make_optimizer rejects momentum_type values other than none and tanh", "[validation]") {
  for (const char* value : {"sideways", "Tanh", "NONE", "1", ""}) {
    INFO("momentum_type = '" << value << "'");
    REQUIRE_THROWS_MATCHES(
        multopt::make_optimizer<double>("sgd", "multiplicative", {{"momentum_type", value}}),
        std::invalid_argument, names({"momentum_type", "'" + std::string(value) + "'", "none", "tanh"}));
  }
}

TEST_CASE("make_optimizer rejects momentum_type tanh with any rule but multiplicative", "[validation]") {
  for (const char* rule : {"hybrid", "additive", "exponential", "nonnegative_clip"}) {
    INFO(rule);
    REQUIRE_THROWS_MATCHES(multopt::make_optimizer<double>("sgd", rule, {{"momentum_type", "tanh"}}),
                           std::invalid_argument, names({"momentum_type", "tanh", rule}));
  }
}

// Tanh momentum is defined for SGD only; a configuration that asks for it on another base
// should be told which setting is at fault, as it is for the wrong rule.
TEST_CASE("make_optimizer rejects momentum_type tanh on a base other than sgd, naming the setting",
          "[validation]") {
  for (const char* base : {"adam", "adagrad", "rmsprop"}) {
    INFO(base);
    REQUIRE_THROWS_MATCHES(multopt::make_optimizer<double>(base, "multiplicative", {{"momentum_type", "tanh"}}),
                           std::invalid_argument, names({"momentum_type", "tanh", base}));
  }
}

TEST_CASE("make_optimizer rejects values that are not numbers, naming the setting and the text", "[validation]") {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"lr", "abc"}, {"lr", "0.1x"}, {"lr", "1e999"}, {"beta1", "0.9.1"}, {"amsgrad", "true"}, {"eps", "1,5"}};
  for (const auto& [name, text] : bad) {
    INFO(name << " = '" << text << "'");
    REQUIRE_THROWS_MATCHES(multopt::make_optimizer<double>("adam", "additive", {{name, text}}),
                           std::invalid_argument, names({name, "'" + text + "'"}));
  }
  REQUIRE_THROWS_MATCHES(multopt::make_optimizer<float>("sgd", "hybrid", {{"g", ""}}), std::invalid_argument,
                         names({"g", "''"}));
}

TEST_CASE("Eigen add_params rejects a gradient whose length differs, naming both lengths", "[validation]") {
  multopt::MAdam<float> opt;
  Eigen::ArrayXf param = Eigen::ArrayXf::Ones(5), grad = Eigen::ArrayXf::Ones(4);
  REQUIRE_THROWS_MATCHES(opt.add_params(param, grad), std::invalid_argument, names({"param", "5", "grad", "4"}));
  multopt::HRMSprop<double> two_d;
  Eigen::ArrayXXd param2(3, 4), grad2(3, 5);
  REQUIRE_THROWS_MATCHES(two_d.add_params(param2, grad2), std::invalid_argument, names({"12", "15"}));
  CHECK(opt.tensor_count() == 0);
  CHECK(two_d.tensor_count() == 0);
}

TEST_CASE("Eigen add_params rejects storage that is not contiguous and accepts what is", "[validation]") {
  multopt::MSGD<float> opt;
  Eigen::ArrayXXf param = Eigen::ArrayXXf::Ones(4, 4), grad = Eigen::ArrayXXf::Ones(4, 4);
  REQUIRE_THROWS_MATCHES(opt.add_params(param.block(0, 0, 2, 2), grad.block(0, 0, 2, 2)), std::invalid_argument,
                         names({"param", "contiguous"}));
  REQUIRE_THROWS_MATCHES(opt.add_params(param.row(1), grad.col(1).transpose()), std::invalid_argument,
                         names({"param", "contiguous"}));
  std::vector<float> strided(8, 1.0f);
  Eigen::Map<const Eigen::ArrayXf, 0, Eigen::InnerStride<2>> every_other(strided.data(), 4);
  REQUIRE_THROWS_MATCHES(opt.add_params(param.col(0), every_other), std::invalid_argument,
                         names({"grad", "contiguous"}));
  CHECK(opt.tensor_count() == 0);

  // Whole columns of a column-major array are contiguous.
  REQUIRE_NOTHROW(opt.add_params(param.col(2), grad.col(2)));
  REQUIRE_NOTHROW(opt.add_params(param.block(0, 1, 4, 2), grad.block(0, 1, 4, 2)));
  CHECK(opt.tensor_count() == 2);
  CHECK(opt.size(1) == 8);
}

TEST_CASE("add_params rejects null pointers unless the tensor is empty", "[validation]") {
  multopt::Adam<double> opt;
  std::vector<double> param(3, 1.0), grad(3, 1.0);
  REQUIRE_THROWS_MATCHES(opt.add_params(nullptr, grad.data(), 3), std::invalid_argument, names({"param", "null"}));
  REQUIRE_THROWS_MATCHES(opt.add_params(param.data(), nullptr, 3), std::invalid_argument, names({"grad", "null"}));
  const auto erased = multopt::make_optimizer<double>("adagrad", "exponential");
  REQUIRE_THROWS_MATCHES(erased->add_params(nullptr, nullptr, 1), std::invalid_argument, names({"param", "null"}));
  CHECK(opt.tensor_count() == 0);
  REQUIRE_NOTHROW(opt.add_params(nullptr, nullptr, 0));
  REQUIRE_NOTHROW(opt.step());
  CHECK(opt.step_count(0) == 1);
}

TEST_CASE("a group index out of range is reported as std::out_of_range naming the group", "[validation]") {
  multopt::HRMSprop<double> opt;
  opt.add_group(opt.hyper());
  std::vector<double> param(3, 1.0), grad(3, 1.0);
  const auto erased = multopt::make_optimizer<float>("sgd", "hybrid");
  std::vector<float> fparam(3, 1.0f), fgrad(3, 1.0f);
  for (const std::size_t group : {std::size_t(2), std::size_t(99)}) {
    const auto named = names({"group", std::to_string(group)});
    REQUIRE_THROWS_MATCHES(opt.set("lr", 0.1, group), std::out_of_range, named);
    REQUIRE_THROWS_MATCHES(opt.get("lr", group), std::out_of_range, named);
    REQUIRE_THROWS_MATCHES(opt.hyper(group), std::out_of_range, named);
    REQUIRE_THROWS_MATCHES(opt.set_hyper(opt.hyper(), group), std::out_of_range, named);
    REQUIRE_THROWS_MATCHES(opt.add_params(param.data(), grad.data(), 3, group), std::out_of_range, named);
    REQUIRE_THROWS_MATCHES(erased->set("lr", 0.1, group), std::out_of_range, named);
    REQUIRE_THROWS_MATCHES(erased->get("lr", group), std::out_of_range, named);
    REQUIRE_THROWS_MATCHES(erased->set_all({{"lr", 0.1}}, group), std::out_of_range, named);
    REQUIRE_THROWS_MATCHES(erased->add_params(fparam.data(), fgrad.data(), 3, group), std::out_of_range, named);
  }
  CHECK(opt.group_count() == 2);
  CHECK(opt.tensor_count() == 0);
}

TEST_CASE("a tensor index or state array out of range is reported as std::out_of_range naming it",
          "[validation]") {
  multopt::Adam<double> opt;
  std::vector<double> param(3, 1.0), grad(3, 1.0);
  opt.add_params(param.data(), grad.data(), 3);
  for (const std::size_t tensor : {std::size_t(1), std::size_t(42)}) {
    const auto named = names({"tensor", std::to_string(tensor), "1 tensors"});
    REQUIRE_THROWS_MATCHES(opt.size(tensor), std::out_of_range, named);
    REQUIRE_THROWS_MATCHES(opt.step_count(tensor), std::out_of_range, named);
    REQUIRE_THROWS_MATCHES(opt.state(tensor, 0), std::out_of_range, named);
  }
  for (const int array : {-1, 3}) {
    REQUIRE_THROWS_MATCHES(opt.state(0, array), std::out_of_range,
                           names({"array", std::to_string(array), "adam has 3"}));
  }
  const auto erased = multopt::make_optimizer<double>("sgd", "additive");
  REQUIRE_THROWS_MATCHES(erased->step_count(0), std::out_of_range, names({"tensor 0", "0 tensors"}));
}

TEST_CASE("the type-erased add_group starts from group 0's values and validates before it adds",
          "[validation]") {
  const auto erased = multopt::make_optimizer<double>("adam", "hybrid", {{"lr", "0.01"}, {"g", "0.25"}});
  REQUIRE_THROWS_MATCHES(erased->add_group({{"lr_out", 0.5}, {"beta1", 1.5}}), std::invalid_argument,
                         names({"beta1", "1.5"}));
  REQUIRE_THROWS_MATCHES(erased->add_group({{"momentum", 0.9}}), std::invalid_argument, names({"momentum"}));
  CHECK(erased->group_count() == 1);
  CHECK(erased->add_group({{"lr_out", 0.5}}) == 1);
  CHECK(erased->group_count() == 2);
  CHECK(erased->get("lr_out", 1) == 0.5);
  CHECK(erased->get("lr", 1) == 0.01);
  CHECK(erased->get("g_mix", 1) == 0.25);
  CHECK(erased->get("lr_out", 0) == multopt::rules::Hybrid::Params{}.lr_out);

  // The two groups step the same data with their own settings.
  std::vector<double> first(4, 1.0), second(4, 1.0), grad(4, 0.5);
  erased->add_params(first.data(), grad.data(), 4, 0);
  erased->add_params(second.data(), grad.data(), 4, 1);
  erased->step();
  CHECK(first[0] > second[0]);
  CHECK(second[0] < 1.0);
}

TEST_CASE("set_thread_settings rejects negative thread counts and empty chunks", "[validation]") {
  multopt::MAdagrad<float> opt;
  multopt::ThreadSettings threading;
  threading.threads = -1;
  REQUIRE_THROWS_MATCHES(opt.set_thread_settings(threading), std::invalid_argument, names({"threads", "-1"}));
  threading.threads = 2;
  threading.chunk = 0;
  REQUIRE_THROWS_MATCHES(opt.set_thread_settings(threading), std::invalid_argument, names({"chunk", "0"}));
  CHECK(opt.thread_settings().threads == 0);
  CHECK(opt.thread_settings().chunk == multopt::ThreadSettings{}.chunk);
}
