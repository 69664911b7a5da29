// What an optimizer holds of each tensor (where its arrays are, its step count and state), and
// the work list a step builds from them: which tensors it skips, the state it allocates, each
// tensor's coefficients and the chunks the step loop walks.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "contract.hpp"
#include "gradient_scan.hpp"
#include "non_finite.hpp"
#include "state_array.hpp"
#include "step.hpp"
#include "storage.hpp"

namespace multopt {

template <class P, class Base>
struct TensorState {
  P* param;
  GradientPointer<P> grad;
  std::size_t size;
  std::size_t group;
  long steps = 0;
  std::array<StateArray<Arithmetic<P>>, Base::slot_count> slots{};
  StateArray<Arithmetic<P>> master{};  // 16-bit P under Rounding::master: the fp32 weights, from the first step
  unsigned fresh_slots = 0;  // bit k: slot k was created since the last step
  contract::Scalars<Base> scalars = contract::initial_scalars<Base>();  // per-tensor scalar state, if any
};

template <class Base, class Rule, class P>
class StepWork {
 public:
  using S = Arithmetic<P>;
  using Tensor = TensorState<P, Base>;
  static constexpr bool has_scalars = contract::scalar_count<Base> > 0;

  void plan(const std::vector<std::size_t>& sizes, std::size_t chunk_length) {
    make_chunks<S>(sizes, chunk_length, chunks_);
    chunks_kept_.reserve(chunks_.size());
    skip_.assign(sizes.size(), 0);
    skipped_.reserve(sizes.size());
    jobs_.resize(sizes.size());
    if constexpr (has_scalars) next_scalars_.resize(sizes.size());
    new_state_.reserve(sizes.size() * std::size_t(Base::slot_count));
  }

  // Lists the tensors whose gradient `scan` found non-finite (none without a scan); under
  // throw_error throws for the first, before anything changes.
  void begin_step(const GradientScan* scan, const std::vector<Tensor>& tensors, NonFinitePolicy policy) {
    if (scan && policy == NonFinitePolicy::throw_error) {
      scan->for_each_non_finite([&](std::size_t k) {
        const std::size_t index = detail::first_non_finite(tensors[k].grad, tensors[k].size);
        throw NonFiniteGradient(k, index, detail::element(tensors[k].grad, index));
      });
    }
    for (std::size_t k : skipped_) skip_[k] = 0;
    skipped_.clear();
    if (!scan) return;
    scan->for_each_non_finite([&](std::size_t k) {
      if (!skip_[k]) skipped_.push_back(k);
      skip_[k] = 1;
    });
  }

  bool skipped(std::size_t tensor) const { return skip_[tensor] != 0; }
  const std::vector<std::size_t>& skipped_tensors() const { return skipped_; }

  // Makes the state arrays this step's hyperparameters need (and the master weights of 16-bit
  // tensors under Rounding::master, from the parameters) and frees those they no longer use,
  // all or nothing: every new array is allocated before any tensor changes.
  template <class Hyper>
  void allocate_state(std::vector<Tensor>& tensors, const std::vector<Hyper>& groups, Rounding rounding) {
    new_state_.clear();
    for (std::size_t k = 0; k < tensors.size(); ++k) {
      const Tensor& t = tensors[k];
      if (skip_[k] || t.size == 0) continue;
      if (is_16bit<P> && rounding == Rounding::master && t.master.empty())
        new_state_.push_back({k, master_slot, StateArray<S>(t.param, t.param + t.size)});
      for (int slot = 0; slot < Base::slot_count; ++slot) {
        const auto& base = groups[t.group].base;
        if (Base::uses_slot(base, slot) && t.slots[std::size_t(slot)].empty())
          new_state_.push_back({k, slot, StateArray<S>(t.size, S(Base::initial_value(base, slot)))});
      }
    }
    for (std::size_t k = 0; k < tensors.size(); ++k) {
      if (skip_[k]) continue;
      for (int slot = 0; slot < Base::slot_count; ++slot)
        if (!Base::uses_slot(groups[tensors[k].group].base, slot)) StateArray<S>().swap(tensors[k].slots[std::size_t(slot)]);
      if (rounding != Rounding::master) StateArray<S>().swap(tensors[k].master);
    }
    for (NewState& made : new_state_) {
      if (made.slot == master_slot) {
        tensors[made.tensor].master.swap(made.values);
        continue;
      }
      tensors[made.tensor].slots[std::size_t(made.slot)].swap(made.values);
      tensors[made.tensor].fresh_slots |= 1u << made.slot;
    }
  }

