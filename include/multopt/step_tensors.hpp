// The public step over caller-owned state (docs/api.md, "Bring your own state"): one call steps
// a list of tensors whose parameters, gradients, state arrays, step counts and scalar state are
// the caller's (tensor_refs.hpp), with groups of settings, and keeps nothing of them. Optimizer
// steps through it with state of its own.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <limits>
#include <vector>

#include "contract.hpp"
#include "dispatch.hpp"
#include "gradient_rows.hpp"
#include "gradient_scan.hpp"
#include "hyper.hpp"
#include "non_finite.hpp"
#include "overflow_check.hpp"
#include "step.hpp"
#include "storage.hpp"
#include "tensor_refs.hpp"

namespace multopt {

namespace detail {

// What a call does that depends on the parameter type alone, compiled once per P however many
// base × rule combinations a program steps: the chunks, the gradient scan for clipping and the
// non-finite policy, and the loop over the chunks (with its OpenMP region), which steps each
// chunk through its combination's step_chunk.
template <class P>
class ChunkedStep {
 public:
  // The call's tensors, each by its size and gradient, in order. A gradient given as rows is
  // coalesced here (gradient_rows.hpp): the tensor steps those rows' elements, and its gradient
  // is theirs, which clipping and the non-finite policies read.
  void clear_tensors() {
    sizes_.clear();
    grads_.clear();
    row_widths_.clear();
    row_lists_.clear();
    coalesced_count_ = 0;
  }
  void add_tensor(std::size_t size, GradientPointer<P> grad, const RowIndices& rows) {
    const std::size_t k = sizes_.size();
    if (!rows.given() || rows.count == 0) {  // no row: nothing steps, nothing is read
      sizes_.push_back(rows.given() ? 0 : size);
      grads_.push_back(grad);
      row_widths_.push_back(rows.width);
      row_lists_.push_back(nullptr);
      return;
    }
    if (coalesced_count_ == coalesced_.size()) coalesced_.emplace_back();
    CoalescedRows<S>& coalesced = coalesced_[coalesced_count_++];
    if constexpr (is_16bit<P>) {
      if (grad.wide) coalesced.coalesce(rows, grad.wide, size / rows.width, k);
      else coalesced.coalesce(rows, grad.narrow, size / rows.width, k);
      grads_.push_back({nullptr, coalesced.values()});
    } else {
      coalesced.coalesce(rows, grad, size / rows.width, k);
      grads_.push_back(coalesced.values());
    }
    sizes_.push_back(coalesced.rows().size() * rows.width);
    row_widths_.push_back(rows.width);
    row_lists_.push_back(coalesced.rows().data());
  }
  // Tensor k as the step walks it: its elements stepped, its gradient, its rows (null for a
  // dense gradient).
  std::size_t size(std::size_t k) const { return sizes_[k]; }
  const GradientPointer<P>& gradient(std::size_t k) const { return grads_[k]; }
  const std::size_t* rows(std::size_t k) const { return row_lists_[k]; }

  // Plans the step of those tensors: lays out the chunks and reads the gradients as far as must
  // be known before the step (scan_gradients). Returns the clipping factor.
  double plan(const StepOptions& options) {
    threading_ = options.threading;
    lay_out();
    const double clip = scan_gradients(options);
    chunks_to_step_.clear();
    for (const Chunk& chunk : chunks_)
      if (!skip_[chunk.tensor]) chunks_to_step_.push_back(chunk);
    return clip;
  }

  // Steps the tensors that plan() did not skip, `tensors` being the combination's array of
  // TensorStepArgs; one of a single chunk that plan() left to the step (policy skip without
  // clipping) is checked right before, in cache, and skipped if its gradient is not finite.
  const StepReport& commit(const void* tensors, ChunkStep step_chunk) noexcept {
    const std::size_t count = chunks_to_step_.size();
    for_each_chunk(count, total_size_, threading_, [&](std::size_t c) {
      const Chunk& chunk = chunks_to_step_[c];
      const std::size_t k = chunk.tensor;
      if (check_in_step_ && one_chunk_[k]) skip_[k] = scan(grads_[k], chunk.begin, chunk.end, false, true).non_finite;
      if (!skip_[k]) step_chunk(tensors, chunk, c + 1 < count ? &chunks_to_step_[c + 1] : nullptr);
    });
    report_.grad_norm = grad_norm_;
    report_.skipped.clear();  // within the capacity plan() reserved
    for (std::size_t k = 0; k < skip_.size(); ++k)
      if (skip_[k]) report_.skipped.push_back(k);
    return report_;
  }

