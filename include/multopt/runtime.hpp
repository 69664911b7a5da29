// Optimizers chosen at run time by name ("adam", "hybrid", ...), for frameworks that read
// their configuration from files, and the settings vocabulary of REFERENCE.md.
#pragma once

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "optimizer.hpp"

namespace multopt {

template <class... T>
struct TypeList {};

// Calls f(tag) for each T in order, where decltype(tag)::type is T.
template <class... T, class F>
void for_each_type(TypeList<T...>, F&& f) {
  (f(std::common_type<T>{}), ...);
}

template <class S>
class AnyOptimizer {
 public:
  virtual ~AnyOptimizer() = default;
  virtual const char* base_name() const = 0;
  virtual const char* rule_name() const = 0;
  virtual std::size_t add_params(S* param, const S* grad, std::size_t size, std::size_t group = 0) = 0;
  // A new group whose hyperparameters are group 0's with `settings` applied (all validated
  // before the group is made); returns its index.
  virtual std::size_t add_group(const std::vector<std::pair<std::string, double>>& settings = {}) = 0;
  virtual std::size_t group_count() const = 0;
  virtual void step() = 0;
  virtual void set(const std::string& name, double value, std::size_t group = 0) = 0;
  virtual void set_all(const std::vector<std::pair<std::string, double>>& settings,
                       std::size_t group = 0) = 0;
  virtual double get(const std::string& name, std::size_t group = 0) const = 0;
  virtual std::vector<std::string> hyperparameter_names() const = 0;
  virtual long step_count(std::size_t tensor) const = 0;
  virtual void set_parallel(const Parallel& parallel) = 0;
  virtual NonFinitePolicy non_finite_policy() const = 0;
  virtual void set_non_finite_policy(NonFinitePolicy policy) = 0;
  virtual const std::vector<std::size_t>& skipped_tensors() const = 0;
};

template <class Opt>
class ErasedOptimizer final : public AnyOptimizer<typename Opt::Scalar> {
  using S = typename Opt::Scalar;

 public:
  const char* base_name() const override { return Opt::BaseType::name; }
  const char* rule_name() const override { return Opt::RuleType::name; }
  std::size_t add_params(S* param, const S* grad, std::size_t size, std::size_t group) override {
    return opt_.add_params(param, grad, size, group);
  }
  std::size_t add_group(const std::vector<std::pair<std::string, double>>& settings) override {
    auto hyper = opt_.hyper(0);
    hyper.set_all(settings);
    return opt_.add_group(hyper);
  }
  std::size_t group_count() const override { return opt_.group_count(); }
  void step() override { opt_.step(); }
  void set(const std::string& name, double value, std::size_t group) override { opt_.set(name, value, group); }
  void set_all(const std::vector<std::pair<std::string, double>>& settings, std::size_t group) override {
    auto hyper = opt_.hyper(group);
    hyper.set_all(settings);
    opt_.set_hyper(hyper, group);
  }
  double get(const std::string& name, std::size_t group) const override { return opt_.get(name, group); }
  std::vector<std::string> hyperparameter_names() const override { return Opt::Hyper::names(); }
  long step_count(std::size_t tensor) const override { return opt_.step_count(tensor); }
  void set_parallel(const Parallel& parallel) override { opt_.set_parallel(parallel); }
  NonFinitePolicy non_finite_policy() const override { return opt_.non_finite_policy(); }
  void set_non_finite_policy(NonFinitePolicy policy) override { opt_.set_non_finite_policy(policy); }
  const std::vector<std::size_t>& skipped_tensors() const override { return opt_.skipped_tensors(); }

 private:
  Opt opt_;
};

namespace detail {

template <class... T>
std::string joined_names(TypeList<T...>) {
  std::string all;
  ((all += (all.empty() ? "" : ", ") + std::string(T::name)), ...);
  return all;
}

template <class S, class Base, class... Rules>
std::unique_ptr<AnyOptimizer<S>> make_with_base(const std::string& rule, TypeList<Rules...> rules) {
  std::unique_ptr<AnyOptimizer<S>> made;
  auto try_rule = [&](auto tag) {
    using Rule = typename decltype(tag)::type;
    if (made || rule != Rule::name) return;
    if constexpr (Rule::template supports<Base>) {
      made = std::make_unique<ErasedOptimizer<Optimizer<Base, Rule, S>>>();
    } else {
      throw std::invalid_argument("multopt: the " + rule + " rule is not defined for the " +
                                  Base::name + " base");
    }
  };
  for_each_type(rules, try_rule);
  if (!made) {
    throw std::invalid_argument("multopt: unknown update rule '" + rule + "'; known: " +
                                joined_names(rules));
  }
  return made;
}

inline double parse_number(const std::string& name, const std::string& text) {
  errno = 0;
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno == ERANGE)
    throw std::invalid_argument("multopt: " + name + " = '" + text + "' is not a number");
  return value;
}

}  // namespace detail

// An optimizer of the named base and rule with every hyperparameter at its default.
template <class S, class... Bases, class... Rules>
std::unique_ptr<AnyOptimizer<S>> make_optimizer_from(TypeList<Bases...> bases, TypeList<Rules...> rules,
                                                     const std::string& base, const std::string& rule) {
  std::unique_ptr<AnyOptimizer<S>> made;
  auto try_base = [&](auto tag) {
    using Base = typename decltype(tag)::type;
    if (!made && base == Base::name) made = detail::make_with_base<S, Base>(rule, rules);
  };
  for_each_type(bases, try_base);
  if (!made) {
    throw std::invalid_argument("multopt: unknown base optimizer '" + base + "'; known: " +
                                detail::joined_names(bases));
  }
  return made;
}

// Settings as REFERENCE.md and the golden case files write them: every value a number
// (booleans 0/1) except `momentum_type none|tanh`, and the hybrid's mix weight named `g`.
using Settings = std::vector<std::pair<std::string, std::string>>;

template <class S, class BaseList, class RuleList>
std::unique_ptr<AnyOptimizer<S>> make_optimizer_from(BaseList bases, RuleList rules, const std::string& base,
                                                     std::string rule, const Settings& settings) {
  std::vector<std::pair<std::string, double>> numeric;
  for (const auto& [name, text] : settings) {
    if (name == "momentum_type") {
      if (text == "tanh" && rule == "multiplicative" && base == "sgd") {
        rule = "multiplicative_tanh_momentum";
      } else if (text == "tanh") {
        throw std::invalid_argument("multopt: momentum_type = 'tanh' is defined only for the "
                                    "multiplicative rule on sgd, not for the " + rule + " rule on " + base);
      } else if (text != "none") {
        throw std::invalid_argument("multopt: momentum_type = '" + text +
                                    "' is unknown; known: none, tanh");
      }
      continue;
    }
    numeric.emplace_back(name == "g" ? "g_mix" : name, detail::parse_number(name, text));
  }
  auto made = make_optimizer_from<S>(bases, rules, base, rule);
  made->set_all(numeric);
  return made;
}

}  // namespace multopt
