// What case_file_fuzzer checks on each input, shared with the tests so that any compiler runs
// it: read_case returns a case or throws std::runtime_error; a case it returns has rows of n
// elements, replays (when small) in double and float, and --emit's output of it reads back as
// the same case, set lines included, with the computed trajectory.
#pragma once

#include <cmath>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "case_file.hpp"

namespace multopt::fuzz {

// Replays are bounded so that one input takes milliseconds.
inline constexpr std::size_t most_replayed_values = 100000;

namespace detail {

// Equal bits, or both NaN (writing a NaN keeps neither its sign nor its payload).
inline bool same(double a, double b) {
  return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof a) == 0;
}

inline bool same(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!same(a[i], b[i])) return false;
  return true;
}

inline bool same(const std::vector<std::vector<double>>& a, const std::vector<std::vector<double>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t t = 0; t < a.size(); ++t)
    if (!same(a[t], b[t])) return false;
  return true;
}

inline bool same_sets(const golden::Case& a, const golden::Case& b) {
  for (std::size_t t = 0; t < a.grads.size(); ++t) {
    const auto &x = golden::sets_before(a, t), &y = golden::sets_before(b, t);
    if (x.size() != y.size()) return false;
    for (std::size_t k = 0; k < x.size(); ++k)
      if (x[k].name != y[k].name || !same(x[k].value, y[k].value)) return false;
  }
  return true;
}

// Replays `c` in S and reads back what write_case makes of it: a problem, or "".
template <class S>
std::string replay_problem(const golden::Case& c) {
  std::vector<std::vector<double>> trajectory;
  try {
    trajectory = golden::replay<S>(c);
  } catch (const std::invalid_argument&) {
    return "";  // make_optimizer refused the base, rule or a setting
  } catch (const std::runtime_error&) {
    return "";  // the optimizer refused a set line, which the error names
  }
  if (trajectory.size() != c.grads.size()) return "the replay has another number of steps";
  golden::max_relative_error(trajectory, c.params);  // for the sanitizers: it reads both in full
  std::stringstream written;
  golden::write_case(written, c, trajectory);
  golden::Case again;
  try {
    again = golden::read_case(written);
  } catch (const std::runtime_error& e) {
    return std::string("write_case wrote a case that read_case refuses: ") + e.what();
  }
  if (again.name != c.name || again.base != c.base || again.rule != c.rule || again.hyper != c.hyper ||
      !same(again.init, c.init) || !same(again.grads, c.grads) || !same(again.params, trajectory) ||
      !same_sets(again, c))
    return "write_case wrote a case that reads back different";
  return "";
}

}  // namespace detail

// "" if the input passes every check, else what failed.
inline std::string case_file_problem(const std::string& bytes) {
  std::istringstream in(bytes);
  golden::Case c;
  try {
    c = golden::read_case(in);
  } catch (const std::runtime_error&) {
    return "";
  }
  const std::size_t n = c.init.size();
  if (c.params.size() != c.grads.size()) return "read_case returned grad and param rows of different counts";
  for (std::size_t t = 0; t < c.grads.size(); ++t) {
    if (c.grads[t].size() != n || c.params[t].size() != n) {
      return "read_case returned a step " + std::to_string(t + 1) + " row of " +
             std::to_string(c.grads[t].size() != n ? c.grads[t].size() : c.params[t].size()) +
             " elements for an init row of " + std::to_string(n);
    }
  }
  if (n > most_replayed_values / (c.grads.size() + 1)) return "";
  const std::string in_double = detail::replay_problem<double>(c);
  return in_double.empty() ? detail::replay_problem<float>(c) : in_double;
}

}  // namespace multopt::fuzz
