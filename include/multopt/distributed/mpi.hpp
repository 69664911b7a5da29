// ShardedOptimizer: data-parallel training over MPI with the optimizer state sharded across
// ranks (the first stage of ZeRO). Every rank registers the same tensors; each owns one
// contiguous slice of their concatenation and keeps state for that slice only. A step averages
// the ranks' gradients with MPI_Reduce_scatter, steps the rank's slice with the ordinary fused
// kernel, and shares the updated parameters with MPI_Allgatherv (docs/distributed.md).
// Optional: include it only in programs that link MPI; the rest of multopt never includes it.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <limits>
#include <cstddef>
#include <cstdint>
#include <istream>
#include <ostream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../checkpoint.hpp"
#include "../optimizer.hpp"
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

// Calls returning an error code do so only where the communicator's error handler is
// MPI_ERRORS_RETURN (the default, MPI_ERRORS_ARE_FATAL, aborts the job instead).
inline void check_mpi(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw std::runtime_error(std::string("multopt: ") + call + " failed: " + std::string(text, std::size_t(length)));
}

template <class S>
MPI_Datatype mpi_type() {
  return std::is_same_v<S, float> ? MPI_FLOAT : MPI_DOUBLE;
}

// A duplicate of the caller's communicator, so that the optimizer's collectives can never
// match messages of the caller's own.
class OwnCommunicator {
 public:
  explicit OwnCommunicator(MPI_Comm parent) { check_mpi(MPI_Comm_dup(parent, &comm_), "MPI_Comm_dup"); }
  OwnCommunicator(OwnCommunicator&& other) noexcept : comm_(std::exchange(other.comm_, MPI_COMM_NULL)) {}
  OwnCommunicator& operator=(OwnCommunicator&& other) noexcept {
    std::swap(comm_, other.comm_);
    return *this;
  }
  OwnCommunicator(const OwnCommunicator&) = delete;
  OwnCommunicator& operator=(const OwnCommunicator&) = delete;
  ~OwnCommunicator() {
    int finalized = 0;
    MPI_Finalized(&finalized);  // an optimizer that outlives MPI_Finalize must not free
    if (comm_ != MPI_COMM_NULL && !finalized) MPI_Comm_free(&comm_);
  }
  MPI_Comm get() const { return comm_; }
  int size() const {
    int size = 0;
    check_mpi(MPI_Comm_size(comm_, &size), "MPI_Comm_size");
    return size;
  }
  int rank() const {
    int rank = 0;
    check_mpi(MPI_Comm_rank(comm_, &rank), "MPI_Comm_rank");
    return rank;
  }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
};

// The element-wise least and most of `values` over the ranks (the same length on every rank),
// in one reduction: the most is the complement of the least complement.
inline std::pair<std::vector<std::uint64_t>, std::vector<std::uint64_t>> least_and_most(
    const std::vector<std::uint64_t>& values, MPI_Comm comm) {
  std::vector<std::uint64_t> both(values);
  for (std::uint64_t v : values) both.push_back(~v);
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, both.data(), int(both.size()), MPI_UINT64_T, MPI_MIN, comm), "MPI_Allreduce");
  std::vector<std::uint64_t> least(both.begin(), both.begin() + std::ptrdiff_t(values.size())), most;
  for (std::size_t k = values.size(); k < both.size(); ++k) most.push_back(~both[k]);
  return {least, most};
}

inline std::string bracketed(const std::vector<std::uint64_t>& values) {
  std::string text;
  for (std::uint64_t v : values) text += (text.empty() ? "" : ", ") + std::to_string(v);
  return "[" + text + "]";
}

}  // namespace detail

// Opt is any multopt::Optimizer<Base, Rule, S>. step() is collective: every rank of the
// communicator calls it, having registered the same tensor sizes in the same order.
template <class Opt>
class ShardedOptimizer {
 public:
  using Inner = Opt;
  using Scalar = typename Opt::Scalar;
  using Hyper = typename Opt::Hyper;

  // ShardedOptimizer<MAdam<float>> opt(MPI_COMM_WORLD, arg::lr_out = 1e-2), or with a Hyper.
  template <class... Names>
  explicit ShardedOptimizer(MPI_Comm comm, Setting<Names>... settings)
      : ShardedOptimizer(comm, Hyper::of(settings...)) {}
  ShardedOptimizer(MPI_Comm comm, const Hyper& hyper) : comm_(comm), inner_(hyper) {
    layout_.ranks = comm_.size();
    layout_.rank = comm_.rank();
    layout_.bounds.assign(std::size_t(layout_.ranks) + 1, 0);
  }

