// Checkpoints: an optimizer's complete state (every group's hyperparameters, each tensor's
// step count and state arrays) and the positions of its schedules, saved to a binary stream
// and loaded back; the versioned, checksummed format is docs/checkpoint-format.md.
// Parameters stay the caller's: a checkpoint holds neither their values nor pointers, and
// loads only into an optimizer with tensors of the same sizes registered in the same order.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <istream>
#include <limits>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "checkpoint/fit.hpp"
#include "checkpoint/header.hpp"
#include "checkpoint/tensors.hpp"
#include "optimizer.hpp"
#include "schedules.hpp"

namespace multopt {
namespace detail {

// The header of a checkpoint of an optimizer of these names, settings, groups and tensors, with
// schedules at these positions: compiled once per parameter type. The settings of version 4
// are named only where they are in use, so that a checkpoint without them keeps its older
// version (version_for).
template <class P>
CheckpointHeader describe_header(const char* base, const char* rule, const StepOptions& options,
                                 std::vector<NamedValues> groups, std::vector<CheckpointHeader::Tensor> tensors,
                                 const std::vector<SchedulePosition>& schedules) {
  CheckpointHeader header{scalar_name<Arithmetic<P>>(), scalar_name<P>(), base, rule, std::move(groups),
                          {{"max_grad_norm", options.max_grad_norm}}, std::move(tensors), schedules};
  if (is_16bit<P>) {
    header.settings.emplace_back("rounding", double(int(options.storage.rounding)));
    header.settings.emplace_back("rounding_seed_high", double(options.storage.seed >> 32));
    header.settings.emplace_back("rounding_seed_low", double(options.storage.seed & 0xffffffffu));
  }
  if (options.grad_scale != 1.0) header.settings.emplace_back("grad_scale", options.grad_scale);
  if (options.ema_decay) header.settings.emplace_back("ema_decay", *options.ema_decay);
  return header;
}

// Writes a checkpoint of this header, then the state of these tensors: compiled once per base,
// for every rule.
template <class P, class Base>
void save_state(std::ostream& out, const CheckpointHeader& described, const std::vector<TensorState<P, Base>>& tensors) {
  const std::uint32_t version = version_for(described);
  const Bytes header = encode(described, version);
  Bytes preamble(std::begin(checkpoint_magic), std::end(checkpoint_magic));
  put(preamble, version);
  put<std::uint64_t>(preamble, header.size());
  ChecksummedWriter writer(out);
  writer.write(preamble);
  writer.write(header);
  writer.write_checksum();
  for (const auto& t : tensors) {
    for (const auto& array : t.arrays) {  // values as computed: 16-bit ones widened, exactly
      if (array.storage() == StateStorage::compute) write_values(writer, array.data(), array.size());
      else write_values(writer, array.values().data(), array.size());
    }
    write_values(writer, t.master.data(), t.master.size());
    write_values(writer, t.ema.data(), t.ema.size());
  }
  writer.write_checksum();
  if (!out) throw std::runtime_error("multopt: writing the checkpoint failed");
}

}  // namespace detail

// The optimizer's private state, for the checkpoint functions below.
template <class Base, class Rule, class P>
struct CheckpointAccess<Optimizer<Base, Rule, P>> {
  using Opt = Optimizer<Base, Rule, P>;
  using S = Arithmetic<P>;

  static const std::vector<typename Opt::Hyper>& groups(const Opt& opt) { return opt.groups_; }
  static const auto& tensors(const Opt& opt) { return opt.tensors_; }

