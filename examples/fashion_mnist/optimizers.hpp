// The optimizers the demo compares and their hyperparameters: the learning-rate grids of the
// sweep (docs/demo.md) and the values that sweep chose.
#pragma once

#include <multopt/runtime.hpp>

#include <stdexcept>
#include <string>
#include <vector>

namespace demo {

struct OptimizerSpec {
  std::string base;  // sgd, adam, adagrad or rmsprop
  std::string rule;  // additive, multiplicative or hybrid
};

// The paper's names: the base's name, prefixed M for multiplicative and H for hybrid.
inline std::string display_name(const OptimizerSpec& spec) {
  const std::string base = spec.base == "sgd" ? "SGD" : spec.base == "adam" ? "Adam"
                         : spec.base == "adagrad" ? "Adagrad" : "RMSprop";
  const std::string prefix = spec.rule == "multiplicative" ? "M" : spec.rule == "hybrid" ? "H" : "";
  return prefix + base;
}

// SGD and Adam with every rule, or every base with every rule.
inline std::vector<OptimizerSpec> optimizer_set(bool all_bases) {
  std::vector<std::string> bases{"sgd", "adam"};
  if (all_bases) bases.insert(bases.end(), {"adagrad", "rmsprop"});
  std::vector<OptimizerSpec> set;
  for (const std::string& base : bases) {
    for (const char* rule : {"additive", "multiplicative", "hybrid"}) set.push_back({base, rule});
  }
  return set;
}

// Settings that every rule of a base shares, outside the sweep: SGD with the usual momentum
// 0.9; Adam, Adagrad and RMSprop at their torch.optim defaults. lr_in stays at its default 1.
inline multopt::Settings base_settings(const std::string& base) {
  if (base == "sgd") return {{"momentum", "0.9"}};
  return {};
}

// The hybrid rule's share of the multiplicative step; the rest is the additive step.
inline const char* const hybrid_mix = "0.5";

// One point of the sweep's grid: an additive `lr` and a multiplicative `lr_out` ten times
// larger. The multiplicative step scales with |θ|, which averages 0.04 and 0.07 in the two
// layers of the initial MLP, so the two rates of a point move a typical weight comparably.
struct SweepPoint {
  const char* lr;
  const char* lr_out;
};

// Five points per base, half a decade apart, centred on the base's usual additive rate.
inline std::vector<SweepPoint> sweep_grid(const std::string& base) {
  if (base == "sgd" || base == "adagrad")
    return {{"0.003", "0.03"}, {"0.01", "0.1"}, {"0.03", "0.3"}, {"0.1", "1"}, {"0.3", "3"}};
  // Adam and RMSprop: directions normalized to about ±1, hence smaller rates.
  return {{"0.0001", "0.001"}, {"0.0003", "0.003"}, {"0.001", "0.01"}, {"0.003", "0.03"}, {"0.01", "0.1"}};
}

// The sweep's candidates for one optimizer, one per grid point, so that every rule gets the
// same number of tries: the additive rule takes the point's `lr`, the multiplicative rule
// its `lr_out`, and the hybrid rule both.
inline std::vector<multopt::Settings> sweep_candidates(const OptimizerSpec& spec) {
  std::vector<multopt::Settings> candidates;
  for (const SweepPoint& point : sweep_grid(spec.base)) {
    if (spec.rule == "additive") {
      candidates.push_back({{"lr", point.lr}});
    } else if (spec.rule == "multiplicative") {
      candidates.push_back({{"lr_out", point.lr_out}});
    } else {
      candidates.push_back({{"lr_out", point.lr_out}, {"lr", point.lr}});
    }
  }
  return candidates;
}

// The learning rates the sweep chose (docs/demo.md): fashion_mnist --sweep --optimizers all.
inline multopt::Settings chosen_rates(const OptimizerSpec& spec) {
  struct Choice {
    const char* base;
    const char* rule;
    multopt::Settings rates;
  };
  static const std::vector<Choice> choices{
      {"sgd", "additive", {{"lr", "0.01"}}},
      {"sgd", "multiplicative", {{"lr_out", "0.1"}}},
      {"sgd", "hybrid", {{"lr_out", "0.3"}, {"lr", "0.03"}}},
      {"adam", "additive", {{"lr", "0.001"}}},
      {"adam", "multiplicative", {{"lr_out", "0.01"}}},
      {"adam", "hybrid", {{"lr_out", "0.01"}, {"lr", "0.001"}}},
      {"adagrad", "additive", {{"lr", "0.03"}}},
      {"adagrad", "multiplicative", {{"lr_out", "0.3"}}},
      {"adagrad", "hybrid", {{"lr_out", "0.3"}, {"lr", "0.03"}}},
      {"rmsprop", "additive", {{"lr", "0.001"}}},
      {"rmsprop", "multiplicative", {{"lr_out", "0.03"}}},
      {"rmsprop", "hybrid", {{"lr_out", "0.01"}, {"lr", "0.001"}}},
  };
  for (const Choice& choice : choices) {
    if (spec.base == choice.base && spec.rule == choice.rule) return choice.rates;
  }
  throw std::logic_error("no learning rates chosen for " + spec.base + " " + spec.rule);
}

// Everything make_optimizer needs: the base's settings, the rates, and the hybrid's mix.
inline multopt::Settings full_settings(const OptimizerSpec& spec, const multopt::Settings& rates) {
  multopt::Settings settings = base_settings(spec.base);
  settings.insert(settings.end(), rates.begin(), rates.end());
  if (spec.rule == "hybrid") settings.push_back({"g", hybrid_mix});
  return settings;
}

// Settings as one readable string, "lr_out=0.01 lr=0.001".
inline std::string describe(const multopt::Settings& settings) {
  std::string text;
  for (const auto& [name, value] : settings) text += (text.empty() ? "" : " ") + name + "=" + value;
  return text;
}

}  // namespace demo
