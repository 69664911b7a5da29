// Optimizers chosen at run time by name ("adam", "hybrid", ...), for frameworks that read
// their configuration from files, and the settings vocabulary they are configured with.
#pragma once

#include <charconv>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "any_optimizer.hpp"

namespace multopt {

template <class... T>
struct TypeList {};

// Calls f(tag) for each T in order, where decltype(tag)::type is T.
template <class... T, class F>
void for_each_type(TypeList<T...>, F&& f) {
  (f(std::common_type<T>{}), ...);
}

namespace detail {

template <class... T>
std::string joined_names(TypeList<T...>) {
  std::string all;
  ((all += (all.empty() ? "" : ", ") + std::string(T::name)), ...);
  return all;
}

// Calls f(base_tag, rule_tag) for the base and the rule of these names (decltype(tag)::type is
// each); refuses an unknown name, and a rule that is not defined on the base.
template <class... Bases, class... Rules, class F>
void with_combination(TypeList<Bases...> bases, TypeList<Rules...> rules, const std::string& base,
                      const std::string& rule, F&& f) {
  bool base_found = false, rule_found = false;
  for_each_type(bases, [&](auto base_tag) {
    using Base = typename decltype(base_tag)::type;
    if (base_found || base != Base::name) return;
    base_found = true;
    for_each_type(rules, [&](auto rule_tag) {
      using Rule = typename decltype(rule_tag)::type;
      if (rule_found || rule != Rule::name) return;
      rule_found = true;
      if constexpr (Rule::template supports<Base>)
        f(base_tag, rule_tag);
      else
        throw std::invalid_argument("multopt: the " + rule + " rule is not defined for the " + base + " base");
    });
  });
  if (!base_found)
    throw std::invalid_argument("multopt: unknown base optimizer '" + base + "'; known: " + joined_names(bases));
  if (!rule_found)
    throw std::invalid_argument("multopt: unknown update rule '" + rule + "'; known: " + joined_names(rules));
}

// A setting's text as a message quotes it: cut where it is long.
inline std::string quoted(const std::string& text) {
  constexpr std::size_t most = 40;
  return "'" + (text.size() <= most ? text : text.substr(0, most) + "...' (" + std::to_string(text.size()) +
                " characters)") + (text.size() <= most ? "'" : "");
}

// A decimal floating-point number, "inf" or "nan", with nothing around it, read
// the same under every locale. Values beyond double's range are refused as such; subnormals are
// numbers.
inline double parse_number(const std::string& name, const std::string& text) {
  double value = 0.0;
  const char* const end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (error == std::errc::result_out_of_range)
    throw std::invalid_argument("multopt: " + name + " = " + quoted(text) + " is beyond the range of double");
  if (error != std::errc() || stop != end || text.empty())
    throw std::invalid_argument("multopt: " + name + " = " + quoted(text) + " is not a number");
  return value;
}

// The one of `values` whose name (name_of) is `text`, the value of setting `setting`; refused,
// naming the known ones, where none is.
template <class E, std::size_t N, class NameOf>
E named_value(const std::string& setting, const std::string& text, const E (&values)[N], NameOf name_of) {
  std::string known;
  for (const E value : values) {
    if (text == name_of(value)) return value;
    known += (known.empty() ? "" : ", ") + std::string(name_of(value));
  }
  throw std::invalid_argument("multopt: " + setting + " = " + quoted(text) + " is unknown; known: " + known);
}

// Sets `storage` from a setting "rounding" (master, nearest or stochastic), "rounding_seed" (a
// whole number below 2^64) or "state_storage" (compute, bfloat16 or float16); false for any
// other name.
inline bool set_storage_setting(StorageMode& storage, const std::string& name, const std::string& text) {
  if (name == "rounding") {
    const Rounding modes[] = {Rounding::master, Rounding::nearest, Rounding::stochastic};
    storage.rounding = named_value(name, text, modes, rounding_name);
    return true;
  }
  if (name == "state_storage") {
    const StateStorage kinds[] = {StateStorage::compute, StateStorage::bfloat16, StateStorage::float16};
    storage.state = named_value(name, text, kinds, state_storage_name);
    return true;
  }
  if (name == "rounding_seed") {
    const auto [stop, error] = std::from_chars(text.data(), text.data() + text.size(), storage.seed);
    if (error != std::errc() || stop != text.data() + text.size() || text.empty())
      throw std::invalid_argument("multopt: rounding_seed = " + quoted(text) + " is not a whole number in [0, 2^64)");
    return true;
  }
  return false;
}

}  // namespace detail

// Settings as text, as configuration and golden case files write them: every hyperparameter
// of the group by its name (booleans 0/1; `g` is g_mix), and the optimizer's own:
// `max_grad_norm` (clipping), `momentum_type none|tanh` (tanh momentum is a rule of its own),
// `ema_decay` (the weights' moving average; absent: none), `grad_scale` (loss scaling) and,
// for 16-bit parameters, `rounding master|nearest|stochastic` and `rounding_seed` (a whole
// number below 2^64), and `state_storage compute|bfloat16|float16`, for the storage mode
// (storage.hpp).
using Settings = std::vector<std::pair<std::string, std::string>>;

// The storage mode these settings, rounding, rounding_seed and state_storage alone, give.
inline StorageMode storage_mode(const Settings& settings) {
  StorageMode storage;
  for (const auto& [name, text] : settings)
    if (!detail::set_storage_setting(storage, name, text))
      throw std::invalid_argument("multopt: '" + name +
                                  "' is no storage setting; they are rounding, rounding_seed and state_storage");
  return storage;
}

// An optimizer of the named base and rule with every hyperparameter at its default.
template <class S, class... Bases, class... Rules>
std::unique_ptr<AnyOptimizer<S>> make_optimizer_from(TypeList<Bases...> bases, TypeList<Rules...> rules,
                                                     const std::string& base, const std::string& rule) {
  std::unique_ptr<AnyOptimizer<S>> made;
  detail::with_combination(bases, rules, base, rule, [&](auto base_tag, auto rule_tag) {
    using Opt = Optimizer<typename decltype(base_tag)::type, typename decltype(rule_tag)::type, S>;
    made = std::make_unique<ErasedOptimizer<Opt>>();
  });
  return made;
}

template <class S, class BaseList, class RuleList>
std::unique_ptr<AnyOptimizer<S>> make_optimizer_from(BaseList bases, RuleList rules, const std::string& base,
                                                     std::string rule, const Settings& settings) {
  NamedValues numeric;
  double max_grad_norm = std::numeric_limits<double>::infinity(), grad_scale = 1.0;
  std::optional<double> ema_decay;
  StorageMode storage;
  bool storage_set = false;
  for (const auto& [name, text] : settings) {
    if (name == "momentum_type") {
      if (text == "tanh" && rule == "multiplicative" && base == "sgd") {
        rule = "multiplicative_tanh_momentum";
      } else if (text == "tanh") {
        throw std::invalid_argument("multopt: momentum_type = 'tanh' is defined only for the "
                                    "multiplicative rule on sgd, not for the " + rule + " rule on " + base);
      } else if (text != "none") {
        throw std::invalid_argument("multopt: momentum_type = " + detail::quoted(text) +
                                    " is unknown; known: none, tanh");
      }
    } else if (name == "max_grad_norm") {
      max_grad_norm = detail::parse_number(name, text);
    } else if (name == "ema_decay") {
      ema_decay = detail::parse_number(name, text);
    } else if (name == "grad_scale") {
      grad_scale = detail::parse_number(name, text);
    } else if (detail::set_storage_setting(storage, name, text)) {
      storage_set = true;
    } else {
      numeric.emplace_back(name, detail::parse_number(name, text));
    }
  }
  auto made = make_optimizer_from<S>(bases, rules, base, rule);
  made->set_all(numeric);
  made->set_max_grad_norm(max_grad_norm);
  made->set_ema_decay(ema_decay);
  made->set_grad_scale(grad_scale);
  if (storage_set) made->set_storage(storage);
  return made;
}

}  // namespace multopt