  // Parameter groups and hyperparameters are the inner optimizer's: schedules apply as to it.
  std::size_t add_group(const Hyper& hyper) { return inner_.add_group(hyper); }
  std::size_t group_count() const { return inner_.group_count(); }
  const Hyper& hyper(std::size_t group = 0) const { return inner_.hyper(group); }
  void set_hyper(const Hyper& hyper, std::size_t group = 0) { inner_.set_hyper(hyper, group); }
  void set(const std::string& name, double value, std::size_t group = 0) { inner_.set(name, value, group); }
  double get(const std::string& name, std::size_t group = 0) const { return inner_.get(name, group); }

  // Registers a tensor of `size` elements, as Optimizer::add_params. Every tensor must be
  // registered before the first step(), save or load: the shards are cut from all of them.
  std::size_t add_params(Scalar* param, const Scalar* grad, std::size_t size, std::size_t group = 0) {
    if (sealed_) {
      throw std::logic_error(
          "multopt: a ShardedOptimizer's tensors are fixed by its first step, save or load; "
          "register every tensor before");
    }
    inner_.hyper(group);  // throws std::out_of_range for a group that does not exist
    if (size > 0 && (param == nullptr || grad == nullptr))
      throw std::invalid_argument("multopt: param or grad is a null pointer");
    if (size > std::size_t(INT_MAX) - layout_.total()) {  // total <= INT_MAX: cannot wrap
      throw std::length_error("multopt: a ShardedOptimizer steps at most " + std::to_string(INT_MAX) +
                              " elements in all (MPI counts are int)");
    }
    tensors_.push_back({param, grad, size, group, layout_.total()});
    layout_.tensor_sizes.push_back(size);
    relayout();
    return tensors_.size() - 1;
  }