  // Steps every tensor not skipped, with the clipping factor `clip`, and counts its step; the
  // scalar state that coeffs() advanced is committed with it, after the loop.
  template <class Hyper>
  void run(std::vector<Tensor>& tensors, const std::vector<Hyper>& groups, double clip, const StorageMode& storage,
           std::size_t total_size, const Parallel& parallel) {
    for (std::size_t k = 0; k < tensors.size(); ++k) {
      const bool same_coeffs = k > 0 && shares_coeffs(tensors[k], tensors[k - 1]);
      contract::Scalars<Base>& scalars = next_scalars(k);
      if constexpr (has_scalars) scalars = same_coeffs ? next_scalars_[k - 1] : tensors[k].scalars;
      jobs_[k] = make_job(tensors[k], groups[tensors[k].group], clip, same_coeffs ? &jobs_[k - 1] : nullptr, scalars);
      if constexpr (is_16bit<P>) {
        jobs_[k].rounding = storage.rounding;
        jobs_[k].master = tensors[k].master.empty() ? nullptr : tensors[k].master.data();
        jobs_[k].rounding_key = detail::rounding_key(storage.seed, k, std::uint64_t(tensors[k].steps + 1));
      }
    }
    step_chunks(jobs_, skipped_.empty() ? chunks_ : chunks_to_step(), total_size, parallel);
    for (std::size_t k = 0; k < tensors.size(); ++k) {
      if (skip_[k]) continue;
      ++tensors[k].steps;
      tensors[k].fresh_slots = 0;
      if constexpr (has_scalars) tensors[k].scalars = next_scalars_[k];
    }
  }

 private:
  struct NewState {
    std::size_t tensor;
    int slot;  // master_slot: the master weights
    StateArray<S> values;
  };
  static constexpr int master_slot = -1;

  // Tensors of one group at the same step count (and scalar state) step with the same coefficients.
  static bool shares_coeffs(const Tensor& a, const Tensor& b) {
    return a.group == b.group && a.steps == b.steps && a.fresh_slots == b.fresh_slots && a.scalars == b.scalars;
  }

  // The coefficients are copied from `same` where given: computing them (Adam: two pow) costs
  // about as much as stepping a tensor of a hundred elements.
  template <class Hyper>
  static TensorStep<Base, Rule, P> make_job(Tensor& t, const Hyper& h, double clip,
                                            const TensorStep<Base, Rule, P>* same, contract::Scalars<Base>& scalars) {
    TensorStep<Base, Rule, P> job{t.param, t.grad, t.size, {}, {}, {}, {}};
    if (same) {
      job.base = same->base;
      job.rule = same->rule;
      job.prestep = same->prestep;
    } else {
      job.base = detail::base_coeffs<Base, S>(h.base, t.steps + 1, t.fresh_slots, scalars);
      job.rule = Rule::template coeffs<S>(h.rule, job.base.scale * h.lr_factor);
      job.prestep = {S(h.maximize ? -clip : clip), S(1.0 - h.decoupled_decay_step()), S(h.weight_decay)};
    }
    for (std::size_t k = 0; k < t.slots.size(); ++k)
      job.slots[k] = t.slots[k].empty() ? nullptr : t.slots[k].data();
    return job;
  }

  // The chunks of the tensors this step does not skip.
  const std::vector<Chunk>& chunks_to_step() {
    chunks_kept_.clear();
    for (const Chunk& chunk : chunks_)
      if (!skip_[chunk.tensor]) chunks_kept_.push_back(chunk);
    return chunks_kept_;
  }

  // Tensor k's scalar state after this step, until the step commits (a shared dummy without).
  contract::Scalars<Base>& next_scalars(std::size_t k) {
    if constexpr (has_scalars) return next_scalars_[k];
    else return (void)k, no_scalars_;
  }

  std::vector<TensorStep<Base, Rule, P>> jobs_;
  std::vector<contract::Scalars<Base>> next_scalars_;  // empty for a base without scalar state
  contract::Scalars<Base> no_scalars_{};
  std::vector<Chunk> chunks_;
  std::vector<Chunk> chunks_kept_;      // the chunks of the tensors not skipped
  std::vector<char> skip_;              // per tensor: left alone by this step
  std::vector<std::size_t> skipped_;    // the tensors the last step left alone
  std::vector<NewState> new_state_;     // the arrays this step allocates, until they are installed
};

}  // namespace multopt