  // Whether the last commit() left tensor k alone.
  bool skipped(std::size_t k) const { return skip_[k] != 0; }
  const StepReport& report() const { return report_; }

 private:
  using S = Arithmetic<P>;

  // The chunks the loop walks, and room for every per-tensor list.
  void lay_out() {
    total_size_ = 0;
    for (std::size_t size : sizes_) total_size_ += size;
    make_chunks<S>(sizes_, row_widths_, threading_.chunk, chunks_);
    chunks_to_step_.reserve(chunks_.size());
    one_chunk_.assign(sizes_.size(), 1);
    for (std::size_t c = 1; c < chunks_.size(); ++c)
      if (chunks_[c].tensor == chunks_[c - 1].tensor) one_chunk_[chunks_[c].tensor] = 0;
    skip_.assign(sizes_.size(), 0);
    report_.skipped.reserve(sizes_.size());
  }

  // Reads the gradients as far as must be known before the step: the tensors whose gradient
  // holds a NaN or an infinity (under throw_error it throws for the first; under skip_all every
  // tensor is then skipped) and, when clipping, the norm of the others, unscaled. Under skip
  // without clipping, a tensor of one chunk is left to commit(). Returns the clipping factor.
  double scan_gradients(const StepOptions& options) {
    const NonFinitePolicy policy = options.non_finite_policy;
    const bool checking = policy != NonFinitePolicy::propagate;
    const bool clipping = options.max_grad_norm < std::numeric_limits<double>::infinity();
    check_in_step_ = policy == NonFinitePolicy::skip && !clipping;
    grad_norm_ = std::numeric_limits<double>::quiet_NaN();
    if (!checking && !clipping) return 1.0;
    scan_.plan(sizes_, one_chunk_);
    scan_.run([this](std::size_t k) { return grads_[k]; }, clipping, checking, !check_in_step_, total_size_, threading_);
    if (policy == NonFinitePolicy::throw_error) {
      scan_.for_each_non_finite([&](std::size_t k) {
        const std::size_t index = first_non_finite(grads_[k], sizes_[k]);
        const std::size_t width = row_widths_[k];  // of rows: the element's place in the table
        throw NonFiniteGradient(k, width ? row_lists_[k][index / width] * width + index % width : index,
                                element(grads_[k], index));
      });
    }
    if (checking) scan_.for_each_non_finite([&](std::size_t k) { skip_[k] = 1; });
    if (policy == NonFinitePolicy::skip_all && std::find(skip_.begin(), skip_.end(), 1) != skip_.end())
      std::fill(skip_.begin(), skip_.end(), 1);
    if (!clipping) return 1.0;
    grad_norm_ = std::sqrt(scan_.sum_of_squares([this](std::size_t k) { return !skip_[k]; })) / options.grad_scale;
    return clip_factor(options.max_grad_norm, grad_norm_);
  }

