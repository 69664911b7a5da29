// multopt: any base optimizer with any update rule, over the caller's memory.
// A new base is its header plus, here, its #include, its entry in AllBases and its four aliases;
// a new rule its header, its #include and its entry in AllRules (CONTRIBUTING.md).
#pragma once

#include <stdexcept>
#include <string>

#include "any_optimizer.hpp"
#include "bases/adadelta.hpp"
#include "bases/adagrad.hpp"
#include "bases/adam.hpp"
#include "bases/adamax.hpp"
#include "bases/lion.hpp"
#include "bases/nadam.hpp"
#include "bases/radam.hpp"
#include "bases/rmsprop.hpp"
#include "bases/sgd.hpp"
#include "bases/sparse_adam.hpp"
#include "checkpoint.hpp"
#include "keywords.hpp"
#include "lr_schedules.hpp"
#include "named_step.hpp"
#include "optimizer.hpp"
#include "rules/additive.hpp"
#include "rules/exponential.hpp"
#include "rules/hybrid.hpp"
#include "rules/multiplicative.hpp"
#include "rules/nonnegative_clip.hpp"
#include "rules/nonnegative_reflect.hpp"
#include "rules/tanh_momentum.hpp"
#include "runtime.hpp"
#include "schedules.hpp"

namespace multopt {

using AllBases = TypeList<bases::Sgd, bases::Adam, bases::Adagrad, bases::Rmsprop, bases::Adamax, bases::Nadam,
                          bases::Radam, bases::Adadelta, bases::Lion, bases::SparseAdam>;
using AllRules = TypeList<rules::Additive, rules::Multiplicative, rules::Hybrid, rules::Exponential,
                          rules::TanhMomentum, rules::NonNegativeClip, rules::NonNegativeReflect>;

// Chooses base and rule by name; see runtime.hpp for the names and Settings.
template <class P>
std::unique_ptr<AnyOptimizer<P>> make_optimizer(const std::string& base, const std::string& rule,
                                                const Settings& settings = {}) {
  return make_optimizer_from<P>(AllBases{}, AllRules{}, base, rule, settings);
}

// The public step (step_tensors) of the named base and rule, for adapters: see named_step.hpp.
template <class P>
std::unique_ptr<NamedStep<P>> make_named_step(const std::string& base, const std::string& rule) {
  return make_named_step_from<P>(AllBases{}, AllRules{}, base, rule);
}

// The paper's names: no prefix additive, M multiplicative, H hybrid, E exponential. Each is a
// base's direction under a rule's update, both stated at the top of their headers: MAdam is
// bases/adam.hpp under rules/multiplicative.hpp.
template <class P> using SGD = Optimizer<bases::Sgd, rules::Additive, P>;
template <class P> using MSGD = Optimizer<bases::Sgd, rules::Multiplicative, P>;
template <class P> using HSGD = Optimizer<bases::Sgd, rules::Hybrid, P>;
template <class P> using ESGD = Optimizer<bases::Sgd, rules::Exponential, P>;
template <class P> using MSGDTanhMomentum = Optimizer<bases::Sgd, rules::TanhMomentum, P>;
template <class P> using Adam = Optimizer<bases::Adam, rules::Additive, P>;
template <class P> using MAdam = Optimizer<bases::Adam, rules::Multiplicative, P>;
template <class P> using HAdam = Optimizer<bases::Adam, rules::Hybrid, P>;
template <class P> using EAdam = Optimizer<bases::Adam, rules::Exponential, P>;
template <class P> using Adagrad = Optimizer<bases::Adagrad, rules::Additive, P>;
template <class P> using MAdagrad = Optimizer<bases::Adagrad, rules::Multiplicative, P>;
template <class P> using HAdagrad = Optimizer<bases::Adagrad, rules::Hybrid, P>;
template <class P> using EAdagrad = Optimizer<bases::Adagrad, rules::Exponential, P>;
template <class P> using RMSprop = Optimizer<bases::Rmsprop, rules::Additive, P>;
template <class P> using MRMSprop = Optimizer<bases::Rmsprop, rules::Multiplicative, P>;
template <class P> using HRMSprop = Optimizer<bases::Rmsprop, rules::Hybrid, P>;
template <class P> using ERMSprop = Optimizer<bases::Rmsprop, rules::Exponential, P>;
template <class P> using Adamax = Optimizer<bases::Adamax, rules::Additive, P>;
template <class P> using MAdamax = Optimizer<bases::Adamax, rules::Multiplicative, P>;
template <class P> using HAdamax = Optimizer<bases::Adamax, rules::Hybrid, P>;
template <class P> using EAdamax = Optimizer<bases::Adamax, rules::Exponential, P>;
template <class P> using NAdam = Optimizer<bases::Nadam, rules::Additive, P>;
template <class P> using MNAdam = Optimizer<bases::Nadam, rules::Multiplicative, P>;
template <class P> using HNAdam = Optimizer<bases::Nadam, rules::Hybrid, P>;
template <class P> using ENAdam = Optimizer<bases::Nadam, rules::Exponential, P>;
template <class P> using RAdam = Optimizer<bases::Radam, rules::Additive, P>;
template <class P> using MRAdam = Optimizer<bases::Radam, rules::Multiplicative, P>;
template <class P> using HRAdam = Optimizer<bases::Radam, rules::Hybrid, P>;
template <class P> using ERAdam = Optimizer<bases::Radam, rules::Exponential, P>;
template <class P> using Adadelta = Optimizer<bases::Adadelta, rules::Additive, P>;
template <class P> using MAdadelta = Optimizer<bases::Adadelta, rules::Multiplicative, P>;
template <class P> using HAdadelta = Optimizer<bases::Adadelta, rules::Hybrid, P>;
template <class P> using EAdadelta = Optimizer<bases::Adadelta, rules::Exponential, P>;
template <class P> using Lion = Optimizer<bases::Lion, rules::Additive, P>;
template <class P> using MLion = Optimizer<bases::Lion, rules::Multiplicative, P>;
template <class P> using HLion = Optimizer<bases::Lion, rules::Hybrid, P>;
template <class P> using ELion = Optimizer<bases::Lion, rules::Exponential, P>;
template <class P> using SparseAdam = Optimizer<bases::SparseAdam, rules::Additive, P>;
template <class P> using MSparseAdam = Optimizer<bases::SparseAdam, rules::Multiplicative, P>;
template <class P> using HSparseAdam = Optimizer<bases::SparseAdam, rules::Hybrid, P>;
template <class P> using ESparseAdam = Optimizer<bases::SparseAdam, rules::Exponential, P>;

// The rules whose optimizers have the aliases above: the rule's alias_prefix before the base's alias.
using AliasedRules = TypeList<rules::Additive, rules::Multiplicative, rules::Hybrid, rules::Exponential>;

// The alias above of the named base and rule, as reports name optimizers: ("adam", "hybrid") is
// "HAdam". Throws std::invalid_argument for a pair that has none.
inline std::string alias_name(const std::string& base, const std::string& rule) {
  const char* stem = nullptr;
  const char* prefix = nullptr;
  for_each_type(AllBases{}, [&](auto tag) {
    if (base == decltype(tag)::type::name) stem = decltype(tag)::type::alias;
  });
  for_each_type(AliasedRules{}, [&](auto tag) {
    if (rule == decltype(tag)::type::name) prefix = decltype(tag)::type::alias_prefix;
  });
  if (stem == nullptr || prefix == nullptr)
    throw std::invalid_argument("multopt: no alias names the " + rule + " rule on the " + base + " base");
  return std::string(prefix) + stem;
}

}  // namespace multopt

