// The contract between the step loop and a base or a rule, checked at compile time: an
// Optimizer of a base or rule that lacks a member stops at a static_assert that names it,
// rather than deep inside step.hpp. docs/api.md ("Writing a rule or a base") describes it.
#pragma once

#include <array>
#include <cstddef>
#include <type_traits>
#include <utility>

#include "step.hpp"

namespace multopt {

namespace contract {

template <class...>
using void_t = void;

// Per-tensor scalar state (NAdam's mu_product): a base may declare scalar_count,
// scalar_names[scalar_count] and scalar_initial[scalar_count]; coeffs() then takes the
// tensor's scalars as a fourth argument and advances them. Bases without declare nothing.
template <class Base, class = void>
struct scalar_count_of : std::integral_constant<int, 0> {};
template <class Base>
struct scalar_count_of<Base, void_t<decltype(Base::scalar_count)>>
    : std::integral_constant<int, Base::scalar_count> {};
template <class Base>
inline constexpr int scalar_count = scalar_count_of<Base>::value;

template <class Base>
using Scalars = std::array<double, std::size_t(scalar_count<Base>)>;

template <class Base>
constexpr Scalars<Base> initial_scalars() {
  Scalars<Base> values{};
  if constexpr (scalar_count<Base> > 0)
    for (std::size_t k = 0; k < values.size(); ++k) values[k] = Base::scalar_initial[k];
  return values;
}

// Each member the loop uses, detected one at a time so that a message can name it.
#define MULTOPT_DETECT(NAME, ...)                                 \
  template <class T, class = void>                                \
  struct NAME : std::false_type {};                               \
  template <class T>                                              \
  struct NAME<T, void_t<__VA_ARGS__>> : std::true_type {};

MULTOPT_DETECT(has_name, decltype(static_cast<const char*>(T::name)))
MULTOPT_DETECT(has_params, typename T::Params)
MULTOPT_DETECT(has_params_validate, decltype(std::declval<const typename T::Params&>().validate()))
MULTOPT_DETECT(has_array_count, decltype(int(T::array_count)))
MULTOPT_DETECT(has_array_names, decltype(static_cast<const char*>(T::array_names[0])))
MULTOPT_DETECT(has_uses_array, decltype(bool(T::uses_array(std::declval<const typename T::Params&>(), 0))))
MULTOPT_DETECT(has_initial_value,
               decltype(double(T::initial_value(std::declval<const typename T::Params&>(), 0))))
MULTOPT_DETECT(has_decay_rate, decltype(double(T::decay_rate(std::declval<const typename T::Params&>()))))
MULTOPT_DETECT(has_scalar_names, decltype(static_cast<const char*>(T::scalar_names[0])))
MULTOPT_DETECT(has_scalar_initial, decltype(double(T::scalar_initial[0])))
#undef MULTOPT_DETECT

template <class Base, class S, class = void>
struct has_coeffs_type : std::false_type {};
template <class Base, class S>
struct has_coeffs_type<Base, S, void_t<typename Base::template Coeffs<S>>> : std::true_type {};

template <class Base, class S, class = void>
struct has_scale : std::false_type {};
template <class Base, class S>
struct has_scale<Base, S, void_t<decltype(double(std::declval<typename Base::template Coeffs<S>&>().scale))>>
    : std::true_type {};

// coeffs<S>(params, step, new_state_arrays) returning Coeffs<S>; with scalar state, also (..., scalars&).
template <class Base, class S, class = void>
struct has_coeffs : std::false_type {};
template <class Base, class S>
struct has_coeffs<Base, S, std::enable_if_t<scalar_count<Base> == 0, void_t<decltype(Base::template coeffs<S>(
                               std::declval<const typename Base::Params&>(), 1L, 0u))>>>
    : std::is_same<decltype(Base::template coeffs<S>(std::declval<const typename Base::Params&>(), 1L, 0u)),
                   typename Base::template Coeffs<S>> {};
template <class Base, class S>
struct has_coeffs<Base, S, std::enable_if_t<(scalar_count<Base> > 0), void_t<decltype(Base::template coeffs<S>(
                               std::declval<const typename Base::Params&>(), 1L, 0u,
                               std::declval<Scalars<Base>&>()))>>>
    : std::is_same<decltype(Base::template coeffs<S>(std::declval<const typename Base::Params&>(), 1L, 0u,
                                                     std::declval<Scalars<Base>&>())),
                   typename Base::template Coeffs<S>> {};

// direction(g, arrays, coeffs) returning the packet d.
template <class Base, class S, class = void>
struct has_direction : std::false_type {};
template <class Base, class S>
struct has_direction<Base, S, void_t<decltype(Base::direction(
                                  std::declval<const simd::Vec<S>&>(),
                                  std::declval<const detail::StateAtPacket<S, std::size_t(Base::array_count)>&>(),
                                  std::declval<const typename Base::template Coeffs<S>&>()))>>
    : std::is_same<decltype(Base::direction(std::declval<const simd::Vec<S>&>(),
                                            std::declval<const detail::StateAtPacket<S, std::size_t(Base::array_count)>&>(),
                                            std::declval<const typename Base::template Coeffs<S>&>())),
                   simd::Vec<S>> {};

template <class Rule, class S, class = void>
struct has_rule_coeffs : std::false_type {};
template <class Rule, class S>
struct has_rule_coeffs<Rule, S, void_t<typename Rule::template Coeffs<S>,
                                      decltype(Rule::template coeffs<S>(std::declval<const typename Rule::Params&>(), 1.0))>>
    : std::true_type {};

template <class Rule, class S, class = void>
struct has_apply : std::false_type {};
template <class Rule, class S>
struct has_apply<Rule, S, void_t<decltype(Rule::apply(std::declval<const simd::Vec<S>&>(), std::declval<const simd::Vec<S>&>(),
                                                     std::declval<const typename Rule::template Coeffs<S>&>()))>>
    : std::true_type {};

// The checks, each a static_assert naming what is missing; each asks only what the ones before
// it ensured can be asked. Returns true so that it can sit in a static_assert of its own.
template <class Base, class S>
constexpr bool check_base() {
  static_assert(has_name<Base>::value, "multopt base: needs `static constexpr const char* name`");
  static_assert(has_params<Base>::value, "multopt base: needs a nested `struct Params`");
  if constexpr (has_params<Base>::value) {
    static_assert(has_params_validate<Base>::value, "multopt base: needs `void Params::validate() const`");
    static_assert(has_array_count<Base>::value, "multopt base: needs `static constexpr int array_count`");
    if constexpr (has_array_count<Base>::value) {
      static_assert(Base::array_count >= 1 && Base::array_count <= 32, "multopt base: array_count must be in [1, 32]");
      static_assert(has_array_names<Base>::value,
                    "multopt base: needs `static constexpr const char* array_names[array_count]`");
      static_assert(has_uses_array<Base>::value,
                    "multopt base: needs `static bool uses_array(const Params&, int array)`");
      static_assert(has_initial_value<Base>::value,
                    "multopt base: needs `static double initial_value(const Params&, int array)`");
      if constexpr (scalar_count<Base> > 0) {
        static_assert(has_scalar_names<Base>::value,
                      "multopt base: scalar_count > 0 needs `static constexpr const char* scalar_names[scalar_count]`");
        static_assert(has_scalar_initial<Base>::value,
                      "multopt base: scalar_count > 0 needs `static constexpr double scalar_initial[scalar_count]`");
      }
      static_assert(has_coeffs_type<Base, S>::value, "multopt base: needs `template <class S> struct Coeffs`");
      if constexpr (has_coeffs_type<Base, S>::value) {
        static_assert(has_scale<Base, S>::value, "multopt base: needs a member `double scale` in Coeffs<S>");
        static_assert(has_coeffs<Base, S>::value || scalar_count<Base> > 0,
                      "multopt base: needs `template <class S> static Coeffs<S> coeffs(const Params&, long step, "
                      "unsigned new_state_arrays)`");
        static_assert(has_coeffs<Base, S>::value || scalar_count<Base> == 0,
                      "multopt base: scalar_count > 0 needs `template <class S> static Coeffs<S> coeffs(const "
                      "Params&, long step, unsigned new_state_arrays, std::array<double, scalar_count>& scalars)`");
        static_assert(has_direction<Base, S>::value,
                      "multopt base: needs `template <class V, class Arrays, class S> static V direction(const V& g, "
                      "const Arrays& arrays, const Coeffs<S>&)`");
      }
    }
  }
  return true;
}

template <class Rule, class S>
constexpr bool check_rule() {
  static_assert(has_name<Rule>::value, "multopt rule: needs `static constexpr const char* name`");
  static_assert(has_params<Rule>::value, "multopt rule: needs a nested `struct Params`");
  if constexpr (has_params<Rule>::value) {
    static_assert(has_params_validate<Rule>::value, "multopt rule: needs `void Params::validate() const`");
    static_assert(has_decay_rate<Rule>::value, "multopt rule: needs `static double decay_rate(const Params&)`");
    static_assert(has_rule_coeffs<Rule, S>::value,
                  "multopt rule: needs `template <class S> struct Coeffs` and `template <class S> static Coeffs<S> "
                  "coeffs(const Params&, double scale)`");
    if constexpr (has_rule_coeffs<Rule, S>::value)
      static_assert(has_apply<Rule, S>::value,
                    "multopt rule: needs `template <class V, class S> static V apply(const V& theta, const V& d, "
                    "const Coeffs<S>&)` (and derives from rules::Rule for transform_gradient and supports)");
  }
  return true;
}

}  // namespace contract

namespace detail {

// The base's coefficients of this step; a base with scalar state reads and advances `scalars`.
template <class Base, class S>
typename Base::template Coeffs<S> base_coeffs(const typename Base::Params& p, long step,
                                              unsigned new_state_arrays, contract::Scalars<Base>& scalars) {
  if constexpr (contract::scalar_count<Base> > 0) {
    return Base::template coeffs<S>(p, step, new_state_arrays, scalars);
  } else {
    (void)scalars;
    return Base::template coeffs<S>(p, step, new_state_arrays);
  }
}

}  // namespace detail

}  // namespace multopt
