// Golden case files (format: tests/data/FORMAT.md, versions 1 and 2): reading, replaying
// through multopt::make_optimizer, comparing and writing. Shared by multopt_replay and the tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <istream>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <multopt/multopt.hpp>

namespace multopt::golden {

// A `set NAME VALUE` line (version 2): NAME takes VALUE before the step it is part of.
struct Set {
  std::string name;
  double value;
  int line;  // in the file, for errors found when the case is replayed
};

struct Case {
  std::string name, base, rule;
  Settings hyper;  // in file order
  std::vector<double> init;
  std::vector<std::vector<double>> grads, params;  // one row per step
  std::vector<std::vector<Set>> sets;              // per step, in file order (version 2); may be empty
};

// The set lines of step t + 1 (none where the case has no sets).
inline const std::vector<Set>& sets_before(const Case& c, std::size_t t) {
  static const std::vector<Set> none;
  return t < c.sets.size() ? c.sets[t] : none;
}

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
  bool in_step = false;            // after a step line, before its grad line
  std::vector<Set> sets;           // of the step being read
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
      in_step = true;
    } else if (key == "set") {
      std::string name, value, extra;
      if (!(words >> name >> value) || (words >> extra)) detail::fail(line, "set takes a name and a value");
      if (!in_step) detail::fail(line, "set line outside a step: it goes between a step line and its grad line");
      sets.push_back({name, detail::number(value, line, "set " + name), line});
    } else if (key == "grad") {
      if (c.grads.size() != c.params.size()) detail::fail(line, "two grad lines in one step");
      c.grads.push_back(detail::numbers(words, std::size_t(n), line, key));
      c.sets.push_back(std::move(sets));
      sets.clear();
      in_step = false;
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

// The case with its initial parameters rounded to P (through float), as a 16-bit replay starts.
template <class P>
Case rounded_to(Case c) {
  for (double& x : c.init) x = double(static_cast<float>(P(static_cast<float>(x))));
  return c;
}

// The trajectory that multopt computes for the case's initial parameters, gradients and set
// lines, with parameters of type P. 16-bit parameters start from the init rounded to P, take
// the gradients as fp32 and are stored as `storage` says; the trajectory is then their master
// weights under Rounding::master, the stored values otherwise. float and 16-bit replays store
// their state as `storage` says too. A set line that the optimizer
// refuses throws std::runtime_error naming its line.
template <class P>
std::vector<std::vector<double>> replay(const Case& c, const StorageMode& storage = {}) {
  using Gradient = std::conditional_t<is_16bit<P>, float, P>;
  auto opt = make_optimizer<P>(c.base, c.rule, c.hyper);
  if (is_16bit<P> || storage.state != StateStorage::compute) opt->set_storage(storage);
  std::vector<P> param;
  for (double x : c.init) param.push_back(P(static_cast<Arithmetic<P>>(x)));
  std::vector<Gradient> grad(param.size());
  opt->add_params(param.data(), grad.data(), param.size());
  const bool master = is_16bit<P> && storage.rounding == Rounding::master;
  std::vector<std::vector<double>> trajectory;
  for (std::size_t t = 0; t < c.grads.size(); ++t) {
    for (const Set& set : sets_before(c, t)) {
      try {
        // The gradient-norm clip is the optimizer's, every other setting group 0's.
        if (set.name == "max_grad_norm") opt->set_max_grad_norm(set.value);
        else opt->set(set.name, set.value);
      } catch (const std::invalid_argument& e) {
        detail::fail(set.line, std::string("set ") + set.name + ": " + e.what());
      }
    }
    const auto& g = c.grads[t];
    std::transform(g.begin(), g.end(), grad.begin(), [](double x) { return Gradient(x); });
    opt->step();
    auto& row = trajectory.emplace_back();
    for (std::size_t i = 0; i < param.size(); ++i)
      row.push_back(master && param.size() > 0 ? double(opt->master(0)[i]) : double(static_cast<Arithmetic<P>>(param[i])));
  }
  return trajectory;
}

// max over all steps and elements of |x − ref|, over the largest |ref| of the trajectory (1 if
// all are 0): the error as a share of the parameters' scale, which a parameter near zero does
// not blow up; NaN if any is NaN.
inline double max_error_of_scale(const std::vector<std::vector<double>>& computed,
                                 const std::vector<std::vector<double>>& reference) {
  double scale = 0.0, worst = 0.0;
  for (const auto& row : reference)
    for (double ref : row) scale = std::max(scale, std::abs(ref));
  for (std::size_t t = 0; t < reference.size(); ++t)
    for (std::size_t i = 0; i < reference[t].size(); ++i) {
      const double err = std::abs(computed[t][i] - reference[t][i]);
      if (std::isnan(err)) return err;
      worst = std::max(worst, err);
    }
  return worst / (scale > 0.0 ? scale : 1.0);
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

// Writes the case with `trajectory` as its param lines, 17 significant digits; as version 2
// where it has set lines or a hyperparameter of version 2.
inline void write_case(std::ostream& out, const Case& c, const std::vector<std::vector<double>>& trajectory) {
  char buffer[32];
  auto number = [&](double v) {
    std::snprintf(buffer, sizeof buffer, " %.17g", v);
    return buffer;
  };
  auto row = [&](const char* key, const std::vector<double>& values) {
    out << key;
    for (double v : values) out << number(v);
    out << '\n';
  };
  const bool has_sets = std::any_of(c.sets.begin(), c.sets.end(), [](const auto& sets) { return !sets.empty(); });
  const bool has_v2_hyper = std::any_of(c.hyper.begin(), c.hyper.end(), [](const auto& setting) {
    return setting.first == "lr_factor" || setting.first == "max_grad_norm" || setting.first == "maximize" ||
           setting.first == "decoupled_weight_decay";
  });
  out << "# multopt golden case v" << (has_sets || has_v2_hyper ? 2 : 1) << '\n';
  if (!c.name.empty()) out << "name " << c.name << '\n';  // optional; "name" alone would not read back
  out << "base " << c.base << "\nrule " << c.rule << '\n';
  for (const auto& [name, value] : c.hyper) out << "hyper " << name << ' ' << value << '\n';
  out << "n " << c.init.size() << "\nsteps " << trajectory.size() << '\n';
  row("init", c.init);
  for (std::size_t t = 0; t < trajectory.size(); ++t) {
    out << "step " << t + 1 << '\n';
    for (const Set& set : sets_before(c, t)) out << "set " << set.name << number(set.value) << '\n';
    row("grad", c.grads[t]);
    row("param", trajectory[t]);
  }
}

}  // namespace multopt::golden
