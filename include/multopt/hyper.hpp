// The hyperparameters of one parameter group: the rule's, the base's and the four stages every
// step applies before the base (docs/math.md), as plain structs, with access by name for
// configuration files and schedules.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
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

// Hyperparameters or settings by name.
using NamedValues = std::vector<std::pair<std::string, double>>;

namespace detail {

// A hyperparameter as the functions by name reach it, whatever the Hyper: those functions are
// compiled once for every base and rule. Const: a field to read.
template <bool Const>
struct FieldRef {
  const char* name;
  std::conditional_t<Const, const double*, double*> number;  // null for a boolean
  std::conditional_t<Const, const bool*, bool*> flag;        // null for a number
  double value() const { return number ? *number : double(*flag); }
};

// The field of that name among `count`, or null.
template <bool Const>
const FieldRef<Const>* find_field(const FieldRef<Const>* fields, std::size_t count, std::string_view name) {
  for (std::size_t k = 0; k < count; ++k)
    if (fields[k].name == canonical_name(name)) return fields + k;
  return nullptr;
}

// Sets it (a boolean from 0 or 1).
inline void assign(const FieldRef<false>& field, double value) {
  if (field.flag) {
    if (value != 0.0 && value != 1.0) reject(field.name, value, "0 or 1 (a boolean)");
    *field.flag = value == 1.0;
  } else {
    *field.number = value;
  }
}

inline NamedValues values_of(const FieldRef<true>* fields, std::size_t count) {
  NamedValues all;
  for (std::size_t k = 0; k < count; ++k) all.emplace_back(fields[k].name, fields[k].value());
  return all;
}

// Every field within ±limit; `requirement` names the range in the message.
inline void require_within(const FieldRef<true>* fields, std::size_t count, double limit, const char* requirement) {
  for (std::size_t k = 0; k < count; ++k)
    if (!(std::abs(fields[k].value()) <= limit)) reject(fields[k].name, fields[k].value(), requirement);
}

[[noreturn]] inline void refuse_unknown_hyperparameter(std::string_view name, const char* base, const char* rule,
                                                       const NamedValues& known) {
  std::ostringstream message;
  message << "multopt: unknown hyperparameter '" << name << "' for " << base << " with the " << rule
          << " rule; known:";
  for (const auto& field : known) message << ' ' << field.first;
  throw std::invalid_argument(message.str());
}

}  // namespace detail

template <class Base, class Rule>
struct Hyper {
  typename Rule::Params rule;
  typename Base::Params base;
  double weight_decay = 0.0;            // coupled L2: g ← g + weight_decay·θ
  double decoupled_weight_decay = 0.0;  // θ ← θ·(1 − lr_factor·decay_rate·decoupled_weight_decay)
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
    require_in_range("weight_decay", weight_decay);
    require_in_range("decoupled_weight_decay", decoupled_weight_decay);
    require_in_range("lr_factor", lr_factor);
  }
  // validate(), and every value within the range of S, the type a step computes in.
  template <class S>
  void validate_for() const {
    validate();
    const auto refs = field_refs(*this);
    detail::require_within(refs.data(), refs.size(), double(std::numeric_limits<S>::max()),
                           std::is_same_v<S, float> ? "within the range of float" : "finite");
  }

  // What the decoupled decay takes from θ this step: θ ← θ·(1 − decoupled_decay_step()).
  double decoupled_decay_step() const { return lr_factor * Rule::decay_rate(rule) * decoupled_weight_decay; }

  // Every field by name, in the order of fields(); booleans as 0 or 1.
  NamedValues values() const {
    const auto refs = field_refs(*this);
    return detail::values_of(refs.data(), refs.size());
  }

  static std::vector<std::string> names() {
    std::vector<std::string> all;
    const Hyper defaults;
    for (const auto& field : field_refs(defaults)) all.emplace_back(field.name);
    return all;
  }

  // Booleans read as 0 or 1.
  double get(std::string_view name) const {
    const auto refs = field_refs(*this);
    const auto* field = detail::find_field(refs.data(), refs.size(), name);
    if (!field) unknown(name);
    return field->value();
  }

  // Sets one field and validates the whole; on any error *this is left as it was.
  void set(std::string_view name, double value) { set_all({{std::string(name), value}}); }

  // Sets several fields, then validates once: settings that constrain each other (nesterov
  // and momentum) can change together. On any error *this is left as it was.
  void set_all(const NamedValues& settings) {
    Hyper changed = *this;
    const auto refs = field_refs(changed);
    for (const auto& [name, value] : settings) {
      const auto* field = detail::find_field(refs.data(), refs.size(), name);
      if (!field) unknown(name);
      detail::assign(*field, value);
    }
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
  static constexpr std::size_t field_count() {
    Hyper h;
    std::size_t count = 0;
    fields(h, [&](const char*, auto&) { ++count; });
    return count;
  }

  // Each field's name and address, in the order of fields(). g++ 12 at -O3 takes the addresses
  // stored here for dangling pointers once this is inlined into a caller whose Hyper is a local
  // (set_all's copy, a temporary): a false positive, silenced for this function alone.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif
  template <class Self>
  static auto field_refs(Self& h) {
    using Ref = detail::FieldRef<std::is_const_v<Self>>;
    std::array<Ref, field_count()> refs{};
    std::size_t k = 0;
    fields(h, [&](const char* name, auto& value) {
      if constexpr (std::is_same_v<std::decay_t<decltype(value)>, bool>) refs[k++] = Ref{name, nullptr, &value};
      else refs[k++] = Ref{name, &value, nullptr};
    });
    return refs;
  }
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic pop
#endif

  [[noreturn]] static void unknown(std::string_view name) {
    const Hyper defaults;
    const auto refs = field_refs(defaults);
    detail::refuse_unknown_hyperparameter(name, Base::name, Rule::name, detail::values_of(refs.data(), refs.size()));
  }
};

}  // namespace multopt
