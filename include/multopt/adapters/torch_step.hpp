// One step of torch parameters whose optimizer state torch holds (a torch.optim optimizer's
// opt.state[p], torch::optim's per-parameter state): the state by torch.optim's names is turned
// into step_tensors' arguments and back (docs/pytorch.md). Nothing is kept between calls. The
// Python module and TorchOptimizer are built on it; only includers need libtorch.
#pragma once

#include <ATen/ATen.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "../multopt.hpp"
#include "torch_types.hpp"

namespace multopt::adapters {

// A parameter's state entries by name, as torch holds them: a few, so a flat list.
class TorchState {
 public:
  TorchState() = default;
  template <class Entries>
  explicit TorchState(const Entries& entries) {
    for (const auto& [name, value] : entries) set(name, value);
  }
  // The entry of that name, or null where there is none (an undefined tensor is none).
  const at::Tensor* find(std::string_view name) const {
    for (const auto& [held, value] : entries_)
      if (held == name) return value.defined() ? &value : nullptr;
    return nullptr;
  }
  void set(std::string_view name, at::Tensor value) {
    for (auto& [held, old] : entries_)
      if (held == name) return void(old = std::move(value));
    entries_.emplace_back(std::string(name), std::move(value));
  }
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }

 private:
  std::vector<std::pair<std::string, at::Tensor>> entries_;
};

// One parameter of a call, with its state as torch holds it: tensors by torch.optim's names
// ("step", "exp_avg", ..., "mu_product", "master_weights"). After the step, `updates` holds the
// entries to set in that state: what was made or converted for it; the tensors it held are
// changed in place.
struct TorchParamStep {
  at::Tensor param;
  std::size_t group = 0;
  std::size_t index = 0;  // its place in its group, for messages
  TorchState state;
  std::vector<std::pair<std::string, at::Tensor>> updates;
};

