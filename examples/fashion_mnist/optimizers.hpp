// The optimizers the demo compares and their hyperparameters: the learning-rate grids of the
// sweep (docs/demo.md) and the values that sweep chose.
#pragma once

#include <multopt/multopt.hpp>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace demo {

struct OptimizerSpec {
  std::string base;  // sgd, adam, adagrad, rmsprop, adamax, nadam, radam, adadelta or lion
  std::string rule;  // additive, multiplicative or hybrid
};

// The paper's names, which multopt's aliases carry: MAdam, HSGD, ...
inline std::string display_name(const OptimizerSpec& spec) { return multopt::alias_name(spec.base, spec.rule); }

// Each of these bases with the additive, multiplicative and hybrid rules.
inline std::vector<OptimizerSpec> with_every_rule(const std::vector<std::string>& bases) {
  std::vector<OptimizerSpec> set;
  for (const std::string& base : bases) {
    for (const char* rule : {"additive", "multiplicative", "hybrid"}) set.push_back({base, rule});
  }
  return set;
}

// The paper's four bases with every rule: the study's set (docs/study.md).
inline std::vector<OptimizerSpec> paper_optimizer_set() {
  return with_every_rule({"sgd", "adam", "adagrad", "rmsprop"});
}

// SGD and Adam with every rule, or every base (the paper's four and the five of version 2)
// with every rule.
inline std::vector<OptimizerSpec> optimizer_set(bool all_bases) {
  if (!all_bases) return with_every_rule({"sgd", "adam"});
  return with_every_rule({"sgd", "adam", "adagrad", "rmsprop", "adamax", "nadam", "radam", "adadelta", "lion"});
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
  // Adadelta scales its own steps (torch's lr is 1); lr_out stays <= 1 so that a weight cannot
  // cross zero.
  if (base == "adadelta")
    return {{"0.1", "0.03"}, {"0.3", "0.1"}, {"1", "0.3"}, {"3", "0.6"}, {"10", "1"}};
  // Lion's direction is a sign, ±1 per weight: rates a few times below Adam's (Chen et al.).
  if (base == "lion")
    return {{"0.00003", "0.0003"}, {"0.0001", "0.001"}, {"0.0003", "0.003"}, {"0.001", "0.01"}, {"0.003", "0.03"}};
  // Adam, RMSprop, Adamax, NAdam and RAdam: directions normalized to about ±1, hence smaller rates.
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

// The learning rates the sweep chose (docs/demo.md): fashion_mnist --sweep --optimizers all. The
// paper's four bases were swept first, on the build of 2026-12-02; the five of version 2 on the
// build of 2026-12-07. The rates stay as chosen, so that the demo's tables and the study compare
// the same optimizers from version to version.
inline multopt::Settings chosen_rates(const OptimizerSpec& spec) {
  // The grid point each rule of a base chose, counted from 1 as docs/demo.md's sweep table.
  struct Choice {
    const char* base;
    int additive, multiplicative, hybrid;
  };
  static const Choice choices[] = {
      {"sgd", 2, 2, 3},    {"adam", 3, 3, 3},  {"adagrad", 3, 3, 3},  {"rmsprop", 3, 4, 3}, {"adamax", 4, 4, 4},
      {"nadam", 4, 3, 3},  {"radam", 2, 3, 3}, {"adadelta", 4, 5, 3}, {"lion", 2, 2, 2},
  };
  for (const Choice& choice : choices) {
    if (spec.base != choice.base) continue;
    const int point = spec.rule == "additive" ? choice.additive
                      : spec.rule == "multiplicative" ? choice.multiplicative
                                                      : choice.hybrid;
    return sweep_candidates(spec)[std::size_t(point - 1)];
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

// How the model's weights are stored (--precision): in fp32, or in bf16 as a 16-bit optimizer
// stores them, rounded to nearest, from fp32 master weights, or rounded stochastically.
enum class Precision { fp32, bf16, bf16_master, bf16_stochastic };

inline const std::vector<std::pair<Precision, std::string>>& precision_names() {
  static const std::vector<std::pair<Precision, std::string>> names{{Precision::fp32, "fp32"},
                                                                    {Precision::bf16, "bf16"},
                                                                    {Precision::bf16_master, "bf16-master"},
                                                                    {Precision::bf16_stochastic, "bf16-stochastic"}};
  return names;
}

inline std::string to_string(Precision precision) {
  for (const auto& [value, name] : precision_names())
    if (value == precision) return name;
  throw std::logic_error("no name for a precision");
}

// The settings that choose a bf16 optimizer's storage mode (multopt's `rounding`); stochastic
// rounding draws its bits from `seed`.
inline multopt::Settings storage_settings(Precision precision, unsigned seed) {
  switch (precision) {
    case Precision::fp32: return {};
    case Precision::bf16: return {{"rounding", "nearest"}};
    case Precision::bf16_master: return {{"rounding", "master"}};
    case Precision::bf16_stochastic: return {{"rounding", "stochastic"}, {"rounding_seed", std::to_string(seed)}};
  }
  throw std::logic_error("no storage settings for a precision");
}

// Settings as one readable string, "lr_out=0.01 lr=0.001".
inline std::string describe(const multopt::Settings& settings) {
  std::string text;
  for (const auto& [name, value] : settings) text += (text.empty() ? "" : " ") + name + "=" + value;
  return text;
}

}  // namespace demo
