// The hyperparameters under which every base keeps every state array it has and every rule
// term acts, for the tests of multopt_tests and the MPI tests alike (no Catch2 here: the MPI
// tests are programs of their own).
#pragma once

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace test {

// Those of the settings below that a combination with the hyperparameters `known` has; `rate`
// scales the learning rates.
inline std::vector<std::pair<std::string, double>> stateful_settings(const std::vector<std::string>& known,
                                                                     double rate = 1.0) {
  const std::vector<std::pair<std::string, double>> candidates = {
      {"momentum", 0.5},  {"nesterov", 1},    {"beta1", 0.8},   {"amsgrad", 1},
      {"lr_decay", 0.05}, {"initial_accumulator_value", 0.1}, {"centered", 1},
      {"lr", 0.01 * rate}, {"lr_in", 1.5},    {"lr_out", 0.01 * rate}, {"g_mix", 0.5},
      {"weight_decay", 0.01}, {"momentum_decay", 0.01}, {"rho", 0.95}};
  std::vector<std::pair<std::string, double>> settings;
  for (const auto& setting : candidates)
    if (std::find(known.begin(), known.end(), setting.first) != known.end()) settings.push_back(setting);
  return settings;
}

// The same as the combination H's hyperparameters.
template <class H>
H stateful_hyper(double rate = 1.0) {
  H h;
  h.set_all(stateful_settings(H::names(), rate));
  return h;
}

}  // namespace test
