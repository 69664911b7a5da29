// ShardedOptimizer: the optimizer itself. It averages the ranks' gradients, steps this rank's
// shard with an inner multopt::Optimizer, shares the updated parameters, and makes the ranks
// agree on their registrations and on non-finite gradients (docs/distributed.md).
#pragma once

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <istream>
#include <limits>
#include <ostream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "../checkpoint/fit.hpp"
#include "../optimizer.hpp"
#include "mpi_handles.hpp"
#include "shard_layout.hpp"

namespace multopt {

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

  // Parameter groups and hyperparameters are the inner optimizer's, and so is what a schedule
  // reads of an optimizer: schedule.apply(opt) changes them as schedule.apply(opt.inner()).
  static const char* base_name() { return Opt::base_name(); }
  static const char* rule_name() { return Opt::rule_name(); }
  static std::vector<std::string> hyperparameter_names() { return Opt::hyperparameter_names(); }
  static void check_hyper(const Hyper& hyper) { Opt::check_hyper(hyper); }
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
    require_tensor_buffers(param, grad, size);
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
  // Bytes of optimizer state this rank holds now (state is allocated on the first step), the
  // moving averages of the weights included.
  std::size_t state_bytes() const {
    std::size_t bytes = 0;
    for (std::size_t k = 0; k < inner_.tensor_count(); ++k)
      bytes += inner_.state_bytes(k) + (inner_.ema(k) ? inner_.size(k) * sizeof(Scalar) : 0);
    return bytes;
  }

 private:
  template <class O, class... Schedules>
  friend void save_checkpoint(std::ostream& out, ShardedOptimizer<O>& opt, const Schedules&... schedules);
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
  // and sizes the buffers, once the tensors are known: from then on add_params refuses more.
  void seal() {
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
  // tensors (under skip_all, of every tensor) with a NaN, so that the inner optimizer skips them there too; under throw_error
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
    if (inner_.non_finite_policy() == NonFinitePolicy::skip_all) std::fill(first_bad_.begin(), first_bad_.end(), 0);
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
  Opt inner_;
  // Set up by seal(), once.
  bool sealed_ = false;
  std::vector<Scalar> shard_grads_;  // this rank's averaged gradients; inner_ reads them
  std::vector<Scalar> staging_;      // the concatenation, where tensors are not one arena
  std::vector<int> counts_, displacements_;
  bool grads_flat_ = false, params_flat_ = false;
  std::vector<std::uint64_t> first_bad_;  // per tensor: its first non-finite element
  std::vector<std::size_t> skipped_;
};

}  // namespace multopt
