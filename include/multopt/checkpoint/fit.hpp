// Whether a checkpoint fits the optimizer it would load into, and what it restores of the
// settings by name: the checks of load_checkpoint before any state is read.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "../tensor_refs.hpp"
#include "header.hpp"

namespace multopt {

// What load_checkpoint may do beyond restoring the saved state exactly.
struct LoadOptions {
  // Loads a double checkpoint into a float optimizer, rounding each state value to the
  // nearest float. Off by default, because the rounded state no longer continues the saved
  // trajectory. (A float checkpoint always loads into a double optimizer: widening is exact.)
  bool allow_narrowing = false;
};

namespace detail {

[[noreturn]] inline void mismatch(const std::string& what) {
  throw std::invalid_argument("multopt: the checkpoint does not fit: " + what);
}

template <class T>
std::string counted(T count, const char* noun) {
  return std::to_string(count) + " " + noun + (count == 1 ? "" : "s");
}

// Refuses a checkpoint whose structure differs from `here`, that of the optimizer and
// schedules it would load into (whose base has `array_count` state arrays and `scalar_count`
// scalars), and one with values no writer of this format produces.
inline void check_fit(const CheckpointHeader& saved, const CheckpointHeader& here, int array_count,
                      std::size_t scalar_count, const LoadOptions& options) {
  if (saved.base != here.base || saved.rule != here.rule) {
    mismatch("it is of " + saved.base + " with the " + saved.rule + " rule, the optimizer is " + here.base +
             " with the " + here.rule + " rule");
  }
  if (saved.scalar != "float" && saved.scalar != "double")
    malformed("unknown scalar type '" + saved.scalar + "'");
  const auto is_16bit_name = [](const std::string& name) { return name == "bf16" || name == "fp16"; };
  if (saved.parameter != saved.scalar && !(is_16bit_name(saved.parameter) && saved.scalar == "float"))
    malformed("parameters of type '" + saved.parameter + "' with state of type '" + saved.scalar + "'");
  if (saved.parameter != here.parameter && (is_16bit_name(saved.parameter) || is_16bit_name(here.parameter)))
    mismatch("it is of " + saved.parameter + " parameters, the optimizer steps " + here.parameter);
  if (saved.scalar == "double" && here.scalar == "float" && !options.allow_narrowing) {
    mismatch(
        "it holds double state and the optimizer steps float; rounding the state changes the "
        "trajectory, so it needs LoadOptions::allow_narrowing");
  }
  if (saved.groups.size() != here.groups.size()) {
    mismatch("it has " + counted(saved.groups.size(), "parameter group") + ", the optimizer " +
             std::to_string(here.groups.size()));
  }
  if (saved.tensors.size() != here.tensors.size()) {
    mismatch("it has " + counted(saved.tensors.size(), "tensor") + ", the optimizer " +
             std::to_string(here.tensors.size()));
  }
  const std::uint64_t array_masks = (std::uint64_t(1) << array_count) - 1;
  // Step counts and epochs are longs, and the next step or epoch adds one: the largest long
  // would overflow there (max_step_count, which a step never passes).
  constexpr auto most = std::uint64_t(max_step_count);
  const auto beyond = [&](std::uint64_t value) {
    return " " + std::to_string(value) + " (at most " + std::to_string(most) +
           ", so that the next can be counted)";
  };
  for (std::size_t k = 0; k < saved.tensors.size(); ++k) {
    const auto& s = saved.tensors[k];
    const auto& h = here.tensors[k];
    const std::string tensor = "tensor " + std::to_string(k);
    if (s.size != h.size)
      mismatch("its " + tensor + " has " + counted(s.size, "element") + ", the optimizer's " +
               std::to_string(h.size));
    if (s.group != h.group)
      mismatch("its " + tensor + " is in group " + std::to_string(s.group) + ", the optimizer's in group " +
               std::to_string(h.group));
    if (s.master > 1 || (s.master && !is_16bit_name(saved.parameter)))
      malformed(tensor + " has a master-weights flag of " + std::to_string(s.master));
    if (s.ema > 1) malformed(tensor + " has a moving-average flag of " + std::to_string(s.ema));
    if (((s.array_mask | s.new_state_arrays) & ~array_masks) != 0)
      malformed(tensor + " has state arrays the " + saved.base + " base does not have");
    if (s.steps > most) malformed(tensor + " has an impossible step count" + beyond(s.steps));
    if (s.scalars.size() != scalar_count)
      malformed(tensor + " has " + counted(s.scalars.size(), "scalar state") + ", the " + saved.base + " base " +
                std::to_string(scalar_count));
    for (double value : s.scalars)
      if (!std::isfinite(value)) malformed(tensor + " has a scalar state that is not finite");
  }
  if (saved.schedules.size() != here.schedules.size()) {
    mismatch("it has " + counted(saved.schedules.size(), "schedule position") + ", " +
             std::to_string(here.schedules.size()) + " schedules were passed");
  }
  for (std::size_t k = 0; k < saved.schedules.size(); ++k) {
    const auto& s = saved.schedules[k];
    const auto& h = here.schedules[k];
    if (s.kind != h.kind || s.group != h.group) {
      mismatch("its schedule " + std::to_string(k) + " is " + s.kind + " on " + group_name(s.group) +
               ", the one passed " + h.kind + " on " + group_name(h.group));
    }
    if (s.epoch > most)
      malformed("schedule " + std::to_string(k) + " is at an impossible epoch" + beyond(s.epoch));
  }
}

// The hyperparameters that version 2 added: a version 1 file has none and means their defaults.
inline bool new_in_version_2(const std::string& name) {
  return name == "lr_factor" || name == "maximize" || name == "decoupled_weight_decay";
}

// How often `name` occurs among named values.
inline long occurrences(const std::vector<std::pair<std::string, double>>& values, const std::string& name) {
  return long(std::count_if(values.begin(), values.end(), [&](const auto& v) { return v.first == name; }));
}

// Refuses saved group g unless it holds each of `names` once.
inline void require_saved_once(const CheckpointHeader& saved, std::size_t g, std::uint32_t version,
                               const std::vector<std::string>& names) {
  for (const auto& name : names) {
    const auto count = occurrences(saved.groups[g], name);
    if (count != 1 && !(count == 0 && version == 1 && new_in_version_2(name))) {
      malformed("group " + std::to_string(g) + " has hyperparameter '" + name + "' " + std::to_string(count) +
                " times instead of once");
    }
  }
}

// Every group's hyperparameters, validated; each must be saved once by name.
template <class Hyper>
std::vector<Hyper> restored_groups(const CheckpointHeader& saved, std::uint32_t version) {
  const auto names = Hyper::names();
  std::vector<Hyper> groups(saved.groups.size());
  for (std::size_t g = 0; g < groups.size(); ++g) {
    groups[g].set_all(saved.groups[g]);  // refuses unknown names and invalid values
    require_saved_once(saved, g, version, names);
  }
  return groups;
}

// The optimizer's settings: the clipping norm, saved once (version 2 and later) or off (version
// 1, which had none), for 16-bit parameters the storage mode (version 3: the rounding, 0
// master, 1 nearest, 2 stochastic, and the seed's two 32-bit halves, each exact in a double),
// and the loss scale and the moving average's decay, each saved where it is in use (version
// 4; absent, 1 and none).
struct RestoredSettings {
  double max_grad_norm = std::numeric_limits<double>::infinity();
  StorageMode storage;
  double grad_scale = 1.0;
  std::optional<double> ema_decay;
};

inline RestoredSettings restored_settings(const CheckpointHeader& saved, std::uint32_t version) {
  RestoredSettings restored;
  if (version == 1) return restored;
  const bool storage = saved.parameter == "bf16" || saved.parameter == "fp16";
  const auto once = [&](const std::string& name) {
    if (occurrences(saved.settings, name) != 1) malformed(name + " is not saved once");
    for (const auto& [key, value] : saved.settings)
      if (key == name) return value;
    return 0.0;
  };
  for (const auto& [name, value] : saved.settings) {
    const bool known = name == "max_grad_norm" ||
                       (storage && (name == "rounding" || name == "rounding_seed_high" || name == "rounding_seed_low")) ||
                       (version >= 4 && (name == "grad_scale" || name == "ema_decay"));
    if (!known) malformed("unknown optimizer setting '" + name + "'");
  }
  restored.max_grad_norm = once("max_grad_norm");
  if (!(restored.max_grad_norm > 0.0))
    malformed("max_grad_norm = " + std::to_string(restored.max_grad_norm) + " is not > 0");
  // Known from version 4 on; their values are checked as their setters check them (read_saved_state).
  if (occurrences(saved.settings, "grad_scale") > 0) restored.grad_scale = once("grad_scale");
  if (occurrences(saved.settings, "ema_decay") > 0) restored.ema_decay = once("ema_decay");
  if (!storage) return restored;
  const double rounding = once("rounding"), high = once("rounding_seed_high"), low = once("rounding_seed_low");
  if (!(rounding == 0 || rounding == 1 || rounding == 2)) malformed("rounding = " + std::to_string(rounding));
  const auto half = [](double v) { return v >= 0 && v <= 4294967295.0 && v == std::floor(v); };
  if (!half(high) || !half(low)) malformed("the rounding seed's halves are not 32-bit whole numbers");
  restored.storage = {Rounding(int(rounding)), std::uint64_t(high) << 32 | std::uint64_t(low)};
  return restored;
}

}  // namespace detail

}  // namespace multopt