// make_optimizer<P> compiles every base × rule combination: about a minute of CPU per parameter
// type; make_named_step<P> the step of each (about half a minute). A program that calls one from
// several files can compile it once per type (docs/integration.md, "Compile time"): define
// MULTOPT_EXTERN_MAKE_OPTIMIZER (MULTOPT_EXTERN_MAKE_NAMED_STEP) for every file, and in one file
// per parameter type write MULTOPT_INSTANTIATE_MAKE_OPTIMIZER(float)
// (MULTOPT_INSTANTIATE_MAKE_NAMED_STEP(float)) at global scope.
#define MULTOPT_INSTANTIATE_MAKE_OPTIMIZER(P)                                        \
  template std::unique_ptr<::multopt::AnyOptimizer<P>> multopt::make_optimizer<P>( \
      const std::string&, const std::string&, const ::multopt::Settings&);
#define MULTOPT_INSTANTIATE_MAKE_NAMED_STEP(P)                                   \
  template std::unique_ptr<::multopt::NamedStep<P>> multopt::make_named_step<P>( \
      const std::string&, const std::string&);
// The four parameter types' instances of one of the two, declared extern.
#define MULTOPT_EXTERN_INSTANCES(INSTANTIATE)                                               \
  extern INSTANTIATE(float) extern INSTANTIATE(double) extern INSTANTIATE(Eigen::bfloat16) \
      extern INSTANTIATE(Eigen::half)
#ifdef MULTOPT_EXTERN_MAKE_OPTIMIZER
MULTOPT_EXTERN_INSTANCES(MULTOPT_INSTANTIATE_MAKE_OPTIMIZER)
#endif
#ifdef MULTOPT_EXTERN_MAKE_NAMED_STEP
MULTOPT_EXTERN_INSTANCES(MULTOPT_INSTANTIATE_MAKE_NAMED_STEP)
#endif
#undef MULTOPT_EXTERN_INSTANCES
