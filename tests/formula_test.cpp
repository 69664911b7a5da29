// Every base with every rule against the formulas of docs/math.md: random settings stepped by
// multopt and by the independent long-double model of reference_model.hpp, beside the golden
// replays of golden_test.cpp, which hold only the settings their files were written with.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "reference_model.hpp"
#include "test_support.hpp"

namespace {

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", value);
  return text;
}

using Draw = std::mt19937;

double uniform(Draw& rng, double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); }

void put(multopt::Settings& s, const char* name, double value) { s.emplace_back(name, number(value)); }

// The rule's rates within docs/math.md's ranges, drawn after the base's settings.
void put_rule_settings(multopt::Settings& s, const std::string& rule, Draw& rng) {
  if (rule == "additive" || rule == "hybrid") put(s, "lr", uniform(rng, 0.001, 0.01));
  if (rule != "additive") {
    put(s, "lr_in", uniform(rng, 0.5, 3.0));
    put(s, "lr_out", uniform(rng, 0.001, 0.02));
  }
  if (rule == "hybrid") put(s, "g", uniform(rng, 0.0, 1.0));
}

// Random settings of SGD, Adam, Adagrad or RMSprop; the bits of `variant` switch on the optional
// features: momentum (SGD, RMSprop), amsgrad, lr_decay; then Nesterov, initial_accumulator_value,
// centered; then weight decay.
multopt::Settings first_base_settings(const std::string& base, const std::string& rule, bool tanh_momentum,
                                      unsigned variant, Draw& rng) {
  multopt::Settings s;
  const bool first = variant & 1, second = variant & 2, third = variant & 4;
  if (base == "sgd") {
    if (first || tanh_momentum) put(s, "momentum", uniform(rng, 0.5, 0.95));
    if ((first || tanh_momentum) && second) put(s, "nesterov", 1);
    else if (first) put(s, "dampening", uniform(rng, 0.0, 0.5));
  } else if (base == "adam") {
    put(s, "beta1", uniform(rng, 0.5, 0.95));
    put(s, "beta2", uniform(rng, 0.9, 0.9999));
    put(s, "eps", uniform(rng, 1e-8, 1e-3));
    if (first) put(s, "amsgrad", 1);
  } else if (base == "adagrad") {
    if (first) put(s, "lr_decay", uniform(rng, 0.01, 0.2));
    if (second) put(s, "initial_accumulator_value", uniform(rng, 0.01, 0.5));
    put(s, "eps", uniform(rng, 1e-10, 1e-3));
  } else {
    put(s, "alpha", uniform(rng, 0.5, 0.99));
    put(s, "eps", uniform(rng, 1e-8, 1e-3));
    if (first) put(s, "momentum", uniform(rng, 0.1, 0.9));
    if (second) put(s, "centered", 1);
  }
  if (third) put(s, "weight_decay", uniform(rng, 0.001, 0.1));
  if (tanh_momentum) s.emplace_back("momentum_type", "tanh");
  put_rule_settings(s, rule, rng);
  return s;
}

// Random settings of the bases after the paper's four (Adamax, NAdam, RAdam, Adadelta, Lion,
// SparseAdam): bit 0 of
// `variant` sets the base's own, bit 1 weight decay.
multopt::Settings version_2_base_settings(const std::string& base, const std::string& rule, unsigned variant,
                                          Draw& rng) {
  multopt::Settings s;
  if (variant & 1) {
    if (base == "adadelta") {
      put(s, "rho", uniform(rng, 0.5, 0.99));
      put(s, "eps", uniform(rng, 1e-8, 1e-3));
    } else {
      put(s, "beta1", uniform(rng, 0.5, 0.95));
      // RAdam's lower beta2 takes both of its branches within 20 steps.
      put(s, "beta2", base == "radam" ? uniform(rng, 0.8, 0.95) : uniform(rng, 0.9, 0.9999));
      if (base != "lion") put(s, "eps", uniform(rng, 1e-8, 1e-3));
      if (base == "nadam") put(s, "momentum_decay", uniform(rng, 0.001, 0.05));
    }
  }
  if (variant & 2) put(s, "weight_decay", uniform(rng, 0.001, 0.1));
  put_rule_settings(s, rule, rng);
  return s;
}

std::string describe(const multopt::Settings& settings) {
  std::string text;
  for (const auto& [name, value] : settings) text += name + "=" + value + " ";
  return text;
}