  // Averages every rank's gradients, steps this rank's shard, and gives every rank the
  // updated parameters. Allocates only on the first call.
  void step() {
    seal();
    if (!sizes_checked_) check_same_sizes();
    if (layout_.total() == 0) return;
    const MPI_Datatype type = detail::mpi_type<Scalar>();
    const Scalar* sent = grads_flat_ ? tensors_.front().grad : staged_gradients();
    detail::check_mpi(MPI_Reduce_scatter(sent, shard_grads_.data(), counts_.data(), type, MPI_SUM, comm_.get()),
                      "MPI_Reduce_scatter");
    const auto ranks = Scalar(layout_.ranks);
    for (Scalar& g : shard_grads_) g /= ranks;
    skipped_.clear();
    if (inner_.non_finite_policy() != NonFinitePolicy::propagate) agree_on_non_finite();
    inner_.step();

    // Each rank's updated slice sits at its place in the flat buffer, which the gather fills in.
    Scalar* flat = params_flat_ ? tensors_.front().param : staging_.data();
    if (!params_flat_) {
      for (const ShardLayout::Piece& piece : layout_.pieces) {
        const Tensor& t = tensors_[piece.tensor];
        std::copy_n(t.param + piece.offset, piece.size, flat + t.offset + piece.offset);
      }
    }
    detail::check_mpi(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, flat, counts_.data(), displacements_.data(),
                                     type, comm_.get()),
                      "MPI_Allgatherv");
    if (!params_flat_)
      for (const Tensor& t : tensors_) std::copy_n(flat + t.offset, t.size, t.param);
  }

  const ShardLayout& layout() const { return layout_; }
  // The tensors (as registered here) that the last step() left alone on every rank because an
  // averaged gradient held a NaN or an infinity (inner().set_non_finite_policy(skip)).
  const std::vector<std::size_t>& skipped_tensors() const { return skipped_; }
  // This rank's shard of the gradients the last step() used: the mean over the ranks of the
  // gradients they wrote, elements [layout().begin(), layout().end()) of the concatenation.
  const std::vector<Scalar>& averaged_gradients() const { return shard_grads_; }
  // The optimizer that steps this rank's pieces, for its threads, non-finite policy and state.
  // The pieces (layout().pieces, in order) become its tensors on the first step, save or load;
  // register none through it.
  Opt& inner() { return inner_; }
  const Opt& inner() const { return inner_; }
  // Bytes of optimizer state this rank holds now (state is allocated on the first step).
  std::size_t state_bytes() const {
    std::size_t elements = 0;
    for (std::size_t k = 0; k < inner_.tensor_count(); ++k)
      for (int slot = 0; slot < Opt::BaseType::slot_count; ++slot)
        if (inner_.state(k, slot)) elements += inner_.size(k);
    return elements * sizeof(Scalar);
  }

 private:
  template <class O, class... Schedules>
  friend void save_checkpoint(std::ostream& out, const ShardedOptimizer<O>& opt, const Schedules&... schedules);
  template <class O, class... Schedules>
  friend void load_checkpoint(std::istream& in, ShardedOptimizer<O>& opt, const LoadOptions& options,
                              Schedules&... schedules);

  struct Tensor {
    Scalar* param;
    const Scalar* grad;
    std::size_t size, group;
    std::size_t offset;  // of its first element in the concatenation
  };

  // Cuts the shards anew from every tensor registered so far.
  void relayout() {
    layout_.bounds = shard_bounds<Scalar>(tensors_.back().offset + tensors_.back().size, layout_.ranks);
    layout_.pieces.clear();
    for (std::size_t k = 0; k < tensors_.size(); ++k) {
      const Tensor& t = tensors_[k];
      const std::size_t first = std::max(layout_.begin(), t.offset);
      const std::size_t last = std::min(layout_.end(), t.offset + t.size);
      if (first < last) layout_.pieces.push_back({k, first - t.offset, last - first});
    }
  }

  // Registers this rank's pieces with the inner optimizer, their gradients in shard_grads_,
  // and sizes the buffers, once the tensors are known. It changes nothing a caller can
  // observe but inner()'s tensor list, hence const.
  void seal() const {
    if (sealed_) return;
    shard_grads_.assign(layout_.end() - layout_.begin(), Scalar(0));
    for (const ShardLayout::Piece& piece : layout_.pieces) {
      const Tensor& t = tensors_[piece.tensor];
      inner_.add_params(t.param + piece.offset, shard_grads_.data() + (t.offset + piece.offset - layout_.begin()),
                        piece.size, t.group);
    }
    for (std::size_t r = 0; r < std::size_t(layout_.ranks); ++r) {
      counts_.push_back(int(layout_.bounds[r + 1] - layout_.bounds[r]));
      displacements_.push_back(int(layout_.bounds[r]));
    }
    // Tensors laid out back to back (one arena) are exchanged in place; others through a copy.
    grads_flat_ = params_flat_ = true;
    for (std::size_t k = 1; k < tensors_.size(); ++k) {
      grads_flat_ = grads_flat_ && tensors_[k - 1].grad + tensors_[k - 1].size == tensors_[k].grad;
      params_flat_ = params_flat_ && tensors_[k - 1].param + tensors_[k - 1].size == tensors_[k].param;
    }
    if (!grads_flat_ || !params_flat_) staging_.resize(layout_.total());
    first_bad_.resize(tensors_.size());
    skipped_.reserve(tensors_.size());
    sealed_ = true;
  }

  const Scalar* staged_gradients() {
    for (const Tensor& t : tensors_) std::copy_n(t.grad, t.size, staging_.data() + t.offset);
    return staging_.data();
  }

  // A rank sees only its shard of the averaged gradients, but every rank must skip, or throw
  // for, the same tensors: the ranks agree on the first non-finite element of each tensor
  // (MPI_MIN of their own first ones). Under skip, each rank then marks its pieces of those
  // tensors with a NaN, so that the inner optimizer skips them there too; under throw_error
  // every rank throws the same NonFiniteGradient, before any parameter changes.
  void agree_on_non_finite() {
    constexpr std::uint64_t none = UINT64_MAX;
    std::fill(first_bad_.begin(), first_bad_.end(), none);
    for (const ShardLayout::Piece& piece : layout_.pieces) {
      const Scalar* grad = shard_grads_.data() + (tensors_[piece.tensor].offset + piece.offset - layout_.begin());
      const std::size_t index = detail::first_non_finite(grad, piece.size);
      if (index < piece.size) first_bad_[piece.tensor] = piece.offset + index;
    }
    detail::check_mpi(MPI_Allreduce(MPI_IN_PLACE, first_bad_.data(), int(first_bad_.size()), MPI_UINT64_T, MPI_MIN,
                                    comm_.get()),
                      "MPI_Allreduce");
    const auto bad = std::find_if(first_bad_.begin(), first_bad_.end(), [](std::uint64_t i) { return i != none; });
    if (bad == first_bad_.end()) return;
    if (inner_.non_finite_policy() == NonFinitePolicy::throw_error) {
      const auto tensor = std::size_t(bad - first_bad_.begin());
      const std::size_t element = tensors_[tensor].offset + std::size_t(*bad);
      int owner = 0;
      while (layout_.bounds[std::size_t(owner) + 1] <= element) ++owner;
      Scalar value = owner == layout_.rank ? shard_grads_[element - layout_.begin()] : Scalar(0);
      detail::check_mpi(MPI_Bcast(&value, 1, detail::mpi_type<Scalar>(), owner, comm_.get()), "MPI_Bcast");
      throw NonFiniteGradient(tensor, std::size_t(*bad), double(value));
    }
    for (std::size_t k = 0; k < first_bad_.size(); ++k)
      if (first_bad_[k] != none) skipped_.push_back(k);
    for (const ShardLayout::Piece& piece : layout_.pieces)
      if (first_bad_[piece.tensor] != none)
        shard_grads_[tensors_[piece.tensor].offset + piece.offset - layout_.begin()] =
            std::numeric_limits<Scalar>::quiet_NaN();
  }

  // Different sizes on different ranks would make the collectives read past buffers or hang;
  // the same sizes in another order would average different parameters together. Every rank
  // compares the whole list, and every rank throws, naming the first position that differs.
  void check_same_sizes() {
    const std::vector<std::uint64_t> count = {layout_.tensor_sizes.size()};
    const auto [least_count, most_count] = detail::least_and_most(count, comm_.get());
    if (least_count[0] != most_count[0]) {
      throw std::invalid_argument("multopt: the ranks registered different tensors: rank " +
                                  std::to_string(layout_.rank) + " registered " + std::to_string(count[0]) +
                                  " tensors, the ranks from " + std::to_string(least_count[0]) + " to " +
                                  std::to_string(most_count[0]));
    }
    const std::vector<std::uint64_t> sizes(layout_.tensor_sizes.begin(), layout_.tensor_sizes.end());
    const auto [least, most] = detail::least_and_most(sizes, comm_.get());
    const auto differs = std::mismatch(least.begin(), least.end(), most.begin()).first - least.begin();
    if (differs < std::ptrdiff_t(sizes.size())) {
      const auto k = std::size_t(differs);
      throw std::invalid_argument("multopt: the ranks registered different tensors: tensor " + std::to_string(k) +
                                  " (the first that differs) has from " + std::to_string(least[k]) + " to " +
                                  std::to_string(most[k]) + " elements across the ranks; rank " +
                                  std::to_string(layout_.rank) + " registered " + detail::bracketed(sizes) +
                                  " (every rank must register the same sizes in the same order)");
    }
    sizes_checked_ = true;
  }

  detail::OwnCommunicator comm_;
  std::vector<Tensor> tensors_;
  ShardLayout layout_;
  bool sizes_checked_ = false;
  // Set up by seal(), once.
  mutable Opt inner_;
  mutable bool sealed_ = false;
  mutable std::vector<Scalar> shard_grads_;  // this rank's averaged gradients; inner_ reads them
  mutable std::vector<Scalar> staging_;      // the concatenation, where tensors are not one arena
  mutable std::vector<int> counts_, displacements_;
  mutable bool grads_flat_ = false, params_flat_ = false;
  mutable std::vector<std::uint64_t> first_bad_;  // per tensor: its first non-finite element
  mutable std::vector<std::size_t> skipped_;
};

