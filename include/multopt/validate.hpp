// The checks behind every hyperparameter and argument: each failure names the setting and its
// value.
// Comparisons are written so that NaN fails them too.
#pragma once

#include <cstddef>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

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

// Finite too: no hyperparameter of the library has a use for +inf, which turns into NaN (1/(1 + 0·inf)).
inline void require_non_negative(const char* name, double value) {
  if (!(value >= 0.0 && value <= std::numeric_limits<double>::max())) reject(name, value, "finite and >= 0");
}

inline void require_in_unit_interval(const char* name, double value) {
  if (!(value >= 0.0 && value <= 1.0)) reject(name, value, "in [0, 1]");
}

inline void require_in_half_open_unit_interval(const char* name, double value) {
  if (!(value >= 0.0 && value < 1.0)) reject(name, value, "in [0, 1)");
}

}  // namespace multopt