namespace detail {

inline std::string which(const TorchParamStep& p) {
  return "parameter " + std::to_string(p.index) + " of group " + std::to_string(p.group);
}
[[noreturn]] inline void refuse(const TorchParamStep& p, const std::string& what) {
  throw std::invalid_argument("multopt: " + which(p) + " " + what + "; nothing was stepped");
}

// The real dtype a parameter's values are computed in (complex ones as their real and imaginary
// parts), and the dtype of its state arrays: its own, or float for bfloat16 and float16.
inline c10::ScalarType real_dtype(c10::ScalarType dtype) {
  return at::isComplexType(dtype) ? c10::toRealValueType(dtype) : dtype;
}
inline c10::ScalarType state_dtype(c10::ScalarType dtype) {
  return dtype == at::kBFloat16 || dtype == at::kHalf ? at::kFloat : dtype;
}

// A one-element tensor's value, read in place where it is a CPU float, double or long (as
// torch's step and mu_product are): item() goes through torch's dispatcher, about a microsecond
// a parameter.
inline double value_of(const at::Tensor& t) {
  if (t.device().is_cpu()) {
    if (t.scalar_type() == at::kFloat) return *t.data_ptr<float>();
    if (t.scalar_type() == at::kDouble) return *t.data_ptr<double>();
    if (t.scalar_type() == at::kLong) return double(*t.data_ptr<int64_t>());
  }
  return t.item<double>();
}
inline void set_value(const at::Tensor& t, double value) {
  if (t.device().is_cpu() && t.scalar_type() == at::kFloat) *t.data_ptr<float>() = float(value);
  else if (t.device().is_cpu() && t.scalar_type() == at::kDouble) *t.data_ptr<double>() = value;
  else t.fill_(value);
}

// The value of a one-element state entry, which must be a finite number.
inline double number_in(const TorchParamStep& p, const std::string& name, const at::Tensor& value) {
  if (value.numel() != 1 || at::isComplexType(value.scalar_type()))
    refuse(p, "has a state '" + name + "' of " + std::to_string(value.numel()) + " elements, not one real number");
  const double number = value_of(value);
  if (!std::isfinite(number)) refuse(p, "has " + name + " = " + std::to_string(number) + " in its state");
  return number;
}

// Values a step works on in place: `target` itself when it can (contiguous, without torch's
// conjugate or negative bit), else a contiguous copy that finish() copies back.
struct Worked {
  at::Tensor target, work;
  static Worked of(const at::Tensor& target) {
    if (target.is_contiguous() && !target.is_conj() && !target.is_neg()) return {target, target};
    return {target, target.resolve_conj().resolve_neg().contiguous()};
  }
  // The real values, complex ones as (real, imaginary) pairs.
  at::Tensor real() const { return work.is_complex() ? at::view_as_real(work) : work; }
  void finish() const {
    if (!work.is_same(target)) target.copy_(work);
  }
};

// What a call makes of one parameter before it plans anything.
struct PreparedParam {
  Worked param, master;
  std::vector<Worked> arrays;  // by slot; undefined where the settings use none
  at::Tensor grad;             // contiguous and real, read only
  long steps = 0;
  std::vector<double> scalars;
  const std::vector<std::string>* scalar_names = nullptr;  // the base's, held by the call
  unsigned new_arrays = 0;
};

// The parameter's gradient, contiguous and real, if the step can read it.
inline at::Tensor checked_gradient(const TorchParamStep& p) {
  const at::Tensor& param = p.param;
  const at::Tensor& grad = param.grad();
  if (grad.is_sparse() || grad.layout() != at::kStrided)
    refuse(p, "has a sparse gradient; multopt steps dense gradients");
  if (!grad.device().is_cpu()) refuse(p, "has its gradient on " + grad.device().str());
  const bool narrow = param.scalar_type() == at::kBFloat16 || param.scalar_type() == at::kHalf;
  if (grad.scalar_type() != param.scalar_type() && !(narrow && grad.scalar_type() == at::kFloat))
    refuse(p, std::string("has a ") + c10::toString(grad.scalar_type()) + " gradient but is " +
                  c10::toString(param.scalar_type()) + (narrow ? " (its gradient may be that or Float)" : ""));
  if (grad.sizes() != param.sizes())
    refuse(p, "has a gradient of shape " + c10::str(grad.sizes()) + " but is of shape " + c10::str(param.sizes()));
  return Worked::of(grad).real();
}

// A state array the parameter holds, in `dtype`: another floating dtype is converted, and the
// conversion goes to `updates`.
inline at::Tensor held_array(TorchParamStep& p, const std::string& name, at::Tensor array, c10::ScalarType dtype) {
  if (!array.device().is_cpu()) refuse(p, "has its state '" + name + "' on " + array.device().str());
  if (array.numel() != p.param.numel())
    refuse(p, "has " + std::to_string(p.param.numel()) + " elements but its state '" + name + "' has " +
                  std::to_string(array.numel()) + " (was its .data replaced?)");
  if (array.scalar_type() == dtype) return array;
  if (!at::isFloatingType(array.scalar_type()) && !at::isComplexType(array.scalar_type()))
    refuse(p, std::string("has its state '") + name + "' of dtype " + c10::toString(array.scalar_type()));
  array = array.to(dtype);
  p.updates.emplace_back(name, array);
  return array;
}

// Reads, checks and completes a parameter's state: the arrays its settings need, made where
// missing (their initial values, as torch makes them at a first step) or converted to the
// parameter's dtype where they are of another (the state follows the parameter, as after
// model.double()); `updates` gets each array made or converted.
// Without `making`, it only checks what the parameter holds.
inline PreparedParam prepare(TorchParamStep& p, const std::vector<StateArrayInfo>& arrays, int slot_count,
                             const std::vector<std::string>& scalar_names, const std::vector<double>& initial_scalars,
                             bool making) {
  const at::Tensor& param = p.param;
  const bool narrow = param.scalar_type() == at::kBFloat16 || param.scalar_type() == at::kHalf;
  if (!narrow && p.state.find("master_weights"))
    refuse(p, std::string("has master weights in its state, which are for bfloat16 and float16 parameters, not ") +
                  c10::toString(param.scalar_type()));
  PreparedParam prepared;
  prepared.param = Worked::of(param);
  const c10::ScalarType dtype = state_dtype(param.scalar_type());
  for (const StateArrayInfo& info : arrays) {
    const bool master = info.slot == master_slot;
    const at::Tensor* held = p.state.find(info.name);
    Worked array;
    if (!held) {
      if (!making) continue;
      const at::Tensor made = master ? param.to(at::kFloat).contiguous()
                                     : at::full(param.sizes(), info.initial, param.options().dtype(dtype).requires_grad(false));
      p.updates.emplace_back(info.name, made);
      array = {made, made};
      if (!master) prepared.new_arrays |= 1u << info.slot;
    } else {
      array = Worked::of(held_array(p, info.name, *held, dtype));
    }
    if (master) {
      prepared.master = array;
      continue;
    }
    if (prepared.arrays.empty()) prepared.arrays.resize(std::size_t(slot_count));
    prepared.arrays[std::size_t(info.slot)] = array;
  }
  if (const at::Tensor* step_entry = p.state.find("step")) {
    const double count = number_in(p, "step", *step_entry);
    if (count < 0 || count != std::floor(count) || !(count < double(max_step_count)))
      refuse(p, "has step = " + std::to_string(count) + " in its state; a step needs a whole number in [0, " +
                    std::to_string(max_step_count) + ")");
    prepared.steps = long(count);
  }
  prepared.scalars = initial_scalars;
  prepared.scalar_names = &scalar_names;
  for (std::size_t s = 0; s < scalar_names.size(); ++s) {
    if (const at::Tensor* held = p.state.find(scalar_names[s])) prepared.scalars[s] = number_in(p, scalar_names[s], *held);
  }
  return prepared;
}

// The parameters of one storage type P, with what the step reads of each.
template <class P>
struct Lane {
  using Type = P;
  using S = Arithmetic<P>;
  std::unique_ptr<NamedStep<P>> step;
  std::vector<std::vector<StateArrayInfo>> arrays;  // per group: what its settings need
  std::vector<std::string> scalar_names;
  std::vector<double> initial_scalars;
  std::vector<std::size_t> members;  // indices into the call's parameters
  std::vector<S*> slots;             // slot_count() per member
  std::vector<NamedTensorRefs<P>> refs;

