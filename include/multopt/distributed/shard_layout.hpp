// How a ShardedOptimizer splits its tensors over the ranks: the layout of the concatenated
// tensors in shards, and the arithmetic that cuts them. No MPI here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "../simd.hpp"

namespace multopt {

// How the concatenated tensors are split over the ranks, and this rank's part of them.
struct ShardLayout {
  // Elements [offset, offset + size) of tensor `tensor`: one contiguous part of this rank's shard.
  struct Piece {
    std::size_t tensor, offset, size;
  };

  int ranks = 1;
  int rank = 0;
  std::vector<std::size_t> tensor_sizes;  // in registration order
  std::vector<std::size_t> bounds{0, 0};  // rank r owns elements [bounds[r], bounds[r + 1])
  std::vector<Piece> pieces;              // this rank's, in order; piece k is inner() tensor k

  std::size_t begin() const { return bounds[std::size_t(rank)]; }
  std::size_t end() const { return bounds[std::size_t(rank) + 1]; }
  std::size_t total() const { return bounds.back(); }
};

// Splits `total` elements into `ranks` contiguous shards of whole 64-byte blocks (a whole
// number of SIMD packets on every target, and the same for every build), the last shard also
// taking the elements that do not fill a block: any two shards differ by at most one block.
template <class S>
std::vector<std::size_t> shard_bounds(std::size_t total, int ranks) {
  constexpr std::size_t block = 64 / sizeof(S);
  static_assert(block % simd::Vec<S>::size == 0, "a shard block must hold whole SIMD packets");
  if (ranks < 1) throw std::invalid_argument("multopt: a shard layout needs at least one rank");
  const auto count = std::size_t(ranks);
  const std::size_t blocks = total / block, each = blocks / count, extra = blocks % count;
  std::vector<std::size_t> bounds(count + 1, 0);
  for (std::size_t r = 0; r < count; ++r) bounds[r + 1] = bounds[r] + (each + (r < extra ? 1 : 0)) * block;
  bounds[count] = total;
  return bounds;
}

namespace detail {

// Tensor sizes as the messages about layouts show them: [1000, 37, 3].
inline std::string bracketed(const std::vector<std::uint64_t>& values) {
  std::string text;
  for (std::uint64_t v : values) text += (text.empty() ? "" : ", ") + std::to_string(v);
  return "[" + text + "]";
}

}  // namespace detail
}  // namespace multopt
