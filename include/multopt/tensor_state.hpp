// What an optimizer holds of each tensor (where its arrays are, its step count and state), and
// the work list a step builds from them: which tensors it skips (found before the step, or by
// the step itself), the state it allocates, each tensor's coefficients and the chunks the step
// loop walks.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "contract.hpp"
#include "gradient_scan.hpp"
#include "non_finite.hpp"
#include "overflow_check.hpp"
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
  unsigned new_state_arrays = 0;  // bit k: state array k was made since the tensor's last step
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
    one_chunk_.assign(sizes.size(), 1);
    for (std::size_t c = 1; c < chunks_.size(); ++c)
      if (chunks_[c].tensor == chunks_[c - 1].tensor) one_chunk_[chunks_[c].tensor] = 0;
    skip_.assign(sizes.size(), 0);
    skipped_.reserve(sizes.size());
    step_args_.resize(sizes.size());
    if constexpr (has_scalars) next_scalars_.resize(sizes.size());
    new_state_.reserve(sizes.size() * std::size_t(Base::slot_count + 1));
    new_array_bits_.resize(sizes.size());
  }
  // Per tensor: it is stepped as one chunk, on one thread (the step can check it itself).
  const std::vector<char>& one_chunk() const { return one_chunk_; }

  // Finds the tensors whose gradient holds a NaN or an infinity, as far as must be known before
  // the step, with `scan` (which sums the squares too when clipping); under throw_error throws
  // for the first, before anything changes. Under skip without clipping, a tensor of one chunk
  // is left to run(), which checks its gradient right before stepping it, while it is in cache.
  void begin_step(GradientScan& scan, const std::vector<Tensor>& tensors, NonFinitePolicy policy, bool clipping,
                  std::size_t total_size, const ThreadSettings& threading) {
    const bool checking = policy != NonFinitePolicy::propagate;
    check_in_step_ = policy == NonFinitePolicy::skip && !clipping;
    if (checking || clipping) {
      scan.run([&](std::size_t k) { return tensors[k].grad; }, clipping, checking, !check_in_step_, total_size,
               threading);
    }
    if (policy == NonFinitePolicy::throw_error) {
      scan.for_each_non_finite([&](std::size_t k) {
        const std::size_t index = detail::first_non_finite(tensors[k].grad, tensors[k].size);
        throw NonFiniteGradient(k, index, detail::element(tensors[k].grad, index));
      });
    }
    for (std::size_t k : skipped_) skip_[k] = 0;
    skipped_.clear();
    if (!checking) return;
    scan.for_each_non_finite([&](std::size_t k) {
      if (!skip_[k]) skipped_.push_back(k);
      skip_[k] = 1;
    });
  }

  bool skipped(std::size_t tensor) const { return skip_[tensor] != 0; }
  const std::vector<std::size_t>& skipped_tensors() const { return skipped_; }

  // Makes the state arrays this step's hyperparameters need (and the master weights of 16-bit
  // tensors under Rounding::master, from the parameters), all before any tensor changes, and
  // points the step arguments of make_step_args() at them, and no longer at the arrays the
  // hyperparameters stopped using. run() gives them to the tensors it steps.
  template <class Hyper>
  void allocate_state(const std::vector<Tensor>& tensors, const std::vector<Hyper>& groups, Rounding rounding) {
    new_state_.clear();
    for (std::size_t k = 0; k < tensors.size(); ++k) {
      const Tensor& t = tensors[k];
      if (skip_[k]) continue;
      TensorStepArgs<Base, Rule, P>& args = step_args_[k];
      if (rounding != Rounding::master) args.master = nullptr;
      else if (is_16bit<P> && t.master.empty() && t.size > 0)
        args.master = hold_new_array(k, master_slot, StateArray<S>(t.param, t.param + t.size));
      const auto& base = groups[t.group].base;
      for (int slot = 0; slot < Base::slot_count; ++slot) {
        S*& array = args.slots[std::size_t(slot)];
        if (!Base::uses_slot(base, slot)) array = nullptr;
        else if (t.slots[std::size_t(slot)].empty() && t.size > 0)
          array = hold_new_array(k, slot, StateArray<S>(t.size, S(Base::initial_value(base, slot))));
      }
    }
  }

  // This step's coefficients of every tensor, with the clipping factor `clip`, each set tried
  // on unit data first (refuse_overflow); the scalar state that coeffs() advances waits in
  // next_scalars_ until run() commits it. Changes nothing in `tensors`.
  template <class Hyper>
  void make_step_args(std::vector<Tensor>& tensors, const std::vector<Hyper>& groups, double clip,
                      const StorageMode& storage) {
    for (std::size_t k = 0; k < tensors.size(); ++k) {
      new_array_bits_[k] = tensors[k].new_state_arrays | arrays_to_make(tensors[k], groups, k);
      const bool same_coeffs = k > 0 && shares_coeffs(tensors, k);
      contract::Scalars<Base>& scalars = next_scalars(k);
      if constexpr (has_scalars) scalars = same_coeffs ? next_scalars_[k - 1] : tensors[k].scalars;
      step_args_[k] = step_args_of(tensors[k], new_array_bits_[k], groups[tensors[k].group], clip,
                                   same_coeffs ? &step_args_[k - 1] : nullptr, scalars);
      if constexpr (is_16bit<P>) {
        step_args_[k].rounding = storage.rounding;
        step_args_[k].master = data_or_null(tensors[k].master);
        step_args_[k].rounding_key = detail::rounding_key(storage.seed, k, std::uint64_t(tensors[k].steps + 1));
      }
    }
  }

  // Steps every tensor not skipped with the arguments make_step_args() made; one that
  // begin_step() left to the step is stepped only if its gradient is finite, and otherwise
  // skipped. Then each tensor stepped takes the arrays its arguments used (and no others),
  // counts its step and takes its new scalar state; a tensor skipped keeps all it had, as if
  // found non-finite up front.
  void run(std::vector<Tensor>& tensors, std::size_t total_size, const ThreadSettings& threading) {
    const auto step_it = [this](const Chunk& chunk) {
      const std::size_t k = chunk.tensor;
      if (check_in_step_ && one_chunk_[k])
        skip_[k] = detail::scan(step_args_[k].grad, chunk.begin, chunk.end, false, true).non_finite;
      return !skip_[k];
    };
    step_chunks(step_args_, skipped_.empty() ? chunks_ : chunks_to_step(), total_size, threading, step_it);
    for (NewState& state : new_state_)
      if (!skip_[state.tensor]) array_of(tensors[state.tensor], state.slot).swap(state.values);
    new_state_.clear();  // frees those made for a tensor skipped in the step
    skipped_.clear();
    for (std::size_t k = 0; k < tensors.size(); ++k) {
      Tensor& t = tensors[k];
      if (skip_[k]) {
        skipped_.push_back(k);
        continue;
      }
      for (int slot = 0; slot < Base::slot_count; ++slot)
        if (!step_args_[k].slots[std::size_t(slot)]) StateArray<S>().swap(t.slots[std::size_t(slot)]);
      if (!step_args_[k].master) StateArray<S>().swap(t.master);
      ++t.steps;
      t.new_state_arrays = 0;
      if constexpr (has_scalars) t.scalars = next_scalars_[k];
    }
  }

 private:
  struct NewState {
    std::size_t tensor;
    int slot;  // master_slot: the master weights
    StateArray<S> values;
  };
  static constexpr int master_slot = -1;

  // Holds a new array until run() gives it to its tensor; where its values are.
  S* hold_new_array(std::size_t tensor, int slot, StateArray<S> values) {
    new_state_.push_back({tensor, slot, std::move(values)});
    return new_state_.back().values.data();
  }
  static StateArray<S>& array_of(Tensor& t, int slot) {
    return slot == master_slot ? t.master : t.slots[std::size_t(slot)];
  }

  // The state arrays allocate_state() will make for tensor k, as bits.
  template <class Hyper>
  unsigned arrays_to_make(const Tensor& t, const std::vector<Hyper>& groups, std::size_t k) const {
    unsigned made = 0;
    if (skip_[k] || t.size == 0) return made;
    for (int slot = 0; slot < Base::slot_count; ++slot)
      if (Base::uses_slot(groups[t.group].base, slot) && t.slots[std::size_t(slot)].empty()) made |= 1u << slot;
    return made;
  }

  // Tensors of one group at the same step count (and scalar state) step with the same coefficients.
  bool shares_coeffs(const std::vector<Tensor>& tensors, std::size_t k) const {
    const Tensor &a = tensors[k], &b = tensors[k - 1];
    return a.group == b.group && a.steps == b.steps && new_array_bits_[k] == new_array_bits_[k - 1] &&
           a.scalars == b.scalars;
  }

  // The coefficients are copied from `same` where given: computing them (Adam: two pow) costs
  // about as much as stepping a tensor of a hundred elements.
  template <class Hyper>
  static TensorStepArgs<Base, Rule, P> step_args_of(Tensor& t, unsigned new_state_arrays, const Hyper& h,
                                                    double clip, const TensorStepArgs<Base, Rule, P>* same,
                                                    contract::Scalars<Base>& scalars) {
    TensorStepArgs<Base, Rule, P> args{t.param, t.grad, t.size, {}, {}, {}, {}};
    if (same) {
      args.base = same->base;
      args.rule = same->rule;
      args.prestep = same->prestep;
    } else {
      args.base = detail::base_coeffs<Base, S>(h.base, t.steps + 1, new_state_arrays, scalars);
      args.rule = Rule::template coeffs<S>(h.rule, args.base.scale * h.lr_factor);
      args.prestep = {S(h.maximize ? -clip : clip), S(1.0 - h.decoupled_decay_step()), S(h.weight_decay)};
      detail::refuse_overflow(args, h, t.group, t.steps + 1);
    }
    for (std::size_t k = 0; k < t.slots.size(); ++k)
      args.slots[k] = data_or_null(t.slots[k]);  // allocate_state() updates what it changes
    return args;
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

  std::vector<TensorStepArgs<Base, Rule, P>> step_args_;  // per tensor: its arrays and this step's coefficients
  std::vector<contract::Scalars<Base>> next_scalars_;  // empty for a base without scalar state
  contract::Scalars<Base> no_scalars_{};
  std::vector<Chunk> chunks_;
  std::vector<Chunk> chunks_kept_;      // the chunks of the tensors not skipped
  std::vector<char> one_chunk_;         // per tensor: stepped as one chunk
  bool check_in_step_ = false;          // this step: run() checks the tensors of one chunk
  std::vector<char> skip_;              // per tensor: left alone by this step (run() sets it for those it checks)
  std::vector<std::size_t> skipped_;    // the tensors the last step left alone
  std::vector<NewState> new_state_;     // the arrays this step allocates, until they are installed
  std::vector<unsigned> new_array_bits_;  // per tensor: its new_state_arrays once this step's state is made
};

}  // namespace multopt
