// Helpers shared by the tests: typed optimizers, and every combination made by name (the typed
// suites that need no static type loop over those: make_optimizer is compiled once, outside).
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <multopt/multopt.hpp>

#include "stateful_hyper.hpp"

// Defined where AddressSanitizer is compiled in (GCC says so by __SANITIZE_ADDRESS__, Clang by
// __has_feature).
#if defined(__SANITIZE_ADDRESS__)
#define MULTOPT_TEST_UNDER_ASAN
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MULTOPT_TEST_UNDER_ASAN
#endif
#endif

namespace test {

// Calls f(tag) for each T, in order; decltype(tag)::type is T.
template <class... T, class F>
void for_each_type(F&& f) {
  multopt::for_each_type(multopt::TypeList<T...>{}, f);
}

template <class Base, class S>
using RulesOn = std::tuple<multopt::Optimizer<Base, multopt::rules::Additive, S>,
                           multopt::Optimizer<Base, multopt::rules::Multiplicative, S>,
                           multopt::Optimizer<Base, multopt::rules::Hybrid, S>,
                           multopt::Optimizer<Base, multopt::rules::Exponential, S>,
                           multopt::Optimizer<Base, multopt::rules::NonNegativeClip, S>,
                           multopt::Optimizer<Base, multopt::rules::NonNegativeReflect, S>>;

// The paper's four rules on Base (the bases of version 2 are tested with these).
template <class Base, class S>
using MainRulesOn = std::tuple<multopt::Optimizer<Base, multopt::rules::Additive, S>,
                               multopt::Optimizer<Base, multopt::rules::Multiplicative, S>,
                               multopt::Optimizer<Base, multopt::rules::Hybrid, S>,
                               multopt::Optimizer<Base, multopt::rules::Exponential, S>>;

// Whether Base is one of the paper's four bases (the others came with version 2).
template <class Base>
inline constexpr bool paper_base = std::is_same_v<Base, multopt::bases::Sgd> || std::is_same_v<Base, multopt::bases::Adam> ||
                                   std::is_same_v<Base, multopt::bases::Adagrad> ||
                                   std::is_same_v<Base, multopt::bases::Rmsprop>;

// From the library's list of bases (AllBases): the bases beyond the paper's four with the four
// main rules, and every combination (the paper's bases with every rule, tanh momentum, then the
// others with the four main rules; the non-negative rules on them are the same code as on the
// first four), in S.
template <class S, class... Bases>
auto new_base_optimizers(multopt::TypeList<Bases...>)
    -> decltype(std::tuple_cat(std::declval<std::conditional_t<paper_base<Bases>, std::tuple<>, MainRulesOn<Bases, S>>>()...));
template <class S, class... Bases>
auto every_optimizer(multopt::TypeList<Bases...>)
    -> decltype(std::tuple_cat(std::declval<std::conditional_t<paper_base<Bases>, RulesOn<Bases, S>, std::tuple<>>>()...,
                               std::declval<std::tuple<multopt::MSGDTanhMomentum<S>>>(),
                               std::declval<std::conditional_t<paper_base<Bases>, std::tuple<>, MainRulesOn<Bases, S>>>()...));

template <class S>
using NewBaseOptimizers = decltype(new_base_optimizers<S>(multopt::AllBases{}));
template <class S>
using EveryOptimizer = decltype(every_optimizer<S>(multopt::AllBases{}));

inline bool is_word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.'; }

// Whether `word` occurs in `text` as a whole word: "lr" is not found in "lr_out", "1" not in "beta1".
inline bool contains_word(const std::string& text, const std::string& word) {
  for (auto at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) {
    const std::size_t end = at + word.size();
    if ((at == 0 || !is_word_char(text[at - 1])) && (end == text.size() || !is_word_char(text[end])))
      return true;
  }
  return false;
}

// Matches an exception whose message names every given word (a setting, its bad value, ...).
class MessageNames : public Catch::MatcherBase<std::exception> {
 public:
  explicit MessageNames(std::vector<std::string> words) : words_(std::move(words)) {}
  bool match(const std::exception& e) const override {
    for (const auto& word : words_)
      if (!contains_word(e.what(), word)) return false;
    return true;
  }
  std::string describe() const override {
    std::string text = "has a message that names";
    for (const auto& word : words_) text += " '" + word + "'";
    return text;
  }

 private:
  std::vector<std::string> words_;
};

inline MessageNames names(std::vector<std::string> words) { return MessageNames(std::move(words)); }

// How a message prints a value: the test's values are all short in decimal.
inline std::string text_of(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value < 0 ? "-inf" : "inf";
  std::ostringstream out;
  out << value;
  return out.str();
}

// Values the validation rejects for the setting `name` (of the base `base`: momentum, RMSprop's
// alpha, Lion's betas and Adadelta's rho are in [0, 1], other betas in [0, 1)).
inline std::vector<double> invalid_values(const std::string& name, bool boolean, const std::string& base = "") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  if (boolean) return {2, 0.5, -1, nan};
  if (name == "rho" || name == "alpha" || name == "momentum" ||
      (base == "lion" && (name == "beta1" || name == "beta2")))
    return {-0.5, 1.5, inf, nan};
  if (name == "beta1" || name == "beta2") return {-0.5, 1, 1.5, inf, nan};
  if (name == "g_mix") return {-0.5, 1.5, inf, nan};
  if (name == "dampening") return {};  // docs/math.md bounds it nowhere; NaN: its own test
  return {-0.5, -2, -inf, nan};           // every other setting: >= 0
}