  // Empties the lists of the last call, keeping their room (and the step, of the same base and
  // rule).
  void begin_call() {
    arrays.clear();
    members.clear();
    slots.clear();
    refs.clear();
  }
};

template <class P>
NamedTensorRefs<P> refs_of(PreparedParam& prepared, std::size_t group) {
  using S = Arithmetic<P>;
  NamedTensorRefs<P> refs;
  const at::Tensor values = prepared.param.real();
  refs.param = data_as<P>(values);
  refs.size = std::size_t(values.numel());
  if constexpr (is_16bit<P>) {
    if (prepared.grad.scalar_type() == at::kFloat) refs.grad.wide = prepared.grad.data_ptr<float>();
    else refs.grad.narrow = data_as<P>(prepared.grad);
  } else {
    refs.grad = data_as<P>(prepared.grad);
  }
  if (prepared.master.work.defined()) refs.master = prepared.master.work.data_ptr<S>();
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
inline void prepare_all(const std::string& base, const std::string& rule, const StorageMode& storage,
                        const std::vector<NamedValues>& groups, std::vector<TorchParamStep>& params, bool stepping,
                        Lanes& lanes, std::vector<PreparedParam>& prepared) {
  std::apply([](auto&... lane) { (lane.begin_call(), ...); }, lanes);
  prepared.clear();
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
      if (lane.arrays.empty())
        for (const NamedValues& settings : groups)
          lane.arrays.push_back(lane.step->state_arrays(settings, is_16bit<P> ? storage : StorageMode{}));
      const at::Tensor grad = stepping ? checked_gradient(p) : at::Tensor();
      prepared[k] =
          prepare(p, lane.arrays[p.group], lane.step->slot_count(), lane.scalar_names, lane.initial_scalars, stepping);
      prepared[k].grad = grad;
      lane.members.push_back(k);
    });
  }
}

}  // namespace detail

