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

#include "hyper.hpp"
#include "simd.hpp"
#include "step_chunk.hpp"
#include "storage.hpp"
#include "tensor_refs.hpp"

namespace multopt {
namespace detail {

template <class T>
const char* type_name() {
  if constexpr (std::is_same_v<T, Eigen::half>) return "float16";
  else if constexpr (std::is_same_v<T, Eigen::bfloat16>) return "bfloat16";
  else return std::is_same_v<T, float> ? "float" : "double";
}

// Where a step on unit data overflowed: in the parameters (array = -1) or in state array number `array`,
// and the value found there.
struct Overflow {
  bool found = false;
  int array = -1;
  double value = 0.0;
};

// The first value of the step's result beyond half its range, the parameters first, then each
// state array in `arrays` (null where the base does not use it), `width` values each. Half the
// range: one binade of headroom for the rounding of other data of size 1. A 16-bit parameter is
// stored in its own range (fp16's is 65504); its state is float.
template <class P>
Overflow find_overflow(const Arithmetic<P>* param, const Arithmetic<P>* const* arrays, int array_count,
                       std::size_t width) {
  using S = Arithmetic<P>;
  const auto beyond = [](double limit) { return [limit](S x) { return !(std::abs(double(x)) <= limit / 2); }; };
  const S* overflow = std::find_if(param, param + width, beyond(double(Eigen::NumTraits<P>::highest())));
  if (overflow != param + width) return {true, -1, double(*overflow)};
  for (int array = 0; array < array_count; ++array) {
    if (!arrays[array]) continue;
    overflow = std::find_if(arrays[array], arrays[array] + width, beyond(double(std::numeric_limits<S>::max())));
    if (overflow != arrays[array] + width) return {true, array, double(*overflow)};
  }
  return {};
}

// Refuses the hyperparameters `values` of a group (`defaults` are those of a group made new)
// that overflowed step `step` in `where`, a value of type `type`: naming every setting that
// differs from its default, with its value.
[[noreturn]] inline void refuse_overflow_of(std::size_t group, long step, const char* where, double value,
                                            const char* type, const NamedValues& values, const NamedValues& defaults) {
  std::ostringstream message;
  message.precision(17);
  message << "multopt: the hyperparameters of group " << group << " overflow step " << step
          << ": parameters and gradients of size 1 would make " << where << ' ' << value
          << " (beyond half the range of " << type << "); the settings that differ from their defaults:";
  const char* separator = " ";
  for (std::size_t field = 0; field < values.size(); ++field) {
    if (values[field].second == defaults[field].second) continue;
    message << separator << values[field].first << " = " << values[field].second;
    separator = ", ";
  }
  throw std::invalid_argument(message.str());
}

// Settings each valid alone can together make a step overflow (Adam's lr = 1e308 and its bias
// correction 1/(1 − β1) = 10, weight_decay = 1e308 under a square): the coefficients are tried
// on 64 bytes of unit data (θ and g = ±1, the state as new), through the kernel that will step
// (16-bit parameters: on fp32 master weights), before the step changes anything, once per set of
// coefficients, and a result beyond half the range of S is refused (find_overflow,
// refuse_overflow_of). `needs`: the state arrays h's settings use.
template <class Base, class Rule, class P, class Hyper>
void refuse_overflow(const TensorStepArgs<Base, Rule, P>& args, const Hyper& h, const GroupNeeds& needs,
                     std::size_t group, long step, ChunkStep kernel) {
  using S = Arithmetic<P>;
  constexpr std::size_t width = 64 / sizeof(S);  // whole packets of every instruction set
  alignas(64) S param[width], grad[width], state[Base::array_count][width];
  std::array<S*, Base::array_count> arrays{};
  for (std::size_t i = 0; i < width; ++i) {
    param[i] = S(i % 2 ? -1 : 1);
    grad[i] = S(i / 2 % 2 ? -1 : 1);
  }
  for (int array = 0; array < Base::array_count; ++array) {
    if (!needs.uses(std::size_t(array))) continue;
    arrays[std::size_t(array)] = state[array];
    std::fill_n(state[array], width, S(Base::initial_value(h.base, array)));
  }
  TensorStepArgs<Base, Rule, P> unit{};
  unit.size = width;
  unit.arrays = arrays;
  unit.base = args.base;
  unit.rule = args.rule;
  unit.prestep = args.prestep;
  [[maybe_unused]] alignas(64) P narrow[width];
  if constexpr (is_16bit<P>) {
    unit.param = narrow;
    unit.grad.wide = grad;
    unit.master = param;
    unit.rounding = Rounding::master;
  } else {
    unit.param = param;
    unit.grad = grad;
  }
  kernel(&unit, Chunk{0, 0, width}, nullptr);
  const Overflow overflow = find_overflow<P>(param, arrays.data(), Base::array_count, width);
  if (!overflow.found) return;
  const bool in_param = overflow.array < 0;
  refuse_overflow_of(group, step, in_param ? "a parameter" : Base::array_names[overflow.array], overflow.value,
                     in_param ? type_name<P>() : type_name<S>(), h.values(), Hyper().values());
}

}  // namespace detail
}  // namespace multopt