  std::vector<std::size_t> sizes_;
  std::vector<GradientPointer<P>> grads_;
  std::vector<std::size_t> row_widths_;           // per tensor: 0, or its gradient's row width
  std::vector<const std::size_t*> row_lists_;     // per tensor: null, or the rows it steps
  std::vector<CoalescedRows<S>> coalesced_;       // the gradients given as rows, coalesced
  std::size_t coalesced_count_ = 0;
  ThreadSettings threading_;
  std::size_t total_size_ = 0;
  std::vector<Chunk> chunks_;
  std::vector<Chunk> chunks_to_step_;  // the chunks of the tensors plan() did not skip
  std::vector<char> one_chunk_;        // per tensor: stepped as one chunk
  std::vector<char> skip_;             // per tensor: left alone (commit() sets it for those it checks)
  bool check_in_step_ = false;         // commit() checks the tensors of one chunk
  double grad_norm_ = 0.0;             // the norm plan() found (NaN when not clipping)
  GradientScan scan_;
  StepReport report_;
};

}  // namespace detail

// What a call works from. A caller that keeps one between calls steps without allocating, once
// its lists have grown to the size of the call. A call has two phases: plan() does everything
// that can fail (the checks of every pointer, count and setting, the gradient scan for clipping
// and the non-finite policy, each tensor's coefficients and their overflow check) and changes
// no tensor; commit() steps, counts the steps, and cannot fail. Of these, only the checks that
// name the base's state and each tensor's coefficients are compiled per base × rule; the rest
// is ChunkedStep's, compiled once per P.
template <class Base, class Rule, class P>
class StepWork {
 public:
  using S = Arithmetic<P>;
  using Refs = TensorRefs<Base, P>;
  using Hyper = multopt::Hyper<Base, Rule>;

  void plan(const Refs* tensors, std::size_t count, const Hyper* groups, std::size_t group_count,
            const StepOptions& options) {
    detail::check_step_options<P>(options);
    kernel_ = detail::chunk_kernel<Base, Rule, P>();
    for (std::size_t g = 0; g < group_count; ++g) groups[g].template validate_for<S>();
    for (std::size_t k = 0; k < count; ++k) detail::check_tensor_refs(k, tensors[k], groups, group_count, options);
    chunked_.clear_tensors();
    for (std::size_t k = 0; k < count; ++k) chunked_.add_tensor(tensors[k].size, tensors[k].grad, tensors[k].rows);
    step_args_.resize(count);
    if constexpr (has_scalars) next_scalars_.resize(count);
    const double clip = chunked_.plan(options);
    for (std::size_t k = 0; k < count; ++k) make_step_args(tensors, k, groups, clip, options);
  }

  // Steps the tensors that plan() did not skip (ChunkedStep::commit); then every tensor stepped
  // counts its step and takes its new scalars; a tensor skipped keeps all it had.
  const StepReport& commit(const Refs* tensors, std::size_t count) noexcept {
    const StepReport& report = chunked_.commit(step_args_.data(), kernel_);
    for (std::size_t k = 0; k < count; ++k) {
      if (chunked_.skipped(k)) continue;
      ++*tensors[k].steps;
      if constexpr (has_scalars)
        std::copy(next_scalars_[k].begin(), next_scalars_[k].end(), tensors[k].scalars);
    }
    return report;
  }

  // What the last commit() did.
  const StepReport& report() const { return chunked_.report(); }

 private:
  static constexpr bool has_scalars = contract::scalar_count<Base> > 0;

