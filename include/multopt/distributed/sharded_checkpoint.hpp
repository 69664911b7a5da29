// Sharded checkpoints: each rank writes and reads its own stream (one file per rank). A
// checkpoint is the shard layout (format in docs/distributed.md) followed by an ordinary
// checkpoint of the rank's inner optimizer (docs/checkpoint-format.md). It loads only onto
// the same number of ranks, at the same rank, over the same tensor sizes.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <istream>
#include <iterator>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "../checkpoint.hpp"
#include "shard_layout.hpp"
#include "sharded_optimizer.hpp"

namespace multopt {
namespace detail {

inline constexpr char shard_magic[8] = {'M', 'U', 'L', 'T', 'S', 'H', 'R', 'D'};
inline constexpr std::uint32_t shard_version = 1;

// The layout as a checkpoint records it (the bounds of this rank only).
struct SavedLayout {
  std::uint64_t ranks, rank, total, begin, end;
  std::vector<std::uint64_t> tensor_sizes;
};

inline void write_layout(std::ostream& out, const ShardLayout& layout) {
  Bytes bytes(std::begin(shard_magic), std::end(shard_magic));
  put(bytes, shard_version);
  for (std::size_t field : {std::size_t(layout.ranks), std::size_t(layout.rank), layout.total(), layout.begin(),
                            layout.end(), layout.tensor_sizes.size()})
    put<std::uint64_t>(bytes, field);
  for (std::size_t size : layout.tensor_sizes) put<std::uint64_t>(bytes, size);
  ChecksummedWriter writer(out);
  writer.write(bytes);
  writer.write_checksum();
}

inline SavedLayout read_layout(std::istream& in) {
  ChecksummedReader reader(in);
  unsigned char magic[sizeof shard_magic];
  reader.read(magic, sizeof magic, "the magic bytes");
  if (std::equal(std::begin(magic), std::end(magic), std::begin(checkpoint_magic))) {
    throw std::runtime_error(
        "multopt: this is the checkpoint of a single-process optimizer, not of a ShardedOptimizer's "
        "shard: load it into a multopt::Optimizer");
  }
  if (!std::equal(std::begin(magic), std::end(magic), std::begin(shard_magic)))
    throw std::runtime_error("multopt: this is not a sharded multopt checkpoint: it does not begin with \"MULTSHRD\"");
  const auto version = reader.read<std::uint32_t>("the format version");
  if (version != shard_version) {
    throw std::runtime_error("multopt: the sharded checkpoint has format version " + std::to_string(version) +
                             "; this multopt reads version " + std::to_string(shard_version));
  }
  SavedLayout saved{};
  for (std::uint64_t* field : {&saved.ranks, &saved.rank, &saved.total, &saved.begin, &saved.end})
    *field = reader.read<std::uint64_t>("the shard layout");
  // One at a time, so that a damaged count ends as truncation rather than a huge allocation.
  for (auto left = reader.read<std::uint64_t>("the tensor count"); left > 0; --left)
    saved.tensor_sizes.push_back(reader.read<std::uint64_t>("the tensor sizes"));
  reader.verify_checksum("the shard layout");
  return saved;
}

inline void check_layout_fits(const SavedLayout& saved, const ShardLayout& here) {
  const auto refuse = [](const std::string& what) {
    throw std::invalid_argument("multopt: the sharded checkpoint does not fit: " + what);
  };
  if (saved.ranks != std::uint64_t(here.ranks)) {
    refuse("it was written on " + counted(saved.ranks, "rank") + " (its shard: rank " + std::to_string(saved.rank) +
           "'s), this optimizer runs on " + counted(here.ranks, "rank") + "; it loads only onto " +
           counted(saved.ranks, "rank") + " (resharding is not supported)");
  }
  if (saved.rank != std::uint64_t(here.rank)) {
    refuse("it holds the shard of rank " + std::to_string(saved.rank) + ", this is rank " +
           std::to_string(here.rank) + ": give each rank the checkpoint its rank wrote");
  }
  const std::vector<std::uint64_t> sizes(here.tensor_sizes.begin(), here.tensor_sizes.end());
  if (saved.tensor_sizes != sizes) {
    refuse("its tensor sizes are " + bracketed(saved.tensor_sizes) + ", the optimizer's " + bracketed(sizes));
  }
  if (saved.total != here.total() || saved.begin != here.begin() || saved.end != here.end()) {
    refuse("it holds elements [" + std::to_string(saved.begin) + ", " + std::to_string(saved.end) + ") of " +
           std::to_string(saved.total) + ", this rank's shard is [" + std::to_string(here.begin()) + ", " +
           std::to_string(here.end()) + ") of " + std::to_string(here.total()));
  }
}

}  // namespace detail

// Writes this rank's shard: its layout, then its inner optimizer's checkpoint with the
// schedules' positions. Throws std::runtime_error if the stream fails. The optimizer is not
// const: a save, like the first step, fixes its tensors.
template <class Opt, class... Schedules>
void save_checkpoint(std::ostream& out, ShardedOptimizer<Opt>& opt, const Schedules&... schedules) {
  opt.seal();
  detail::write_layout(out, opt.layout());
  save_checkpoint(out, opt.inner(), schedules...);
}

// Restores what save_checkpoint wrote on this rank. Throws std::invalid_argument for a
// checkpoint of another rank count, rank or set of tensor sizes, std::runtime_error for a
// damaged one; either way this rank's optimizer and the schedules are left as they were.
// Each rank loads on its own: a rank that throws does not undo another's load. (Without
// LoadOptions: checkpoint.hpp's load_checkpoint, for every kind of optimizer.)
template <class Opt, class... Schedules>
void load_checkpoint(std::istream& in, ShardedOptimizer<Opt>& opt, const LoadOptions& options,
                     Schedules&... schedules) {
  opt.seal();
  detail::check_layout_fits(detail::read_layout(in), opt.layout());
  load_checkpoint(in, opt.inner(), options, schedules...);
}

}  // namespace multopt
