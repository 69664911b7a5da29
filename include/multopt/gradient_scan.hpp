// The read of the gradients before a step, for what must be known of all of them first: the
// sum of squares behind clipping by the global norm, and whether any element is a NaN or an
// infinity (the non-finite policy; a tensor of one chunk may instead be checked by the step,
// right before it is stepped: StepWork::run). The gradients are read in blocks of a fixed
// length, however the step is split over threads, and the blocks' sums are added in order, so
// the norm (and so every parameter) is the same at any thread count and chunk length.
#pragma once

#include <cstddef>
#include <limits>
#include <vector>

#include "chunks.hpp"
#include "conversions.hpp"
#include "simd.hpp"
#include "storage.hpp"

namespace multopt {
namespace detail {

struct ScanResult {
  double sum_of_squares = 0.0;
  bool non_finite = false;
};

// Reads x[begin, end). A NaN or infinity is an element whose exponent bits are all set: per
// packet one and, one compare and one or, with no chain of dependent arithmetic through the loop.
// 16-bit gradients are widened first (exactly: a 16-bit NaN or infinity stays one).
template <class G>
ScanResult scan(const G* x, std::size_t begin, std::size_t end, bool sum_squares, bool check) {
  namespace ei = Eigen::internal;
  using S = Arithmetic<G>;
  using Packet = typename simd::Vec<S>::Packet;
  constexpr std::size_t width = simd::Vec<S>::size;
  const Packet exponent = ei::pset1<Packet>(std::numeric_limits<S>::infinity());  // its bits: the exponent's
  Packet found = ei::pset1<Packet>(S(0)), sum = found;
  std::size_t i = begin;
  for (; i + width <= end; i += width) {
    const Packet v = Storage<G>::load(x + i).packet();
    if (check) found = ei::por(found, ei::pcmp_eq(ei::pand(v, exponent), exponent));
    if (sum_squares) sum = ei::pmadd(v, v, sum);
  }
  S lanes[width];
  ei::pstoreu(lanes, found);  // a lane that found one is all ones: a NaN
  ScanResult result;
  for (S lane : lanes) result.non_finite = result.non_finite || lane != lane;
  result.sum_of_squares = double(simd::sum(simd::Vec<S>::from_packet(sum)));
  for (; i < end; ++i) {
    const S v = static_cast<S>(x[i]);
    result.non_finite = result.non_finite || (check && v - v != S(0));
    if (sum_squares) result.sum_of_squares += double(v) * double(v);
  }
  return result;
}
template <class P>
ScanResult scan(const Gradient16<P>& g, std::size_t begin, std::size_t end, bool sum_squares, bool check) {
  return g.wide ? scan(g.wide, begin, end, sum_squares, check) : scan(g.narrow, begin, end, sum_squares, check);
}

}  // namespace detail

// The blocks of a set of tensors and what the last scan found in each.
class GradientScan {
 public:
  static constexpr std::size_t block_length = std::size_t(1) << 14;

  // checked_by_step[k]: the step can check tensor k itself (StepWork::run), so a scan for the
  // non-finite check alone may leave it out.
  void plan(const std::vector<std::size_t>& sizes, const std::vector<char>& checked_by_step) {
    every_block_.clear();
    blocks_left_to_scan_.clear();
    for (std::size_t k = 0; k < sizes.size(); ++k)
      for (std::size_t begin = 0; begin < sizes[k]; begin += block_length) {
        every_block_.push_back({k, begin, std::min(sizes[k], begin + block_length)});
        if (!checked_by_step[k]) blocks_left_to_scan_.push_back(every_block_.back());
      }
    results_.assign(every_block_.size(), {});
  }

  // Scans the blocks of every tensor, or with every_tensor false only those of the tensors the
  // step does not check itself; grad(k) is tensor k's gradient.
  template <class GradOf>
  void run(const GradOf& grad, bool sum_squares, bool check, bool every_tensor, std::size_t total_size,
           const ThreadSettings& threading) {
    scanned_every_tensor_ = every_tensor;
    const std::vector<Chunk>& blocks = scanned();
    for_each_chunk(blocks.size(), total_size, threading, [&](std::size_t b) {
      const Chunk& block = blocks[b];
      results_[b] = detail::scan(grad(block.tensor), block.begin, block.end, sum_squares, check);
    });
  }

  // Calls found(tensor) for each block the last scan found a NaN or infinity in, in order.
  template <class Found>
  void for_each_non_finite(const Found& found) const {
    const std::vector<Chunk>& blocks = scanned();
    for (std::size_t b = 0; b < blocks.size(); ++b)
      if (results_[b].non_finite) found(blocks[b].tensor);
  }

  // The sum of squares of the tensors for which keep(tensor) holds, block by block in order.
  template <class Keep>
  double sum_of_squares(const Keep& keep) const {
    const std::vector<Chunk>& blocks = scanned();
    double total = 0.0;
    for (std::size_t b = 0; b < blocks.size(); ++b)
      if (keep(blocks[b].tensor)) total += results_[b].sum_of_squares;
    return total;
  }

 private:
  const std::vector<Chunk>& scanned() const { return scanned_every_tensor_ ? every_block_ : blocks_left_to_scan_; }

  std::vector<Chunk> every_block_;
  std::vector<Chunk> blocks_left_to_scan_;  // those of the tensors the step does not check itself
  std::vector<detail::ScanResult> results_;  // of the blocks last scanned, in their order
  bool scanned_every_tensor_ = true;
};

// clip_grad_norm_'s factor for gradients of this norm: min(1, max_norm / (norm + 1e-6)); NaN
// for a NaN norm, which then reaches every parameter, as in torch.
inline double clip_factor(double max_norm, double norm) {
  const double factor = max_norm / (norm + 1e-6);
  return factor >= 1.0 ? 1.0 : factor;
}

}  // namespace multopt