  // Tensor k's arrays and this step's coefficients, with the clipping factor `clip`. Tensors of
  // one group at the same step count (and with the same new arrays and scalar state) share their
  // coefficients: computing them (Adam: two pow) costs about as much as stepping a tensor of a
  // hundred elements. A new set is tried on unit data first (refuse_overflow); the scalar state
  // that it advances waits in next_scalars_ until commit().
  void make_step_args(const Refs* tensors, std::size_t k, const Hyper* groups, double clip,
                      const StepOptions& options) {
    const StorageMode& storage = options.storage;
    const Refs& t = tensors[k];
    const Hyper& h = groups[t.group];
    TensorStepArgs<Base, Rule, P>& args = step_args_[k];
    args.param = t.param;
    args.grad = chunked_.gradient(k);
    args.size = chunked_.size(k);
    args.rows = chunked_.rows(k);
    args.row_width = t.rows.width;
    args.narrow_state = false;
    for (std::size_t slot = 0; slot < args.slots.size(); ++slot) {
      const bool used = Base::uses_slot(h.base, int(slot));
      if constexpr (std::is_same_v<S, float>) {
        const FloatStatePointer& state = t.state[slot];
        args.slots[slot] = used ? state.wide() : nullptr;
        args.narrow_slots[slot] = used && !state.wide() ? state : FloatStatePointer{};
        args.narrow_state = args.narrow_state || args.narrow_slots[slot];
      } else {
        args.slots[slot] = used ? t.state[slot] : nullptr;
      }
    }
    if constexpr (is_16bit<P>) {  // (float P: its 16-bit state rounds to nearest)
      args.rounding = storage.rounding;
      args.master = storage.rounding == Rounding::master ? t.master : nullptr;
      args.rounding_key = detail::rounding_key(storage.seed, k, std::uint64_t(*t.steps + 1));
    }
    args.ema = options.ema_decay ? t.ema : nullptr;
    if (options.ema_decay) args.averaging = {S(*options.ema_decay), S(1.0 - *options.ema_decay), t.new_ema};
    if (k > 0 && shares_coeffs(tensors[k - 1], t)) {
      const TensorStepArgs<Base, Rule, P>& same = step_args_[k - 1];
      args.base = same.base;
      args.rule = same.rule;
      args.prestep = same.prestep;
      if constexpr (has_scalars) next_scalars_[k] = next_scalars_[k - 1];
      return;
    }
    contract::Scalars<Base> scalars{};
    if constexpr (has_scalars) std::copy(t.scalars, t.scalars + scalars.size(), scalars.begin());
    args.base = detail::base_coeffs<Base, S>(h.base, *t.steps + 1, t.new_arrays, scalars);
    args.rule = Rule::template coeffs<S>(h.rule, args.base.scale * h.lr_factor);
    args.prestep.unscale = S(1.0 / options.grad_scale);
    args.prestep.gradient_scale = S(h.maximize ? -clip : clip);
    args.prestep.decay_factor = S(1.0 - h.decoupled_decay_step());
    args.prestep.weight_decay = S(h.weight_decay);
    detail::refuse_overflow(args, h, t.group, *t.steps + 1, kernel_);
    if constexpr (has_scalars) next_scalars_[k] = scalars;
  }

  static bool shares_coeffs(const Refs& a, const Refs& b) {
    if (a.group != b.group || *a.steps != *b.steps || a.new_arrays != b.new_arrays) return false;
    if constexpr (has_scalars)
      return std::equal(a.scalars, a.scalars + contract::scalar_count<Base>, b.scalars);
    return true;
  }

  detail::ChunkedStep<P> chunked_;
  detail::ChunkStep kernel_ = nullptr;  // the kernel this plan's commit steps with (dispatch.hpp)
  std::vector<TensorStepArgs<Base, Rule, P>> step_args_;  // per tensor: its arrays and this step's coefficients
  std::vector<contract::Scalars<Base>> next_scalars_;      // per tensor: its scalar state after the step
};

// Steps tensors[k] with the settings groups[tensors[k].group] and the call's options, through
// `work`, which a caller keeps between calls so that its steps allocate nothing. Everything is
// checked before anything changes: a call that throws has changed no parameter, state array,
// step count or scalar. Results are bit-identical at any thread count.
template <class Base, class Rule, class P>
const StepReport& step_tensors(const std::vector<TensorRefs<Base, P>>& tensors,
                               const std::vector<Hyper<Base, Rule>>& groups, const StepOptions& options,
                               StepWork<Base, Rule, P>& work) {
  work.plan(tensors.data(), tensors.size(), groups.data(), groups.size(), options);
  return work.commit(tensors.data(), tensors.size());
}

// The same for one group of settings (every tensor's group 0), with a work list of its own.
template <class Base, class Rule, class P>
StepReport step_tensors(const std::vector<TensorRefs<Base, P>>& tensors, const Hyper<Base, Rule>& settings,
                        const StepOptions& options = {}) {
  StepWork<Base, Rule, P> work;
  work.plan(tensors.data(), tensors.size(), &settings, 1, options);
  return work.commit(tensors.data(), tensors.size());
}

}  // namespace multopt
