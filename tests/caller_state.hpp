// A framework's side of the public step (step_tensors.hpp), as tests play it: tensors whose
// parameters, gradients and state live in the caller's memory.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <random>
#include <utility>
#include <vector>

#include "test_support.hpp"

namespace test {

// n values drawn uniformly from [lo, hi), as P.
template <class P>
std::vector<P> filled(std::mt19937& rng, std::size_t n, double lo, double hi) {
  std::vector<P> values;
  for (double v : uniform<double>(rng, n, lo, hi)) values.push_back(P(v));
  return values;
}

// One tensor in the caller's memory, its state made as state_arrays() says, when first needed,
// its state arrays of type T (16-bit state: Eigen::bfloat16 or Eigen::half).
template <class Base, class P, class T = multopt::Arithmetic<P>>
struct CallerTensor {
  using S = multopt::Arithmetic<P>;
  std::vector<P> param, grad;
  std::array<std::vector<T>, Base::array_count> arrays;
  std::vector<S> master;
  long steps = 0;
  multopt::contract::Scalars<Base> scalars = multopt::contract::initial_scalars<Base>();
  unsigned new_arrays = 0;
  std::size_t group = 0;

  static CallerTensor of(std::vector<P> param, std::vector<P> grad, std::size_t group = 0) {
    CallerTensor t;
    t.param = std::move(param);
    t.grad = std::move(grad);
    t.group = group;
    return t;
  }

  multopt::TensorRefs<Base, P> refs(const typename Base::Params& settings, const multopt::StorageMode& storage = {}) {
    multopt::TensorRefs<Base, P> refs;
    for (const multopt::StateArrayInfo& info : multopt::state_arrays<Base, P>(settings, storage)) {
      if (info.index == multopt::master_array) {
        if (master.empty()) master.assign(param.begin(), param.end());
        refs.master = master.data();
        continue;
      }
      auto& array = arrays[std::size_t(info.index)];
      if (array.empty()) {
        array.assign(param.size(), T(info.initial));
        new_arrays |= 1u << info.index;
      }
      refs.state[std::size_t(info.index)] = array.data();
    }
    refs.param = param.data();
    if constexpr (multopt::is_16bit<P>) refs.grad.narrow = grad.data();
    else refs.grad = grad.data();
    refs.size = param.size();
    refs.steps = &steps;
    refs.scalars = scalars.data();
    refs.new_arrays = new_arrays;
    refs.group = group;
    return refs;
  }
};

// A list of such tensors and the step over it, as a framework would hold them.
template <class Opt, class T = typename Opt::Compute>
struct CallerState {
  using Base = typename Opt::BaseType;
  using P = typename Opt::Scalar;
  std::vector<CallerTensor<Base, P, T>> tensors;
  std::vector<typename Opt::Hyper> groups;
  multopt::StepOptions options;
  multopt::StepWork<Base, typename Opt::RuleType, P> work;

  multopt::StepReport step() {
    std::vector<multopt::TensorRefs<Base, P>> refs;
    for (auto& t : tensors) refs.push_back(t.refs(groups[t.group].base, options.storage));
    const multopt::StepReport report = multopt::step_tensors(refs, groups, options, work);
    for (std::size_t k = 0; k < tensors.size(); ++k)
      if (std::find(report.skipped.begin(), report.skipped.end(), k) == report.skipped.end()) tensors[k].new_arrays = 0;
    return report;
  }
};

// New gradients in [-2, 2) for each of the caller's tensors, written in place into `grads` (an
// Optimizer stepping the same tensors holds their addresses).
template <class Caller, class P>
void new_gradients(Caller& caller, std::vector<std::vector<P>>& grads, std::mt19937& rng) {
  for (std::size_t k = 0; k < grads.size(); ++k) {
    const auto values = filled<P>(rng, grads[k].size(), -2.0, 2.0);
    std::copy(values.begin(), values.end(), grads[k].begin());
    caller.tensors[k].grad = grads[k];
  }
}

}  // namespace test