// Refuses group settings (by multopt's names) that a step would refuse: an unknown name, a
// value out of range, in any storage type.
inline void check_torch_settings(const std::string& base, const std::string& rule, const StorageMode& storage,
                                 const std::vector<NamedValues>& groups) {
  const auto narrow = make_named_step<Eigen::bfloat16>(base, rule);
  const auto wide = make_named_step<double>(base, rule);
  for (const NamedValues& settings : groups) {
    narrow->state_arrays(settings, storage);
    wide->state_arrays(settings, {});
  }
}

// Refuses, naming the parameter, state that a step would refuse (as a loaded state_dict's is
// checked before it is taken); changes nothing.
inline void check_torch_states(const std::string& base, const std::string& rule, const StorageMode& storage,
                               const std::vector<NamedValues>& groups, std::vector<TorchParamStep> params) {
  at::NoGradGuard no_grad;
  detail::Lanes lanes;
  std::vector<detail::PreparedParam> prepared;
  detail::prepare_all(base, rule, storage, groups, params, false, lanes, prepared);
}

namespace detail {

// One thread's work lists, kept from call to call so that a call does not allocate lists the
// size of its parameter list anew (after torch's ops have fragmented the heap, each such
// allocation makes glibc consolidate its free lists: 2-5 us a parameter, docs/pytorch.md). They
// hold no tensor and no value between calls.
struct CallBuffers {
  std::string base, rule;  // of `lanes`' steps
  Lanes lanes;
  std::vector<PreparedParam> prepared;
  std::vector<std::size_t> order, first;
};
inline CallBuffers& call_buffers(const std::string& base, const std::string& rule) {
  thread_local CallBuffers buffers;
  if (buffers.base != base || buffers.rule != rule) {
    buffers.lanes = Lanes();
    buffers.base = base;
    buffers.rule = rule;
  }
  return buffers;
}
// Lets go of the tensors a call's buffers hold, however the call ends.
struct ReleaseTensors {
  CallBuffers& buffers;
  ~ReleaseTensors() { buffers.prepared.clear(); }
};

// Steps each parameter, none listed twice, once (step_torch_params).
inline void step_once(const std::string& base, const std::string& rule, const StorageMode& storage,
                      const std::vector<NamedValues>& groups, std::vector<TorchParamStep>& params, int threads,
                      CallBuffers& buffers) {
  Lanes& lanes = buffers.lanes;
  std::vector<PreparedParam>& prepared = buffers.prepared;
  const ReleaseTensors release{buffers};
  prepare_all(base, rule, storage, groups, params, true, lanes, prepared);
  const auto for_each_lane = [&](auto&& f) { std::apply([&](auto&... lane) { (f(lane), ...); }, lanes); };
  for_each_lane([&](auto& lane) {
    using L = std::decay_t<decltype(lane)>;
    using P = typename L::Type;
    if (lane.members.empty()) return;
    const std::size_t slots = std::size_t(lane.step->slot_count());
    lane.slots.assign(lane.members.size() * slots, nullptr);
    for (std::size_t m = 0; m < lane.members.size(); ++m) {
      detail::PreparedParam& one = prepared[lane.members[m]];
      for (std::size_t s = 0; s < one.arrays.size(); ++s)
        if (one.arrays[s].work.defined()) lane.slots[m * slots + s] = one.arrays[s].real().template data_ptr<typename L::S>();
      lane.refs.push_back(detail::refs_of<P>(one, params[lane.members[m]].group));
      lane.refs.back().state = lane.slots.data() + m * slots;
    }
    StepOptions options;
    if constexpr (is_16bit<P>) options.storage = storage;
    options.threading.threads = std::clamp(threads, 1, ThreadSettings::max_threads);
    lane.step->plan(lane.refs, groups, options);
  });
  for_each_lane([&](auto& lane) {
    if (!lane.members.empty()) lane.step->commit();
  });
  for (std::size_t k = 0; k < params.size(); ++k) {
    detail::PreparedParam& one = prepared[k];
    TorchParamStep& p = params[k];
    one.param.finish();
    for (const detail::Worked& array : one.arrays)
      if (array.work.defined()) array.finish();
    if (one.master.work.defined()) one.master.finish();
    torch::autograd::impl::bump_version(p.param);
    // The step count in place where the state has one (a 0-dim float32 tensor where it is made,
    // as torch makes it), and the scalars in place where they are double, as multopt computes
    // them (torch 1.13 makes float32 ones); what is made goes to `updates`.
    if (const at::Tensor* step_entry = p.state.find("step")) {
      set_value(*step_entry, double(one.steps));
    } else {
      p.updates.emplace_back("step", at::full({}, double(one.steps), at::TensorOptions().dtype(at::kFloat)));
    }
    for (std::size_t s = 0; s < one.scalar_names->size(); ++s) {
      const std::string& name = (*one.scalar_names)[s];
      const at::Tensor* held = p.state.find(name);
      if (held && held->scalar_type() == at::kDouble)
        set_value(*held, one.scalars[s]);
      else
        p.updates.emplace_back(name, at::full({}, one.scalars[s], at::TensorOptions().dtype(at::kDouble)));
    }
  }
}


}  // namespace detail

