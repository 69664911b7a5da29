// The check that a step's coefficients cannot overflow, made before the step changes anything.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "simd.hpp"
#include "step.hpp"
#include "storage.hpp"

namespace multopt {
namespace detail {

template <class T>
const char* type_name() {
  if constexpr (std::is_same_v<T, Eigen::half>) return "float16";
  else if constexpr (std::is_same_v<T, Eigen::bfloat16>) return "bfloat16";
  else return std::is_same_v<T, float> ? "float" : "double";
}

// Settings each valid alone can together make a step overflow (Adam's lr = 1e308 and its bias
// correction 1/(1 − β1) = 10, weight_decay = 1e308 under a square): the coefficients are tried
// on a packet of unit data (θ and g = ±1, the state as new) before the step changes anything,
// once per set of coefficients, and a result beyond half the range of S is refused, naming
// every setting of the group that differs from its default, with its value.
template <class Base, class Rule, class P, class Hyper>
void refuse_overflow(const TensorStepArgs<Base, Rule, P>& args, const Hyper& h, std::size_t group, long step) {
  using S = Arithmetic<P>;
  constexpr std::size_t width = simd::Vec<S>::size;
  const TensorStepArgs<Base, Rule, S> coeffs{nullptr, nullptr, width, {}, args.base, args.rule, args.prestep};
  alignas(64) S param[width], grad[width], state[Base::slot_count][width];
  std::array<S*, Base::slot_count> slots{};
  for (std::size_t i = 0; i < width; ++i) {
    param[i] = S(i % 2 ? -1 : 1);
    grad[i] = S(i / 2 % 2 ? -1 : 1);
  }
  for (int slot = 0; slot < Base::slot_count; ++slot) {
    if (!Base::uses_slot(h.base, slot)) continue;
    slots[std::size_t(slot)] = state[slot];
    std::fill_n(state[slot], width, S(Base::initial_value(h.base, slot)));
  }
  detail::step_packets(coeffs, param, grad, slots, 0, width);
  // Half the range: one binade of headroom for the rounding of other data of size 1. A 16-bit
  // parameter is stored in its own range (fp16's is 65504); its state is float.
  const auto beyond = [](double limit) { return [limit](S x) { return !(std::abs(double(x)) <= limit / 2); }; };
  const auto param_too_large = beyond(double(Eigen::NumTraits<P>::highest()));
  const auto state_too_large = beyond(double(std::numeric_limits<S>::max()));
  const S* overflow = std::find_if(param, param + width, param_too_large);
  const char* const in_param = "a parameter";
  const char* where = in_param;
  for (int slot = 0; slot < Base::slot_count && overflow == param + width; ++slot) {
    if (!slots[std::size_t(slot)]) continue;
    overflow = std::find_if(state[slot], state[slot] + width, state_too_large);
    where = Base::slot_names[slot];
    if (overflow == state[slot] + width) overflow = param + width;
  }
  if (overflow == param + width) return;
  const Hyper default_hyper;
  std::vector<double> defaults;
  Hyper::fields(default_hyper, [&](const char*, const auto& value) { defaults.push_back(double(value)); });
  std::ostringstream message;
  message.precision(17);
  message << "multopt: the hyperparameters of group " << group << " overflow step " << step
          << ": parameters and gradients of size 1 would make " << where << ' ' << double(*overflow)
          << " (beyond half the range of " << (where == in_param ? type_name<P>() : type_name<S>())
          << "); the settings that differ from their defaults:";
  std::size_t field = 0;
  const char* separator = " ";
  Hyper::fields(h, [&](const char* name, const auto& value) {
    if (double(value) == defaults[field++]) return;
    message << separator << name << " = " << double(value);
    separator = ", ";
  });
  throw std::invalid_argument(message.str());
}

}  // namespace detail
}  // namespace multopt