template <class H>
bool is_boolean(const std::string& name) {
  H h;
  bool boolean = false;
  H::fields(h, [&](const char* field, auto& v) {
    if (name == field) boolean = std::is_same_v<std::decay_t<decltype(v)>, bool>;
  });
  return boolean;
}

// h with one field set, bypassing validation (how a caller fills the plain structs).
template <class H>
H with_field(H h, const std::string& name, double value) {
  H::fields(h, [&](const char* field, auto& v) {
    if (name == field) v = static_cast<std::decay_t<decltype(v)>>(value);
  });
  return h;
}

// Every field of a group's hyperparameters, read by name.
template <class Opt>
std::vector<double> hyper_values(const Opt& opt, std::size_t group = 0) {
  std::vector<double> values;
  for (const auto& name : Opt::Hyper::names()) values.push_back(opt.get(name, group));
  return values;
}

// The name of a setting in case files and multopt::Settings.
inline std::string case_file_name(const std::string& name) { return name == "g_mix" ? "g" : name; }

template <class A, class B>
bool same_bits(const A& a, const B& b) {
  static_assert(std::is_same_v<typename A::value_type, typename B::value_type>);
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof a[0]) == 0);
}

template <class S>
std::vector<S> uniform(std::mt19937& rng, std::size_t n, double lo, double hi) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<S> values(n);
  for (auto& v : values) v = S(dist(rng));
  return values;
}

// A tensor's state array `array`, copied; empty while the tensor has none.
template <class Opt>
std::vector<typename Opt::Scalar> state_copy(const Opt& opt, std::size_t tensor, int array) {
  const auto* data = opt.state(tensor, array);
  return data ? std::vector<typename Opt::Scalar>(data, data + opt.size(tensor))
              : std::vector<typename Opt::Scalar>();
}

template <class Opt>
Opt make(const typename Opt::Hyper& h) {
  return Opt(h);
}

// A base and a rule by name, as make_optimizer takes them.
using Combination = std::pair<std::string, std::string>;

// Thread settings that thread even the smallest step: `threads` threads over chunks of `chunk`
// elements.
inline multopt::ThreadSettings threaded(int threads, std::size_t chunk = multopt::ThreadSettings().chunk) {
  return multopt::ThreadSettings{threads, 0, chunk};
}

// Calls f(base, rule) for every base × rule the runtime makes: each of AllRules on each base it
// is defined for; decltype(base)::type is the base.
template <class F>
void for_each_combination(F&& f) {
  multopt::for_each_type(multopt::AllBases{}, [&](auto base) {
    using Base = typename decltype(base)::type;
    multopt::for_each_type(multopt::AllRules{}, [&](auto rule) {
      if constexpr (decltype(rule)::type::template supports<Base>) f(base, rule);
    });
  });
}

// Their names. A test that loops over these, made by name, compiles no optimizer of its own
// (multopt_make_optimizer holds them).
inline std::vector<Combination> every_combination() {
  std::vector<Combination> combinations;
  for_each_combination([&](auto base, auto rule) {
    combinations.emplace_back(decltype(base)::type::name, decltype(rule)::type::name);
  });
  return combinations;
}

// Every base and every rule at least once, in few combinations: each base with a rule not yet
// taken while there is one, then whatever is left.
inline std::vector<Combination> covering_combinations() {
  std::vector<Combination> chosen;
  std::set<std::string> bases, rules;
  const auto take = [&](const Combination& c) {
    chosen.push_back(c);
    bases.insert(c.first);
    rules.insert(c.second);
  };
  const std::vector<Combination> all = every_combination();
  for (const Combination& c : all)
    if (!bases.count(c.first) && !rules.count(c.second)) take(c);
  for (const Combination& c : all)
    if (!bases.count(c.first) || !rules.count(c.second)) take(c);
  return chosen;
}

// Whether the combination's hyperparameter `name` is a boolean.
inline bool is_boolean(const Combination& c, const std::string& name) {
  bool boolean = false;
  for_each_combination([&](auto base, auto rule) {
    using Base = typename decltype(base)::type;
    using Rule = typename decltype(rule)::type;
    if (c.first == Base::name && c.second == Rule::name) boolean = is_boolean<multopt::Hyper<Base, Rule>>(name);
  });
  return boolean;
}

inline std::string describe(const Combination& c) { return c.first + " with the " + c.second + " rule"; }

