// What every update rule inherits unless it says otherwise.
#pragma once

namespace multopt::rules {

struct Rule {
  // The gradient the base optimizer sees; a rule may transform it first (tanh momentum).
  template <class V, class C>
  static V transform_gradient(const V& g, const C& /*coeffs*/) { return g; }

  // Whether the rule is defined on top of Base.
  template <class Base>
  static constexpr bool supports = true;
};

}  // namespace multopt::rules
