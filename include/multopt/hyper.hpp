// The hyperparameters of one parameter group: the rule's, the base's and the shared weight
// decay, as plain structs, with access by name for configuration files and schedules.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "validate.hpp"

namespace multopt {

template <class Base, class Rule>
struct Hyper {
  typename Rule::Params rule{};
  typename Base::Params base{};
  double weight_decay = 0.0;

  template <class Self, class Visit>
  static void fields(Self& h, Visit&& visit) {
    Rule::Params::fields(h.rule, visit);
    Base::Params::fields(h.base, visit);
    visit("weight_decay", h.weight_decay);
  }

  void validate() const {
    rule.validate();
    base.validate();
    require_non_negative("weight_decay", weight_decay);
  }

  static std::vector<std::string> names() {
    std::vector<std::string> all;
    Hyper h;
    fields(h, [&](const char* name, auto&) { all.emplace_back(name); });
    return all;
  }

  // Booleans read as 0 or 1.
  double get(const std::string& name) const {
    double value = 0.0;
    bool found = false;
    fields(*this, [&](const char* field, const auto& v) {
      if (name == field) { value = double(v); found = true; }
    });
    if (!found) unknown(name);
    return value;
  }

  // Sets one field and validates the whole; on any error *this is left as it was.
  void set(const std::string& name, double value) { set_all({{name, value}}); }

  // Sets several fields, then validates once: settings that constrain each other (nesterov
  // and momentum) can change together. On any error *this is left as it was.
  void set_all(const std::vector<std::pair<std::string, double>>& settings) {
    Hyper changed = *this;
    for (const auto& [name, value] : settings) changed.assign(name, value);
    changed.validate();
    *this = changed;
  }

 private:
  void assign(const std::string& name, double value) {
    bool found = false;
    fields(*this, [&](const char* field, auto& v) {
      if (name != field) return;
      found = true;
      if constexpr (std::is_same_v<std::decay_t<decltype(v)>, bool>) {
        if (value != 0.0 && value != 1.0) reject(name, value, "0 or 1 (a boolean)");
        v = value == 1.0;
      } else {
        v = value;
      }
    });
    if (!found) unknown(name);
  }

  [[noreturn]] static void unknown(const std::string& name) {
    std::ostringstream message;
    message << "multopt: unknown hyperparameter '" << name << "' for " << Base::name
            << " with the " << Rule::name << " rule; known:";
    for (const auto& known : names()) message << ' ' << known;
    throw std::invalid_argument(message.str());
  }
};

}  // namespace multopt