// Sharded checkpoints: each rank writes and reads its own stream (one file per rank). A
// checkpoint is the shard layout (format in docs/distributed.md) followed by an ordinary
// checkpoint of the rank's inner optimizer (docs/checkpoint-format.md). It loads only onto
// the same number of ranks, at the same rank, over the same tensor sizes.
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
// schedules' positions. Throws std::runtime_error if the stream fails.
template <class Opt, class... Schedules>
void save_checkpoint(std::ostream& out, const ShardedOptimizer<Opt>& opt, const Schedules&... schedules) {
  opt.seal();
  detail::write_layout(out, opt.layout());
  save_checkpoint(out, opt.inner_, schedules...);
}

// Restores what save_checkpoint wrote on this rank. Throws std::invalid_argument for a
// checkpoint of another rank count, rank or set of tensor sizes, std::runtime_error for a
// damaged one; either way this rank's optimizer and the schedules are left as they were.
// Each rank loads on its own: a rank that throws does not undo another's load.
template <class Opt, class... Schedules>
void load_checkpoint(std::istream& in, ShardedOptimizer<Opt>& opt, const LoadOptions& options,
                     Schedules&... schedules) {
  opt.seal();
  detail::check_layout_fits(detail::read_layout(in), opt.layout());
  load_checkpoint(in, opt.inner_, options, schedules...);
}

template <class Opt, class... Schedules,
          std::enable_if_t<(std::is_base_of_v<Schedule, Schedules> && ...), int> = 0>
void load_checkpoint(std::istream& in, ShardedOptimizer<Opt>& opt, Schedules&... schedules) {
  load_checkpoint(in, opt, LoadOptions{}, schedules...);
}

}  // namespace multopt