// The worst relative error of `steps` steps of multopt in S against the model, on `tensors`
// tensors of random sizes up to 40 (each its own tensor in both).
template <class S>
double worst_error_against_model(const std::string& base, const std::string& rule, const multopt::Settings& settings,
                                 int steps, std::size_t tensors, Draw& rng) {
  const auto opt = multopt::make_optimizer<S>(base, rule, settings);
  std::vector<std::size_t> sizes(tensors);
  for (auto& n : sizes) n = 1 + rng() % 40;
  std::vector<std::vector<S>> params, grads;
  std::vector<reference::Model> models;
  for (std::size_t n : sizes) {
    std::vector<double> init(n);
    std::uniform_real_distribution<double> magnitude(0.5, 2.0);
    for (auto& x : init) x = (rng() % 2 ? 1 : -1) * magnitude(rng);  // far from 0: relative error is meaningful
    params.emplace_back(init.begin(), init.end());
    grads.emplace_back(n);
    models.emplace_back(base, rule, settings, init);
  }
  for (std::size_t k = 0; k < params.size(); ++k) opt->add_params(params[k].data(), grads[k].data(), params[k].size());
  double worst = 0;
  for (int t = 0; t < steps; ++t) {
    for (std::size_t k = 0; k < params.size(); ++k) {
      const auto g = test::uniform<double>(rng, params[k].size(), -1.0, 1.0);
      std::copy(g.begin(), g.end(), grads[k].begin());
      models[k].step(g);
    }
    opt->step();
    for (std::size_t k = 0; k < params.size(); ++k)
      for (std::size_t i = 0; i < params[k].size(); ++i) {
        const long double ref = models[k].theta()[i];
        worst = std::max(worst, double(std::fabs(static_cast<long double>(params[k][i]) - ref) / std::fabs(ref)));
      }
  }
  return worst;
}

}  // namespace

TEST_CASE("every base and rule follows docs/math.md's formulas: 3 steps within 1e-13 (double) and 1e-5 (float) "
          "of an independent long-double model",
          "[property][formula]") {
  struct Combination {
    const char* base;
    const char* rule;
    bool tanh_momentum;
  };
  std::vector<Combination> combinations;
  for (const char* base : {"sgd", "adam", "adagrad", "rmsprop"})
    for (const char* rule : {"additive", "multiplicative", "hybrid", "exponential"})
      combinations.push_back({base, rule, false});
  combinations.push_back({"sgd", "multiplicative", true});

  Draw rng(2024);
  for (const auto& c : combinations) {
    for (unsigned variant = 0; variant < 8; ++variant) {
      for (int trial = 0; trial < 3; ++trial) {
        const auto settings = first_base_settings(c.base, c.rule, c.tanh_momentum, variant, rng);
        INFO(c.base << " with the " << c.rule << " rule: " << describe(settings));
        CHECK(worst_error_against_model<double>(c.base, c.rule, settings, 3, 1, rng) <= 1e-13);
        CHECK(worst_error_against_model<float>(c.base, c.rule, settings, 3, 1, rng) <= 1e-5);
      }
    }
  }
}

TEST_CASE("the version-2 bases with every rule follow docs/math.md: 20 steps within 1e-12 (double) of an "
          "independent long-double model",
          "[bases][formula]") {
  Draw rng(2025);
  std::vector<const char*> version_2_bases;  // AllBases' beyond the paper's four, in its order
  multopt::for_each_type(multopt::AllBases{}, [&](auto tag) {
    using Base = typename decltype(tag)::type;
    if constexpr (!test::paper_base<Base>) version_2_bases.push_back(Base::name);
  });
  int cases = 0;
  for (const char* base : version_2_bases)
    for (const char* rule : {"additive", "multiplicative", "hybrid", "exponential"})
      for (unsigned variant = 0; variant < 4; ++variant)
        for (int trial = 0; trial < 2; ++trial) {
          const auto settings = version_2_base_settings(base, rule, variant, rng);
          INFO(base << " with the " << rule << " rule: " << describe(settings));
          CHECK(worst_error_against_model<double>(base, rule, settings, 20, 2, rng) <= 1e-12);
          // Lion's sign of a rounded interpolation flips where it is near 0: float only elsewhere.
          if (std::string(base) != "lion")
            CHECK(worst_error_against_model<float>(base, rule, settings, 20, 2, rng) <= 1e-4);
          ++cases;
        }
  CHECK(cases == 192);
}