template <class P>
using Made = std::unique_ptr<multopt::AnyOptimizer<P>>;

// A new group with group 0's hyperparameters and `settings` applied, in a typed optimizer or an
// AnyOptimizer; returns its index.
template <class Opt>
std::size_t add_group_with(Opt& opt, const multopt::NamedValues& settings) {
  auto hyper = opt.hyper(0);
  hyper.set_all(settings);
  return opt.add_group(hyper);
}
template <class P>
std::size_t add_group_with(multopt::AnyOptimizer<P>& opt, const multopt::NamedValues& settings) {
  return opt.add_group(settings);
}

template <class P>
Made<P> make_named(const Combination& c) {
  return multopt::make_optimizer<P>(c.first, c.second);
}

// The combination with stateful_settings: every state array in use, every rule term acting.
template <class P>
Made<P> make_stateful(const Combination& c, double rate = 1.0) {
  auto opt = make_named<P>(c);
  opt->set_all(stateful_settings(opt->hyperparameter_names(), rate));
  return opt;
}

// The per-tensor scalars among an optimizer's state_names() (NAdam's mu_product), from its base.
template <class Base>
std::vector<std::string> scalar_state_names_of() {
  if constexpr (multopt::contract::scalar_count<Base> > 0)
    return {std::begin(Base::scalar_names), std::end(Base::scalar_names)};
  return {};
}
template <class Opt>
std::vector<std::string> scalar_state_names(const Opt&) {
  return scalar_state_names_of<typename Opt::BaseType>();
}
template <class P>
std::vector<std::string> scalar_state_names(const multopt::AnyOptimizer<P>& opt) {
  std::vector<std::string> names;
  multopt::for_each_type(multopt::AllBases{}, [&](auto base) {
    using Base = typename decltype(base)::type;
    if (opt.base_name() == std::string(Base::name)) names = scalar_state_names_of<Base>();
  });
  return names;
}

// Everything a tensor of a typed optimizer or an AnyOptimizer holds, copied: its state arrays in
// the order of state_names() (empty where it holds none), its scalar states, for 16-bit
// parameters its master weights, and its moving average. Equal when all are equal bit for bit.
template <class Opt>
struct TensorState {
  using C = typename Opt::Compute;
  std::vector<std::vector<C>> arrays;
  std::vector<double> scalars;
  std::vector<C> master;
  std::vector<C> ema;

  TensorState(const Opt& opt, std::size_t tensor) {
    const auto scalar_names = scalar_state_names(opt);
    const std::size_t size = opt.size(tensor);
    for (const auto& name : opt.state_names()) {
      if (std::find(scalar_names.begin(), scalar_names.end(), name) != scalar_names.end()) {
        scalars.push_back(opt.scalar_state(tensor, name));
      } else {
        const C* data = opt.state(tensor, name);
        arrays.push_back(data ? std::vector<C>(data, data + size) : std::vector<C>());
      }
    }
    if (const C* data = opt.master(tensor)) master.assign(data, data + size);
    if (const C* data = opt.ema(tensor)) ema.assign(data, data + size);
  }

  // Whether the tensor holds no state array yet.
  bool holds_no_array() const {
    return std::all_of(arrays.begin(), arrays.end(), [](const auto& array) { return array.empty(); });
  }

  friend bool operator==(const TensorState& a, const TensorState& b) {
    if (a.arrays.size() != b.arrays.size()) return false;
    for (std::size_t k = 0; k < a.arrays.size(); ++k)
      if (!same_bits(a.arrays[k], b.arrays[k])) return false;
    return same_bits(a.scalars, b.scalars) && same_bits(a.master, b.master) && same_bits(a.ema, b.ema);
  }
  friend bool operator!=(const TensorState& a, const TensorState& b) { return !(a == b); }
};

template <class Opt>
TensorState<Opt> tensor_state(const Opt& opt, std::size_t tensor) {
  return TensorState<Opt>(opt, tensor);
}

// Every tensor's TensorState, in order.
template <class Opt>
std::vector<TensorState<Opt>> tensor_states(const Opt& opt) {
  std::vector<TensorState<Opt>> states;
  for (std::size_t t = 0; t < opt.tensor_count(); ++t) states.emplace_back(opt, t);
  return states;
}

// A checkpoint of `opt` (no state arrays) whose header `change` altered, with right checksums.
template <class Opt, class Change>
std::string with_header(const Opt& opt, Change change) {
  namespace detail = multopt::detail;
  auto header = detail::describe(opt, {});
  change(header);
  const detail::Bytes body = detail::encode(header);
  detail::Bytes preamble(std::begin(detail::checkpoint_magic), std::end(detail::checkpoint_magic));
  detail::put(preamble, detail::checkpoint_version);
  detail::put<std::uint64_t>(preamble, body.size());
  std::ostringstream out;
  detail::ChecksummedWriter writer(out);
  writer.write(preamble);
  writer.write(body);
  writer.write_checksum();
  writer.write_checksum();
  return out.str();
}

}  // namespace test
