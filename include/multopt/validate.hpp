// The checks behind every hyperparameter and argument: each failure names the setting and its
// value.
// Comparisons are written so that NaN fails them too.
#pragma once

#include <cstddef>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace multopt {

[[noreturn]] inline void reject(const std::string& name, double value, const char* requirement) {
  std::ostringstream message;
  message.precision(17);
  message << "multopt: " << name << " = " << value << " is invalid: it must be " << requirement;
  throw std::invalid_argument(message.str());
}

// reject() for a long, shown exactly: as a double, one beyond 2^53 would be rounded.
[[noreturn]] inline void reject_long(const std::string& name, long value, const std::string& requirement) {
  throw std::invalid_argument("multopt: " + name + " = " + std::to_string(value) + " is invalid: it must be " +
                              requirement);
}

// A buffer of `size` elements that the caller passes as `name`: null only when it is empty.
inline void require_buffer(const char* name, const void* pointer, std::size_t size) {
  if (size > 0 && pointer == nullptr) throw std::invalid_argument(std::string("multopt: ") + name + " is a null pointer");
}

// A tensor's parameters and gradients, as add_params takes them.
inline void require_tensor_buffers(const void* param, const void* grad, std::size_t size) {
  require_buffer("param", param, size);
  require_buffer("grad", grad, size);
}

// An index into `count` groups, tensors, ... (`what`, singular): out of range names both.
inline std::size_t checked_index(const char* what, std::size_t index, std::size_t count) {
  if (index >= count) {
    throw std::out_of_range(std::string("multopt: ") + what + " " + std::to_string(index) + " does not exist (" +
                            std::to_string(count) + " " + what + "s)");
  }
  return index;
}

inline void require_number(const char* name, double value) {
  if (value != value) reject(name, value, "a number");
}

// The values a setting may take: low <= value, and value <= high (high_closed) or value < high.
struct Range {
  double low;
  double high;
  bool high_closed;
  const char* requirement;  // how a refusal words it

  constexpr bool contains(double value) const {  // false for NaN
    return value >= low && (high_closed ? value <= high : value < high);
  }
};

// non_negative is finite too: no hyperparameter of the library has a use for +inf, which turns
// into NaN (1/(1 + 0·inf)).
inline constexpr Range non_negative{0.0, std::numeric_limits<double>::max(), true, "finite and >= 0"};
inline constexpr Range unit_interval{0.0, 1.0, true, "in [0, 1]"};
inline constexpr Range half_open_unit_interval{0.0, 1.0, false, "in [0, 1)"};

inline void require_in(const char* name, double value, const Range& range) {
  if (!range.contains(value)) reject(name, value, range.requirement);
}

inline void require_non_negative(const char* name, double value) { require_in(name, value, non_negative); }
inline void require_in_unit_interval(const char* name, double value) { require_in(name, value, unit_interval); }

struct SettingRange {
  std::string_view name;
  Range range;
};

// Each setting's range, by its name in docs/api.md: the one place it is declared. The bases',
// the rules' and Hyper's validate() check their settings against it (require_in_range), and the
// Python module multopt.torch checks torch.optim's arguments against it, in this order, with
// torch.optim's messages (_multopt.setting_ranges()).
inline constexpr SettingRange setting_ranges[] = {
    {"lr", non_negative},
    {"lr_in", non_negative},
    {"lr_out", non_negative},
    {"eps", non_negative},
    {"weight_decay", non_negative},
    {"momentum", unit_interval},  // torch.optim takes any momentum >= 0; above 1 the buffer grows as momentum^t
    {"alpha", unit_interval},     // RMSprop's: above 1 the mean square α·q + (1 − α)·g² turns negative
    {"lr_decay", non_negative},
    {"initial_accumulator_value", non_negative},
    {"momentum_decay", non_negative},
    {"beta1", half_open_unit_interval},  // Adam's and the other moment bases' (Lion's own: [0, 1])
    {"beta2", half_open_unit_interval},
    {"g_mix", unit_interval},
    {"rho", unit_interval},
    {"decoupled_weight_decay", non_negative},
    {"lr_factor", non_negative},
    {"ema_decay", half_open_unit_interval},  // StepOptions' weight EMA (checked in tensor_refs.hpp)
    {"g0", unit_interval},                   // ExponentialMixSchedule's
};

// The range setting_ranges declares for `name`; a name it lacks is a mistake of the library's.
constexpr const Range& range_of(std::string_view name) {
  for (const SettingRange& setting : setting_ranges)
    if (setting.name == name) return setting.range;
  throw std::logic_error("multopt: validate.hpp's setting_ranges declares no range for this setting");
}

// The setting `name` within its range of setting_ranges.
inline void require_in_range(const char* name, double value) { require_in(name, value, range_of(name)); }

}  // namespace multopt
