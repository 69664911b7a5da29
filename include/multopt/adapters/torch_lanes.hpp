// A torch step's lanes (its parameters by storage type) and their preparation: torch_step.hpp runs them.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <numeric>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "../multopt.hpp"
#include "torch_state.hpp"
#include "torch_types.hpp"

namespace multopt::adapters::detail {

// The parameters of one storage type P, with what the step reads of each.
template <class P>
struct Lane {
  using Type = P;
  using S = Arithmetic<P>;
  std::unique_ptr<NamedStep<P>> step;
  StorageMode storage;                              // the call's, as far as it concerns P
  std::vector<std::vector<StateArrayInfo>> arrays;  // per group: what its settings need
  std::vector<std::string> scalar_names;
  std::vector<double> initial_scalars;
  std::vector<std::size_t> members;  // indices into the call's parameters
  std::vector<StatePointer<S>> state_pointers;  // array_count() per member
  std::vector<NamedTensorRefs<P>> refs;

  // Empties the lists of the last call, keeping their room (and the step, of the same base and
  // rule).
  void begin_call() {
    arrays.clear();
    members.clear();
    state_pointers.clear();
    refs.clear();
  }
};

// Of a call's storage mode, what concerns parameters of type P: all of it for 16-bit ones, the
// state's storage for float ones, none for double ones (a call refuses them 16-bit state).
template <class P>
StorageMode lane_storage(const StorageMode& storage) {
  if constexpr (is_16bit<P>) return storage;
  else if constexpr (std::is_same_v<P, float>) return {Rounding::master, 0, storage.state};
  else return {};
}

// A state array's pointer, of the array's dtype.
template <class S>
StatePointer<S> state_pointer(const Worked& array) {
  if constexpr (std::is_same_v<S, float>) {
    const c10::ScalarType dtype = array.work().scalar_type();
    if (dtype == at::kBFloat16) return array.data<Eigen::bfloat16>();
    if (dtype == at::kHalf) return array.data<Eigen::half>();
  }
  return array.data<S>();
}

template <class P>
NamedTensorRefs<P> refs_of(PreparedParam& prepared, std::size_t group) {
  using S = Arithmetic<P>;
  NamedTensorRefs<P> refs;
  refs.param = prepared.param.data<P>();
  refs.size = std::size_t(prepared.param.work().numel()) * (prepared.param.work().is_complex() ? 2 : 1);
  if constexpr (is_16bit<P>) {
    if (prepared.grad.scalar_type() == at::kFloat) refs.grad.wide = prepared.grad.data_ptr<float>();
    else refs.grad.narrow = data_as<P>(prepared.grad);
  } else {
    refs.grad = data_as<P>(prepared.grad);
  }
  if (prepared.master.defined()) refs.master = prepared.master.data<S>();
  if (prepared.ema.defined()) refs.ema = prepared.ema.data<S>();
  refs.new_ema = prepared.new_ema;
  if (prepared.rows.defined())
    refs.rows = {prepared.rows.data_ptr<std::int64_t>(), std::size_t(prepared.rows.numel()), prepared.row_width};
  refs.steps = &prepared.steps;
  refs.scalars = prepared.scalars.data();
  refs.new_arrays = prepared.new_arrays;
  refs.group = group;
  return refs;
}

// For each parameter, the place of its first listing in `params` (its own unless listed before),
// into `first`; `order` is room for the sort.
inline void first_places(const std::vector<TorchParamStep>& params, std::vector<std::size_t>& order,
                         std::vector<std::size_t>& first) {
  order.resize(params.size());
  first.resize(params.size());
  std::iota(order.begin(), order.end(), std::size_t(0));
  const auto impl = [&](std::size_t k) { return params[k].param.unsafeGetTensorImpl(); };
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return impl(a) < impl(b); });
  for (std::size_t i = 0; i < order.size(); ++i)
    first[order[i]] = i > 0 && impl(order[i]) == impl(order[i - 1]) ? first[order[i - 1]] : order[i];
}

using Lanes = std::tuple<Lane<float>, Lane<double>, Lane<Eigen::bfloat16>, Lane<Eigen::half>>;

// Checks each parameter and its state, each in the lane of its storage type; with `stepping`,
// its gradient too, and completes its state (prepare).
inline void prepare_all(const std::string& base, const std::string& rule, const StepOptions& options,
                        const std::vector<NamedValues>& groups, std::vector<TorchParamStep>& params, bool stepping,
                        Lanes& lanes, std::vector<PreparedParam>& prepared) {
  std::apply([](auto&... lane) { (lane.begin_call(), ...); }, lanes);
  prepared.resize(params.size());
  for (std::size_t k = 0; k < params.size(); ++k) {
    TorchParamStep& p = params[k];
    p.updates.clear();
    if (p.group >= groups.size()) refuse(p, "is of a group the call does not have");
    if (!p.param.device().is_cpu()) refuse(p, "is on " + p.param.device().str() + "; multopt steps CPU tensors");
    if (p.param.layout() != at::kStrided) refuse(p, "is not a dense tensor");
    with_storage_type(real_dtype(p.param.scalar_type()), [&](auto tag) {
      using P = typename decltype(tag)::type;
      auto& lane = std::get<Lane<P>>(lanes);
      if (!lane.step) {
        lane.step = make_named_step<P>(base, rule);
        lane.scalar_names = lane.step->scalar_names();
        lane.initial_scalars = lane.step->initial_scalars();
      }
      if (lane.arrays.empty()) {
        lane.storage = lane_storage<P>(options.storage);
        for (const NamedValues& settings : groups)
          lane.arrays.push_back(lane.step->state_arrays(settings, lane.storage, options.ema_decay.has_value()));
      }
      if (options.storage.state != StateStorage::compute && (std::is_same_v<P, double> || p.param.is_complex()))
        refuse(p, std::string("is ") + c10::toString(p.param.scalar_type()) + ", and state_storage = " +
                      state_storage_name(options.storage.state) +
                      " is for real parameters computed in float (float32, bfloat16, float16)");
      prepared[k].release();
      if (stepping) read_gradient(p, base, groups[p.group], options, prepared[k]);
      prepare(p, lane.arrays[p.group], lane.step->array_count(), lane.scalar_names, lane.initial_scalars, stepping,
              prepared[k]);
      lane.members.push_back(k);
    });
  }
}

}  // namespace multopt::adapters::detail
