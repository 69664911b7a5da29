// Hyperparameters named at the call site: `multopt::MAdam<float> opt(arg::lr_in = 1.0,
// arg::lr_out = 1e-3)`. Each keyword is a type of its own, so that a name the optimizer does not
// have fails to compile, and two rates cannot trade places without the code showing it.
#pragma once

namespace multopt {

// One hyperparameter's value, tagged with its name.
template <class Name>
struct Setting {
  double value;
};

template <class Name>
struct Keyword {
  static constexpr const char* name = Name::text;
  constexpr Setting<Name> operator=(double value) const { return {value}; }  // NOLINT: a keyword, not an assignment
};

}  // namespace multopt

// Declares multopt::arg::NAME. A base or rule with a hyperparameter no other file names
// declares its keyword in its own header; the shared ones are below.
#define MULTOPT_KEYWORD(NAME)                                           \
  namespace multopt::arg {                                              \
  struct NAME##_keyword_name {                                          \
    static constexpr const char* text = #NAME;                          \
  };                                                                    \
  inline constexpr Keyword<NAME##_keyword_name> NAME{};                 \
  }

// Every group: the four stages before the base (docs/math.md).
MULTOPT_KEYWORD(weight_decay)
MULTOPT_KEYWORD(decoupled_weight_decay)
MULTOPT_KEYWORD(lr_factor)
MULTOPT_KEYWORD(maximize)
// The rules' rates.
MULTOPT_KEYWORD(lr)
MULTOPT_KEYWORD(lr_in)
MULTOPT_KEYWORD(lr_out)
MULTOPT_KEYWORD(g_mix)
// Names that several bases share.
MULTOPT_KEYWORD(momentum)
MULTOPT_KEYWORD(beta1)
MULTOPT_KEYWORD(beta2)
MULTOPT_KEYWORD(eps)
