// A chunk's step: where its elements go (the dense loops of step.hpp, or the rows a gradient
// touches) and the cache lines it asks for ahead of them. step_chunk is what the code common to
// every base and rule calls, once per chunk, through the kernel of the instruction set chosen
// (dispatch.hpp).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <type_traits>

#include "chunks.hpp"
#include "step.hpp"
#include "storage.hpp"

namespace multopt {

namespace detail {
MULTOPT_ISA_BEGIN

// Asks the caches for the lines of elements [begin, end) of a tensor's arrays, its gradient's
// too where `gradient` (the coalesced rows of a gradient given as rows are read in order).
template <class Base, class Rule, class P>
void prefetch_elements(const TensorStepArgs<Base, Rule, P>& t, std::size_t begin, std::size_t end, bool gradient) {
#if defined(__GNUC__)
  using S = Arithmetic<P>;
  constexpr std::size_t line = 64 / sizeof(S);
  for (std::size_t i = begin; i < end; i += line) {
    __builtin_prefetch(t.param + i, 1);
    if constexpr (is_16bit<P>) {
      if (gradient) __builtin_prefetch(t.grad.wide ? static_cast<const void*>(t.grad.wide + i) : t.grad.narrow + i, 0);
      if (t.master) __builtin_prefetch(t.master + i, 1);
    } else {
      if (gradient) __builtin_prefetch(t.grad + i, 0);
    }
    for (S* array : t.arrays)
      if (array) __builtin_prefetch(array + i, 1);
    for (const FloatStatePointer& array : t.narrow_arrays)  // two bytes an element
      if (array) __builtin_prefetch(static_cast<const char*>(array.data) + 2 * i, 1);
    if (t.ema) __builtin_prefetch(t.ema + i, 1);
  }
#else
  (void)t, (void)begin, (void)end, (void)gradient;
#endif
}

// Asks the caches for the first lines of a chunk's arrays (at most `bytes` of each). A chunk
// that starts a tensor starts new memory streams, which the processor's prefetchers pick up
// only after a few misses, and a small tensor ends before they do: requested while the previous
// chunk is stepped, its first lines arrive in the shadow of that work (docs/performance.md).
// (The rows of a gradient given as rows ask for their own: step_rows.)
template <class Base, class Rule, class P>
void prefetch_chunk(const TensorStepArgs<Base, Rule, P>& t, const Chunk& chunk, std::size_t bytes) {
  if (t.rows) return;
  prefetch_elements(t, chunk.begin, std::min(chunk.end, chunk.begin + bytes / sizeof(Arithmetic<P>)), true);
}

MULTOPT_ISA_END
}  // namespace detail

MULTOPT_ISA_BEGIN
// Steps elements [begin, end) of a tensor; begin is a multiple of the packet width (of the
// row width, where the gradient is given as rows).
template <class Base, class Rule, class P>
void step_range(const TensorStepArgs<Base, Rule, P>& t, std::size_t begin, std::size_t end);
MULTOPT_ISA_END

namespace detail {
MULTOPT_ISA_BEGIN

// Rows [begin, end) / row_width of the rows a gradient touches, stepped by the same loop as a
// dense tensor's, so that every element sees what it would see in a dense step. The rows lie here
// and there in memory, where no prefetcher finds them. Narrow rows of float or double are copied,
// a block of them at a time, into arrays on the stack, stepped there as one small tensor and
// copied back: the copies put many rows' loads in flight at once, where stepping one row after
// another waited for each row's in turn, and the next block's lines are asked for while a block
// is stepped (docs/performance.md, "Sparse rows"). The SIMD arithmetic is lane by lane, so where
// an element sits in a packet changes nothing. Wide rows, 16-bit ones (whose stochastic
// rounding keys each element by its place) and those with 16-bit state are stepped one at a
// time, each asking for a later row's lines first. (A moving average of the weights would move
// every row: the step refuses one with rows, check_tensor_refs.)
template <class Base, class Rule, class P>
void step_rows(const TensorStepArgs<Base, Rule, P>& t, std::size_t begin, std::size_t end) {
  using S = Arithmetic<P>;
  constexpr std::size_t room = 1024, ahead = 4;
  const std::size_t width = t.row_width, first = begin / width, last = end / width;
  const auto prefetch_row = [&](std::size_t r) { prefetch_elements(t, t.rows[r] * width, t.rows[r] * width + width, false); };
  TensorStepArgs<Base, Rule, P> rows = t;
  rows.rows = nullptr;
  if constexpr (!is_16bit<P>) {
    if (width <= room / 2 && !t.narrow_state) {
      alignas(64) S param[room], state[Base::array_count][room];
      for (std::size_t k = 0; k < rows.arrays.size(); ++k) rows.arrays[k] = t.arrays[k] ? state[k] : nullptr;
      rows.param = param;
      const std::size_t per_block = room / width;
      for (std::size_t r = first; r < last; r += per_block) {
        const std::size_t count = std::min(last - r, per_block);
        // move(row in the table, row in the block) for each array of each of the block's rows
        const auto each_row = [&](const auto& move) {
          for (std::size_t k = 0; k < count; ++k) {
            const std::size_t at = t.rows[r + k] * width;
            move(t.param + at, param + k * width);
            for (std::size_t s = 0; s < rows.arrays.size(); ++s)
              if (t.arrays[s]) move(t.arrays[s] + at, state[s] + k * width);
          }
        };
        each_row([&](const S* table, S* block) { std::copy_n(table, width, block); });
        for (std::size_t next = r + count; next < std::min(last, r + count + per_block); ++next) prefetch_row(next);
        rows.grad = t.grad + r * width;
        rows.size = count * width;
        step_float(rows, 0, rows.size);
        each_row([&](S* table, const S* block) { std::copy_n(block, width, table); });
      }
      return;
    }
  }
  rows.size = width;
  for (std::size_t r = first; r < std::min(last, first + ahead); ++r) prefetch_row(r);
  for (std::size_t r = first; r < last; ++r) {
    if (r + ahead < last) prefetch_row(r + ahead);
    const std::size_t at = t.rows[r] * width;
    rows.param = t.param + at;
    if constexpr (is_16bit<P>) rows.grad.wide = t.grad.wide + r * width;  // coalesced rows are wide
    else rows.grad = t.grad + r * width;
    for (std::size_t k = 0; k < rows.arrays.size(); ++k) rows.arrays[k] = t.arrays[k] ? t.arrays[k] + at : nullptr;
    for (std::size_t k = 0; k < rows.narrow_arrays.size(); ++k) rows.narrow_arrays[k] = t.narrow_arrays[k].from(at);
    rows.master = t.master ? t.master + at : nullptr;
    rows.offset = at;
    step_range(rows, 0, width);
  }
}

MULTOPT_ISA_END
}  // namespace detail

MULTOPT_ISA_BEGIN
template <class Base, class Rule, class P>
void step_range(const TensorStepArgs<Base, Rule, P>& t, std::size_t begin, std::size_t end) {
  if (t.rows) detail::step_rows(t, begin, end);
  else if constexpr (is_16bit<P>) detail::step_blocks(t, begin, end);
  else if constexpr (std::is_same_v<P, float>) {
    if (t.narrow_state) detail::step_blocks(t, begin, end);
    else detail::step_float(t, begin, end);
  } else detail::step_float(t, begin, end);
}
MULTOPT_ISA_END

namespace detail {

// A combination's step of one chunk, as the code common to every base and rule calls it
// (StepWork's ChunkedStep): steps `chunk` of tensors[chunk.tensor], an array of
// TensorStepArgs<Base, Rule, P>, after asking the caches for the first lines of `next` (null
// after the last chunk).
using ChunkStep = void (*)(const void* tensors, const Chunk& chunk, const Chunk* next);

MULTOPT_ISA_BEGIN
template <class Base, class Rule, class P>
void step_chunk(const void* tensors, const Chunk& chunk, const Chunk* next) {
  const auto* args = static_cast<const TensorStepArgs<Base, Rule, P>*>(tensors);
  if (next) prefetch_chunk(args[next->tensor], *next, 4096);
  step_range(args[chunk.tensor], chunk.begin, chunk.end);
}
MULTOPT_ISA_END

}  // namespace detail

}  // namespace multopt
