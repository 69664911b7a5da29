// Golden case files (format: tests/data/FORMAT.md): reading, replaying through
// multopt::make_optimizer, comparing and writing. Shared by multopt_replay and the tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <istream>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <multopt/multopt.hpp>

namespace multopt::golden {

struct Case {
  std::string name, base, rule;
  Settings hyper;  // in file order
  std::vector<double> init;
  std::vector<std::vector<double>> grads, params;  // one row per step
};

namespace detail {

[[noreturn]] inline void fail(int line, const std::string& what) {
  throw std::runtime_error("case file line " + std::to_string(line) + ": " + what);
}

// A number of the record `key`; a word that is not one fails naming the line.
inline double number(const std::string& word, int line, const std::string& key) {
  try {
    return multopt::detail::parse_number(key, word);
  } catch (const std::invalid_argument&) {
    fail(line, key + " has '" + word + "', which is not a number");
  }
}

inline std::vector<double> numbers(std::istringstream& in, std::size_t n, int line, const std::string& key) {
  std::vector<double> values;
  std::string word;
  while (in >> word) values.push_back(number(word, line, key));
  if (values.size() != n) {
    fail(line, key + " has " + std::to_string(values.size()) + " numbers, n is " + std::to_string(n));
  }
  return values;
}

inline long whole_number(std::istringstream& in, int line, const std::string& key) {
  std::string word, extra;
  if (!(in >> word) || (in >> extra)) fail(line, key + " takes one value");
  const double value = number(word, line, key);
  if (!(value >= 0 && value <= 1e9) || value != std::floor(value))
    fail(line, key + " = " + word + " is not a whole number in [0, 1e9]");
  return long(value);
}

}  // namespace detail

inline Case read_case(std::istream& in) {
  Case c;
  long n = -1, steps = -1;
  int n_line = 0, steps_line = 0;  // where each was given
  std::string text;
  for (int line = 1; std::getline(in, text); ++line) {
    if (!text.empty() && text.back() == '\r') text.pop_back();
    std::istringstream words(text);
    std::string key;
    if (!(words >> key) || key[0] == '#') continue;
    if (key == "name" || key == "base" || key == "rule") {
      std::string value, extra;
      if (!(words >> value) || (words >> extra)) detail::fail(line, key + " takes one word");
      (key == "name" ? c.name : key == "base" ? c.base : c.rule) = value;
    } else if (key == "hyper") {
      std::string name, value, extra;
      if (!(words >> name >> value) || (words >> extra)) detail::fail(line, "hyper takes a name and a value");
      c.hyper.emplace_back(name, value);
    } else if (key == "n" || key == "steps") {
      // Once each: every row is checked against the n in force when it is read.
      int& given = key == "n" ? n_line : steps_line;
      if (given != 0) detail::fail(line, key + " is given a second time (line " + std::to_string(given) + " gave it)");
      (key == "n" ? n : steps) = detail::whole_number(words, line, key);
      given = line;
    } else if (n < 0 || steps < 0) {
      detail::fail(line, "'" + key + "' comes before n and steps");
    } else if (key == "init") {
      c.init = detail::numbers(words, std::size_t(n), line, key);
    } else if (key == "step") {
      if (detail::whole_number(words, line, key) != long(c.grads.size()) + 1)
        detail::fail(line, "steps must be numbered 1, 2, ... in order");
      if (c.grads.size() != c.params.size()) detail::fail(line, "step before the previous step's param line");
      if (long(c.grads.size()) == steps) detail::fail(line, "more steps than 'steps'");
    } else if (key == "grad") {
      if (c.grads.size() != c.params.size()) detail::fail(line, "two grad lines in one step");
      c.grads.push_back(detail::numbers(words, std::size_t(n), line, key));
    } else if (key == "param") {
      if (c.grads.size() != c.params.size() + 1) detail::fail(line, "param line without its grad line");
      c.params.push_back(detail::numbers(words, std::size_t(n), line, key));
    } else {
      detail::fail(line, "unknown record '" + key + "'");
    }
  }
  if (c.base.empty() || c.rule.empty()) throw std::runtime_error("case file: base or rule missing");
  if (n < 0 || steps < 0) throw std::runtime_error("case file: n or steps missing");
  if (c.init.size() != std::size_t(n)) throw std::runtime_error("case file: init line missing");
  if (c.grads.size() != c.params.size()) throw std::runtime_error("case file: the last grad line has no param line");
  if (long(c.params.size()) != steps) {
    throw std::runtime_error("case file: " + std::to_string(c.params.size()) + " complete steps, 'steps' says " +
                             std::to_string(steps));
  }
  return c;
}

// The trajectory that multopt computes for the case's initial parameters and gradients, in S.
template <class S>
std::vector<std::vector<double>> replay(const Case& c) {
  auto opt = make_optimizer<S>(c.base, c.rule, c.hyper);
  std::vector<S> param(c.init.begin(), c.init.end()), grad(param.size());
  opt->add_params(param.data(), grad.data(), param.size());
  std::vector<std::vector<double>> trajectory;
  for (const auto& g : c.grads) {
    std::copy(g.begin(), g.end(), grad.begin());
    opt->step();
    trajectory.emplace_back(param.begin(), param.end());
  }
  return trajectory;
}

// max over all steps and elements of |x − ref| / max(|ref|, 1e-3); NaN if any is NaN, so that
// a NaN anywhere fails every tolerance.
inline double max_relative_error(const std::vector<std::vector<double>>& computed,
                                 const std::vector<std::vector<double>>& reference) {
  double worst = 0.0;
  for (std::size_t t = 0; t < reference.size(); ++t) {
    for (std::size_t i = 0; i < reference[t].size(); ++i) {
      const double ref = reference[t][i];
      const double err = std::abs(computed[t][i] - ref) / std::max(std::abs(ref), 1e-3);
      if (std::isnan(err)) return err;
      worst = std::max(worst, err);
    }
  }
  return worst;
}

// Writes the case with `trajectory` as its param lines, 17 significant digits.
inline void write_case(std::ostream& out, const Case& c, const std::vector<std::vector<double>>& trajectory) {
  auto row = [&](const char* key, const std::vector<double>& values) {
    out << key;
    char buffer[32];
    for (double v : values) {
      std::snprintf(buffer, sizeof buffer, " %.17g", v);
      out << buffer;
    }
    out << '\n';
  };
  out << "# multopt golden case v1\n";
  if (!c.name.empty()) out << "name " << c.name << '\n';  // optional; "name" alone would not read back
  out << "base " << c.base << "\nrule " << c.rule << '\n';
  for (const auto& [name, value] : c.hyper) out << "hyper " << name << ' ' << value << '\n';
  out << "n " << c.init.size() << "\nsteps " << trajectory.size() << '\n';
  row("init", c.init);
  for (std::size_t t = 0; t < trajectory.size(); ++t) {
    out << "step " << t + 1 << '\n';
    row("grad", c.grads[t]);
    row("param", trajectory[t]);
  }
}

}  // namespace multopt::golden
