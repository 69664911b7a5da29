// The part of a call of the public step (step_tensors.hpp) that depends on the parameter type
// alone, compiled once per type however many base × rule combinations a program steps.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "chunks.hpp"
#include "gradient_rows.hpp"
#include "gradient_scan.hpp"
#include "non_finite.hpp"
#include "step_chunk.hpp"
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

}  // namespace multopt
