// One step of torch parameters whose optimizer state torch holds (a torch.optim optimizer's
// opt.state[p], torch::optim's per-parameter state): the state by torch.optim's names is turned
// into step_tensors' arguments and back (docs/pytorch.md). No value is kept between calls. The
// Python module and TorchOptimizer are built on it; only includers need libtorch.
#pragma once

#include <ATen/ATen.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "../multopt.hpp"
#include "torch_lanes.hpp"
#include "torch_state.hpp"
#include "torch_types.hpp"

namespace multopt::adapters {

// Refuses options and group settings (by multopt's names) that a step would refuse: an unknown
// name, a value out of range, in any storage type (a grad_scale whose reciprocal is no normal
// float, the narrowest type a step computes in).
inline void check_torch_settings(const std::string& base, const std::string& rule, const StepOptions& options,
                                 const std::vector<NamedValues>& groups) {
  StepOptions wide_options = options;
  wide_options.storage = {};
  multopt::detail::check_step_options<Eigen::bfloat16>(options);
  multopt::detail::check_step_options<double>(wide_options);
  const auto narrow = make_named_step<Eigen::bfloat16>(base, rule);
  const auto wide = make_named_step<double>(base, rule);
  for (const NamedValues& settings : groups) {
    narrow->state_arrays(settings, options.storage, false);
    wide->state_arrays(settings, {}, false);
  }
}

// Refuses, naming the parameter, state that a step would refuse (as a loaded state_dict's is
// checked before it is taken); changes nothing.
inline void check_torch_states(const std::string& base, const std::string& rule, const StepOptions& options,
                               const std::vector<NamedValues>& groups, std::vector<TorchParamStep> params) {
  at::NoGradGuard no_grad;
  detail::Lanes lanes;
  std::vector<detail::PreparedParam> prepared;
  detail::prepare_all(base, rule, options, groups, params, false, lanes, prepared);
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
  ~ReleaseTensors() {
    for (PreparedParam& one : buffers.prepared) one.release();
  }
};

// Steps each parameter, none listed twice, once (step_torch_params); returns whether a
// non-finite gradient skipped the step (NonFinitePolicy::skip_all).
inline bool step_once(const std::string& base, const std::string& rule, const StepOptions& options,
                      const std::vector<NamedValues>& groups, std::vector<TorchParamStep>& params,
                      CallBuffers& buffers) {
  Lanes& lanes = buffers.lanes;
  std::vector<PreparedParam>& prepared = buffers.prepared;
  const ReleaseTensors release{buffers};
  prepare_all(base, rule, options, groups, params, true, lanes, prepared);
  // A lane is one call of the step, and skip_all would skip within it alone: each lane throws
  // at a non-finite gradient instead, before it changes anything, so that any one skips all.
  const bool skip_all = options.non_finite_policy == NonFinitePolicy::skip_all;
  bool skipped = false;
  const auto for_each_lane = [&](auto&& f) { std::apply([&](auto&... lane) { (f(lane), ...); }, lanes); };
  for_each_lane([&](auto& lane) {
    using L = std::decay_t<decltype(lane)>;
    using P = typename L::Type;
    if (lane.members.empty()) return;
    const std::size_t per_member = std::size_t(lane.step->array_count());
    lane.state_pointers.assign(lane.members.size() * per_member, nullptr);
    for (std::size_t m = 0; m < lane.members.size(); ++m) {
      detail::PreparedParam& one = prepared[lane.members[m]];
      for (std::size_t s = 0; s < one.arrays.size(); ++s)
        if (one.arrays[s].defined())
          lane.state_pointers[m * per_member + s] = state_pointer<typename L::S>(one.arrays[s]);
      lane.refs.push_back(detail::refs_of<P>(one, params[lane.members[m]].group));
      lane.refs.back().state = lane.state_pointers.data() + m * per_member;
    }
    StepOptions lane_options = options;
    lane_options.storage = lane.storage;
    if (skip_all) lane_options.non_finite_policy = NonFinitePolicy::throw_error;
    lane_options.threading.threads = std::clamp(options.threading.threads, 1, ThreadSettings::max_threads);
    try {
      lane.step->plan(lane.refs, groups, lane_options);
    } catch (const NonFiniteGradient&) {
      if (!skip_all) throw;
      skipped = true;
    }
  });
  if (skipped) {
    for (TorchParamStep& p : params) p.updates.clear();
    return true;
  }
  for_each_lane([&](auto& lane) {
    if (!lane.members.empty()) lane.step->commit();
  });
  for (std::size_t k = 0; k < params.size(); ++k) {
    detail::PreparedParam& one = prepared[k];
    TorchParamStep& p = params[k];
    one.param.finish();
    for (const detail::Worked& array : one.arrays) array.finish();
    one.master.finish();
    one.ema.finish();
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
  return false;
}


}  // namespace detail

// Steps each parameter with groups[p.group] (settings by multopt's names), as the base and rule
// of these names, with `options` (the storage mode for 16-bit parameters, threads, ema_decay,
// grad_scale, the non-finite policy). Everything is checked, and every
// array made, before anything changes: a call that throws has changed no parameter and no state
// (and `updates` is to be ignored). Under NonFinitePolicy::skip_all a non-finite gradient, of any
// parameter, leaves everything as it was (no state is made) and the call returns true. A
// parameter listed n times is stepped n times with its one state (and its average moves n
// times), as torch.optim steps it: its second steps come after all the first ones (a refusal
// there, for a step count that cannot advance, leaves the first steps made).
inline bool step_torch_params(const std::string& base, const std::string& rule, const StepOptions& options,
                              const std::vector<NamedValues>& groups, std::vector<TorchParamStep>& params) {
  at::NoGradGuard no_grad;
  detail::CallBuffers& buffers = detail::call_buffers(base, rule);
  detail::first_places(params, buffers.order, buffers.first);
  const std::vector<std::size_t>& first = buffers.first;
  std::vector<std::size_t> later;  // the places of the parameters listed before
  for (std::size_t k = 0; k < params.size(); ++k)
    if (first[k] != k) later.push_back(k);
  if (later.empty()) return detail::step_once(base, rule, options, groups, params, buffers);
  std::vector<TorchParamStep> round;
  std::vector<std::size_t> places;  // where each of `round` was first listed in `params`
  for (std::size_t k = 0; k < params.size(); ++k) {
    if (first[k] != k) continue;
    round.push_back(params[k]);
    places.push_back(k);
  }
  while (!round.empty()) {
    // The gradient of a parameter listed again is the one its first steps read.
    if (detail::step_once(base, rule, options, groups, round, buffers)) return true;
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
  return false;
}

}  // namespace multopt::adapters
