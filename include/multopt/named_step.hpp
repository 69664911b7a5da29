// step_tensors (step_tensors.hpp) for a base and a rule chosen by name at run time, with settings
// by name: what an adapter uses that takes both from a framework's optimizer (the PyTorch module,
// TorchOptimizer). make_named_step<P>(base, rule) is in multopt.hpp, beside the list of bases.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "any_optimizer.hpp"
#include "hyper.hpp"
#include "runtime.hpp"
#include "step_tensors.hpp"
#include "tensor_refs.hpp"

namespace multopt {

// TensorRefs with the base's state arrays as a pointer to array_count() of them.
template <class P>
struct NamedTensorRefs {
  using S = Arithmetic<P>;
  P* param = nullptr;
  GradientPointer<P> grad{};
  std::size_t size = 0;
  // array_count() arrays, in the order of Base::Array; null where the settings use none
  const StatePointer<S>* state = nullptr;
  S* master = nullptr;
  S* ema = nullptr;  // TensorRefs::ema and new_ema
  bool new_ema = false;
  long* steps = nullptr;
  double* scalars = nullptr;
  unsigned new_arrays = 0;
  std::size_t group = 0;
  RowIndices rows{};  // a gradient given as rows (TensorRefs::rows)
};

// One call's step of one base × rule over parameters of type P, in the two phases of StepWork.
// An object serves one call at a time; an adapter makes one per call, and so holds nothing
// between calls.
template <class P>
class NamedStep {
 public:
  virtual ~NamedStep() = default;
  virtual int array_count() const = 0;
  virtual std::vector<std::string> scalar_names() const = 0;
  virtual std::vector<double> initial_scalars() const = 0;
  // The arrays a tensor needs under a group's settings (with `ema` a moving average of the
  // weights); the settings are checked (an unknown name or an invalid value is refused).
  virtual std::vector<StateArrayInfo> state_arrays(const NamedValues& settings, const StorageMode& storage,
                                                   bool ema) const = 0;
  // Checks everything and plans the step (StepWork::plan): throws, and changes nothing, or
  // leaves a step that commit() makes.
  virtual void plan(const std::vector<NamedTensorRefs<P>>& tensors, const std::vector<NamedValues>& groups,
                    const StepOptions& options) = 0;
  virtual const StepReport& commit() noexcept = 0;
};

template <class Base, class Rule, class P>
class NamedStepOf final : public NamedStep<P> {
 public:
  using Hyper = multopt::Hyper<Base, Rule>;
  using S = Arithmetic<P>;

  int array_count() const override { return Base::array_count; }
  std::vector<std::string> scalar_names() const override {
    if constexpr (contract::scalar_count<Base> > 0) return {std::begin(Base::scalar_names), std::end(Base::scalar_names)};
    return {};
  }
  std::vector<double> initial_scalars() const override {
    const auto initial = contract::initial_scalars<Base>();
    return {initial.begin(), initial.end()};
  }
  std::vector<StateArrayInfo> state_arrays(const NamedValues& settings, const StorageMode& storage,
                                           bool ema) const override {
    return multopt::state_arrays<Base, P>(hyper_of(settings).base, storage, ema);
  }

  void plan(const std::vector<NamedTensorRefs<P>>& tensors, const std::vector<NamedValues>& groups,
            const StepOptions& options) override {
    groups_.clear();
    for (const NamedValues& settings : groups) groups_.push_back(hyper_of(settings));
    refs_.clear();
    for (const NamedTensorRefs<P>& t : tensors) {
      TensorRefs<Base, P> refs;
      refs.param = t.param;
      refs.grad = t.grad;
      refs.size = t.size;
      if (t.state) std::copy(t.state, t.state + Base::array_count, refs.state.begin());
      refs.master = t.master;
      refs.ema = t.ema;
      refs.new_ema = t.new_ema;
      refs.steps = t.steps;
      refs.scalars = t.scalars;
      refs.new_arrays = t.new_arrays;
      refs.group = t.group;
      refs.rows = t.rows;
      refs_.push_back(refs);
    }
    work_.plan(refs_.data(), refs_.size(), groups_.data(), groups_.size(), options);
  }
  const StepReport& commit() noexcept override { return work_.commit(refs_.data(), refs_.size()); }

 private:
  // The settings by name over the defaults, checked against the range of S.
  static Hyper hyper_of(const NamedValues& settings) {
    Hyper hyper;
    hyper.set_all(settings);
    hyper.template validate_for<S>();
    return hyper;
  }

  std::vector<Hyper> groups_;
  std::vector<TensorRefs<Base, P>> refs_;
  StepWork<Base, Rule, P> work_;
};

// The step of the named base and rule (names as make_optimizer's) over these lists of them.
template <class P, class BaseList, class RuleList>
std::unique_ptr<NamedStep<P>> make_named_step_from(BaseList bases, RuleList rules, const std::string& base,
                                                   const std::string& rule) {
  std::unique_ptr<NamedStep<P>> made;
  detail::with_combination(bases, rules, base, rule, [&](auto base_tag, auto rule_tag) {
    made = std::make_unique<NamedStepOf<typename decltype(base_tag)::type, typename decltype(rule_tag)::type, P>>();
  });
  return made;
}

}  // namespace multopt