  // Swaps the new state in. It cannot throw, so a load commits all of its state or none.
  static void restore(Opt& opt, std::vector<typename Opt::Hyper>& groups, std::vector<detail::SavedTensor<S>>& tensors,
                      const detail::RestoredSettings& settings) noexcept {
    opt.groups_.swap(groups);
    opt.options_.max_grad_norm = settings.max_grad_norm;
    if (is_16bit<P>) opt.options_.storage = settings.storage;
    opt.options_.grad_scale = settings.grad_scale;
    opt.options_.ema_decay = settings.ema_decay;
    detail::restore_tensors(opt.tensors_, tensors);
  }
};

namespace detail {

// Where schedules stand, as a checkpoint records them.
template <class... Schedules>
std::vector<SchedulePosition> positions_of(const Schedules&... schedules) {
  static_assert((std::is_base_of_v<Schedule, Schedules> && ...),
                "checkpoints take schedules (classes derived from multopt::Schedule) after the optimizer");
  return {SchedulePosition{Schedules::kind, schedules.group() == all_groups ? all_groups_on_disk : schedules.group(),
                           std::uint64_t(schedules.epoch())}...};
}

// The header of a checkpoint of this optimizer and schedules at these positions.
template <class Base, class Rule, class P>
CheckpointHeader describe(const Optimizer<Base, Rule, P>& opt, const std::vector<SchedulePosition>& schedules) {
  using Access = CheckpointAccess<Optimizer<Base, Rule, P>>;
  std::vector<NamedValues> groups;
  for (const auto& hyper : Access::groups(opt)) groups.push_back(hyper.values());
  return describe_header<P>(Base::name, Rule::name, opt.step_options(), std::move(groups),
                            describe_tensors(Access::tensors(opt)), schedules);
}

// save_checkpoint and load_checkpoint below, for typed and type-erased optimizers alike.
template <class Base, class Rule, class P>
void save(std::ostream& out, const Optimizer<Base, Rule, P>& opt, const std::vector<SchedulePosition>& schedules) {
  save_state(out, describe(opt, schedules), CheckpointAccess<Optimizer<Base, Rule, P>>::tensors(opt));
}

// A checkpoint's header, read and checked against `here`, the header of the optimizer and
// schedules it would load into, whose base has `array_count` state arrays and these initial
// scalars. The reader then stands at the state.
inline std::pair<CheckpointHeader, std::uint32_t> read_header(ChecksummedReader& reader, const CheckpointHeader& here,
                                                              int array_count, const std::vector<double>& initial_scalars,
                                                              const LoadOptions& options) {
  char magic[sizeof checkpoint_magic];
  reader.read(reinterpret_cast<unsigned char*>(magic), sizeof magic, "the magic bytes");
  if (!std::equal(std::begin(magic), std::end(magic), std::begin(checkpoint_magic)))
    throw std::runtime_error(
        "multopt: this is not a multopt checkpoint: it does not begin with \"MULTOPT\\0\"");
  const auto version = reader.read<std::uint32_t>("the format version");
  if (version < 1 || version > checkpoint_version) {
    throw std::runtime_error("multopt: the checkpoint has format version " + std::to_string(version) +
                             "; this multopt reads versions 1 to " + std::to_string(checkpoint_version));
  }
  // Read piecewise rather than sized up front, so that a damaged length fails as truncation.
  Bytes header_bytes;
  for (auto left = reader.read<std::uint64_t>("the header length"); left > 0;) {
    const std::size_t piece = std::size_t(std::min<std::uint64_t>(left, io_buffer_bytes));
    header_bytes.resize(header_bytes.size() + piece);
    reader.read(header_bytes.data() + header_bytes.size() - piece, piece, "the header");
    left -= piece;
  }
  reader.verify_checksum("the header");
  CheckpointHeader saved = decode(header_bytes, version);
  if (version == 1)  // no scalar state then: a version 1 file means the initial values
    for (auto& t : saved.tensors) t.scalars = initial_scalars;
  for (const auto& position : saved.schedules) {
    if (version == 1 && position.kind == "random_mix")
      mismatch("it is of format version 1, whose random_mix schedule drew from std::mt19937_64; its draws now "
               "come from SplitMix64 (docs/schedules.md), so it cannot continue that sequence");
  }
  check_fit(saved, here, array_count, initial_scalars.size(), options);
  return {std::move(saved), version};
}

// What a checkpoint restores beyond the hyperparameters, read after its header.
template <class S>
struct SavedState {
  RestoredSettings settings;
  std::vector<SavedTensor<S>> tensors;
  std::vector<long> epochs;  // to seek the schedules to
};

template <class S>
SavedState<S> read_saved_state(ChecksummedReader& reader, const CheckpointHeader& saved, std::uint32_t version,
                               int array_count) {
  SavedState<S> state;
  state.settings = restored_settings(saved, version);
  check_ema_decay(state.settings.ema_decay);
  check_grad_scale<S>(state.settings.grad_scale);
  state.tensors = saved.scalar == "float" ? read_state<float, S>(reader, saved, array_count)
                                          : read_state<double, S>(reader, saved, array_count);
  reader.verify_checksum("the whole checkpoint");
  for (const auto& position : saved.schedules)
    state.epochs.push_back(long(position.epoch));  // checked: below the largest long
  return state;
}

// Returns the epochs to seek the schedules to. All but the hyperparameters is read by the
// functions above, which are compiled once, not once per base × rule combination.
template <class Base, class Rule, class P>
std::vector<long> load(std::istream& in, Optimizer<Base, Rule, P>& opt, const LoadOptions& options,
                       const std::vector<SchedulePosition>& schedules) {
  using Opt = Optimizer<Base, Rule, P>;
  const auto initial = contract::initial_scalars<Base>();
  ChecksummedReader reader(in);
  const auto [saved, version] = read_header(reader, describe(opt, schedules), Base::array_count,
                                            std::vector<double>(initial.begin(), initial.end()), options);
  auto groups = restored_groups<typename Opt::Hyper>(saved, version);
  auto state = read_saved_state<Arithmetic<P>>(reader, saved, version, Base::array_count);
  for (auto& tensor : state.tensors)  // stored as this optimizer stores its state
    for (auto& array : tensor.arrays)
      if (array.storage() != opt.storage().state) array = array.stored_as(opt.storage().state);
  CheckpointAccess<Opt>::restore(opt, groups, state.tensors, state.settings);
  return state.epochs;
}

}  // namespace detail

// Writes the optimizer's state and the schedules' positions. Throws std::runtime_error if the
// stream fails; open files in binary mode.
template <class Base, class Rule, class P, class... Schedules>
void save_checkpoint(std::ostream& out, const Optimizer<Base, Rule, P>& opt, const Schedules&... schedules) {
  detail::save(out, opt, detail::positions_of(schedules...));
}

// Restores the state and schedule positions that save_checkpoint wrote for an optimizer of
// the same base, rule and tensors, given the same kinds of schedules on the same groups.
// Throws std::runtime_error for a stream that is not an intact checkpoint of a format version
// this library reads, std::invalid_argument for one that does not fit; either way the optimizer
// and the schedules are left exactly as they were.
template <class Base, class Rule, class P, class... Schedules>
void load_checkpoint(std::istream& in, Optimizer<Base, Rule, P>& opt, const LoadOptions& options,
                     Schedules&... schedules) {
  const auto epochs = detail::load(in, opt, options, detail::positions_of(schedules...));
  [[maybe_unused]] std::size_t k = 0;
  (schedules.seek(epochs[k++]), ...);  // checked by the load: cannot throw
}

// The same with the default LoadOptions, for every optimizer (Optimizer, AnyOptimizer,
// ShardedOptimizer). Enabled for schedules only, so that a LoadOptions lvalue picks the
// overload that takes one.
template <class Opt, class... Schedules, std::enable_if_t<(std::is_base_of_v<Schedule, Schedules> && ...), int> = 0>
void load_checkpoint(std::istream& in, Opt& opt, Schedules&... schedules) {
  load_checkpoint(in, opt, LoadOptions{}, schedules...);
}

}  // namespace multopt
