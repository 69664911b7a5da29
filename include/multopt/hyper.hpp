// The hyperparameters of one parameter group: the rule's, the base's and the four stages every
// step applies before the base (docs/math.md), as plain structs, with access by name for
// configuration files and schedules.
#pragma once

#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "keywords.hpp"
#include "validate.hpp"

namespace multopt {

// Whether a base declares `static constexpr double default_lr`.
template <class Base, class = void>
struct has_default_lr : std::false_type {};
template <class Base>
struct has_default_lr<Base, std::void_t<decltype(double(Base::default_lr))>> : std::true_type {};

// Names are those of docs/api.md; `g`, the name of the reference package and the golden case
// files, is accepted everywhere for the hybrid rule's g_mix.
constexpr std::string_view canonical_name(std::string_view name) { return name == "g" ? "g_mix" : name; }

template <class Base, class Rule>
struct Hyper {
  typename Rule::Params rule;
  typename Base::Params base;
  double weight_decay = 0.0;            // coupled L2: g ← g + weight_decay·θ
  double decoupled_weight_decay = 0.0;  // θ ← θ·(1 − lr_factor·rate·decoupled_weight_decay)
  double lr_factor = 1.0;               // multiplies lr and lr_out (and so the decoupled decay)
  bool maximize = false;                // g ← −g

  // Constructors rather than an aggregate, so that no field can be set by its position. A base
  // may give the rule's additive `lr` a default of its own (Adadelta's default_lr = 1.0).
  constexpr Hyper() noexcept {
    if constexpr (has_default_lr<Base>::value) {
      Rule::Params::fields(rule, [](std::string_view field, auto& v) {
        if constexpr (std::is_same_v<std::decay_t<decltype(v)>, double>)
          if (field == "lr") v = Base::default_lr;
      });
    }
  }
  constexpr Hyper(const typename Rule::Params& rule_params, const typename Base::Params& base_params) noexcept
      : rule(rule_params), base(base_params) {}
  // By keyword, the others at their defaults: Hyper(arg::lr = 0.1, arg::momentum = 0.9).
  template <class Name, class... Names>
  explicit Hyper(Setting<Name> first, Setting<Names>... more) {
    set(first, more...);
  }
  // The same for any number of keywords, none included.
  template <class... Names>
  static Hyper of(Setting<Names>... settings) {
    Hyper hyper;
    hyper.set(settings...);
    return hyper;
  }

  template <class Self, class Visit>
  static constexpr void fields(Self& h, Visit&& visit) {
    Rule::Params::fields(h.rule, visit);
    Base::Params::fields(h.base, visit);
    visit("weight_decay", h.weight_decay);
    visit("decoupled_weight_decay", h.decoupled_weight_decay);
    visit("lr_factor", h.lr_factor);
    visit("maximize", h.maximize);
  }

  static constexpr bool has(std::string_view name) {
    Hyper h;
    bool found = false;
    fields(h, [&](std::string_view field, auto&) { found = found || field == canonical_name(name); });
    return found;
  }

  void validate() const {
    rule.validate();
    base.validate();
    require_non_negative("weight_decay", weight_decay);
    require_non_negative("decoupled_weight_decay", decoupled_weight_decay);
    require_non_negative("lr_factor", lr_factor);
  }
  // validate(), and every value within the range of S, the type a step computes in.
  template <class S>
  void validate_for() const {
    validate();
    fields(*this, [](const char* name, const auto& value) {
      if (!(std::abs(double(value)) <= double(std::numeric_limits<S>::max())))
        reject(name, double(value), std::is_same_v<S, float> ? "within the range of float" : "finite");
    });
  }

  // What the decoupled decay takes from θ this step: θ ← θ·(1 − decoupled_decay_step()).
  double decoupled_decay_step() const { return lr_factor * Rule::rate(rule) * decoupled_weight_decay; }

  static std::vector<std::string> names() {
    std::vector<std::string> all;
    Hyper h;
    fields(h, [&](const char* name, auto&) { all.emplace_back(name); });
    return all;
  }

  // Booleans read as 0 or 1.
  double get(std::string_view name) const {
    double value = 0.0;
    bool found = false;
    fields(*this, [&](std::string_view field, const auto& v) {
      if (field == canonical_name(name)) { value = double(v); found = true; }
    });
    if (!found) unknown(name);
    return value;
  }

  // Sets one field and validates the whole; on any error *this is left as it was.
  void set(std::string_view name, double value) { set_all({{std::string(name), value}}); }

  // Sets several fields, then validates once: settings that constrain each other (nesterov
  // and momentum) can change together. On any error *this is left as it was.
  void set_all(const std::vector<std::pair<std::string, double>>& settings) {
    Hyper changed = *this;
    for (const auto& [name, value] : settings) changed.assign(name, value);
    changed.validate();
    *this = changed;
  }

  // The same from keywords: set(arg::lr = 0.1, arg::beta2 = 0.99). A keyword the optimizer
  // does not have fails to compile.
  template <class... Names>
  void set(Setting<Names>... settings) {
    (require_known<Names>(), ...);
    set_all({{Names::text, settings.value}...});
  }

  template <class Name>
  static constexpr void require_known() {
    static_assert(has(Name::text), "this optimizer has no hyperparameter of that keyword's name (see Name)");
  }

 private:
  void assign(std::string_view name, double value) {
    bool found = false;
    fields(*this, [&](std::string_view field, auto& v) {
      if (field != canonical_name(name)) return;
      found = true;
      if constexpr (std::is_same_v<std::decay_t<decltype(v)>, bool>) {
        if (value != 0.0 && value != 1.0) reject(std::string(field), value, "0 or 1 (a boolean)");
        v = value == 1.0;
      } else {
        v = value;
      }
    });
    if (!found) unknown(name);
  }

  [[noreturn]] static void unknown(std::string_view name) {
    std::ostringstream message;
    message << "multopt: unknown hyperparameter '" << name << "' for " << Base::name
            << " with the " << Rule::name << " rule; known:";
    for (const auto& known : names()) message << ' ' << known;
    throw std::invalid_argument(message.str());
  }
};

}  // namespace multopt