// Steps each parameter with groups[p.group] (settings by multopt's names), as the base and rule
// of these names, on `threads` threads. Everything is checked, and every array made, before
// anything changes: a call that throws has changed no parameter and no state (and `updates` is
// to be ignored). A parameter listed n times is stepped n times with its one state, as
// torch.optim steps it: its second steps come after all the first ones (a refusal there, for a
// step count that cannot advance, leaves the first steps made).
inline void step_torch_params(const std::string& base, const std::string& rule, const StorageMode& storage,
                              const std::vector<NamedValues>& groups, std::vector<TorchParamStep>& params,
                              int threads) {
  at::NoGradGuard no_grad;
  detail::CallBuffers& buffers = detail::call_buffers(base, rule);
  detail::first_places(params, buffers.order, buffers.first);
  const std::vector<std::size_t>& first = buffers.first;
  std::vector<std::size_t> later;  // the places of the parameters listed before
  for (std::size_t k = 0; k < params.size(); ++k)
    if (first[k] != k) later.push_back(k);
  if (later.empty()) return detail::step_once(base, rule, storage, groups, params, threads, buffers);
  std::vector<TorchParamStep> round;
  std::vector<std::size_t> places;  // where each of `round` was first listed in `params`
  for (std::size_t k = 0; k < params.size(); ++k) {
    if (first[k] != k) continue;
    round.push_back(params[k]);
    places.push_back(k);
  }
  while (!round.empty()) {
    detail::step_once(base, rule, storage, groups, round, threads, buffers);
    std::vector<TorchParamStep> next;
    std::vector<std::size_t> next_places;
    for (std::size_t r = 0; r < round.size(); ++r) {
      TorchParamStep& stepped = round[r];
      for (auto& [name, tensor] : stepped.updates) {
        params[places[r]].updates.emplace_back(name, tensor);
        stepped.state.set(name, tensor);
      }
      const auto again = std::find_if(later.begin(), later.end(), [&](std::size_t k) { return first[k] == places[r]; });
      if (again == later.end()) continue;
      TorchParamStep repeat = params[*again];
      repeat.state = stepped.state;
      later.erase(again);
      next.push_back(std::move(repeat));
      next_places.push_back(places[r]);
    }
    round = std::move(next);
    places = std::move(next_places);
  }
}

}  // namespace multopt::adapters
