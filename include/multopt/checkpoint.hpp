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
#include <ostream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "optimizer.hpp"
#include "schedules.hpp"

namespace multopt {

// What load_checkpoint may do beyond restoring the saved state exactly.
struct LoadOptions {
  // Loads a double checkpoint into a float optimizer, rounding each state value to the
  // nearest float. Off by default, because the rounded state no longer continues the saved
  // trajectory. (A float checkpoint always loads into a double optimizer: widening is exact.)
  bool allow_narrowing = false;
};

// The optimizer's private state, for the checkpoint functions below.
template <class Base, class Rule, class S>
struct CheckpointAccess<Optimizer<Base, Rule, S>> {
  using Opt = Optimizer<Base, Rule, S>;
  using StateArray = typename Opt::StateArray;

  // What a checkpoint restores of one tensor.
  struct TensorState {
    long steps = 0;
    unsigned fresh_slots = 0;
    std::array<StateArray, Base::slot_count> slots{};
  };

  static const std::vector<typename Opt::Hyper>& groups(const Opt& opt) { return opt.groups_; }
  static const auto& tensors(const Opt& opt) { return opt.tensors_; }

  // Swaps the new state in. It cannot throw, so a load commits all of its state or none.
  static void restore(Opt& opt, std::vector<typename Opt::Hyper>& groups,
                      std::vector<TensorState>& tensors) noexcept {
    opt.groups_.swap(groups);
    for (std::size_t k = 0; k < tensors.size(); ++k) {
      auto& tensor = opt.tensors_[k];
      tensor.steps = tensors[k].steps;
      tensor.fresh_slots = tensors[k].fresh_slots;
      for (std::size_t slot = 0; slot < tensor.slots.size(); ++slot)
        tensor.slots[slot].swap(tensors[k].slots[slot]);
    }
  }
};

namespace detail {

static_assert(std::numeric_limits<float>::is_iec559 && std::numeric_limits<double>::is_iec559,
              "checkpoints store IEEE-754 binary32 and binary64 values");

inline constexpr char checkpoint_magic[8] = {'M', 'U', 'L', 'T', 'O', 'P', 'T', '\0'};
inline constexpr std::uint32_t checkpoint_version = 1;
inline constexpr std::uint64_t all_groups_on_disk = ~std::uint64_t(0);
inline constexpr std::size_t io_buffer_bytes = std::size_t(1) << 16;

// CRC-32 as zlib, PNG and Ethernet compute it (reflected polynomial 0xEDB88320), so that
// any zlib binding can check a checkpoint. It detects every burst of up to 32 flipped bits.
inline constexpr std::array<std::uint32_t, 256> crc32_table = [] {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t byte = 0; byte < 256; ++byte) {
    std::uint32_t crc = byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1u) ? 0xEDB88320u : 0u);
    table[byte] = crc;
  }
  return table;
}();

class Crc32 {
 public:
  void update(const unsigned char* bytes, std::size_t count) {
    for (std::size_t k = 0; k < count; ++k) state_ = crc32_table[(state_ ^ bytes[k]) & 0xFFu] ^ (state_ >> 8);
  }
  std::uint32_t value() const { return ~state_; }

 private:
  std::uint32_t state_ = 0xFFFFFFFFu;
};

using Bytes = std::vector<unsigned char>;

// Fields are little-endian whatever the machine's byte order; reals are their IEEE-754 bits.
template <class U>
void put(Bytes& out, U value) {
  static_assert(std::is_unsigned_v<U>);
  for (std::size_t k = 0; k < sizeof(U); ++k) out.push_back(static_cast<unsigned char>(value >> (8 * k)));
}

template <class U>
U get(const unsigned char* bytes) {
  U value = 0;
  for (std::size_t k = 0; k < sizeof(U); ++k) value = U(value | U(bytes[k]) << (8 * k));
  return value;
}

template <class F>
using BitsOf = std::conditional_t<sizeof(F) == 4, std::uint32_t, std::uint64_t>;

template <class F>
BitsOf<F> bits_of(F value) {
  BitsOf<F> bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

template <class F>
F from_bits(BitsOf<F> bits) {
  F value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

inline void put_text(Bytes& out, const std::string& text) {
  put<std::uint64_t>(out, text.size());
  out.insert(out.end(), text.begin(), text.end());
}

template <class S>
const char* scalar_name() {
  return std::is_same_v<S, float> ? "float" : "double";
}

inline std::string group_name(std::uint64_t group) {
  return group == all_groups_on_disk ? "all groups" : "group " + std::to_string(group);
}

// Everything in a checkpoint but the state arrays, which follow it in the order it lists them.
struct CheckpointHeader {
  struct Tensor {
    std::uint64_t size, group, steps, slot_mask, fresh_slots;
  };
  struct Position {
    std::string kind;
    std::uint64_t group, epoch;
  };
  std::string scalar, base, rule;
  std::vector<std::vector<std::pair<std::string, double>>> groups;  // hyperparameters by name
  std::vector<Tensor> tensors;
  std::vector<Position> schedules;
};

inline Bytes encode(const CheckpointHeader& header) {
  Bytes out;
  put_text(out, header.scalar);
  put_text(out, header.base);
  put_text(out, header.rule);
  put<std::uint64_t>(out, header.groups.size());
  for (const auto& group : header.groups) {
    put<std::uint64_t>(out, group.size());
    for (const auto& [name, value] : group) {
      put_text(out, name);
      put(out, bits_of(value));
    }
  }
  put<std::uint64_t>(out, header.tensors.size());
  for (const auto& t : header.tensors)
    for (std::uint64_t field : {t.size, t.group, t.steps, t.slot_mask, t.fresh_slots}) put(out, field);
  put<std::uint64_t>(out, header.schedules.size());
  for (const auto& s : header.schedules) {
    put_text(out, s.kind);
    put(out, s.group);
    put(out, s.epoch);
  }
  return out;
}

// For a header that passed its checksum yet breaks the format: its writer is at fault, not
// damage on the way.
[[noreturn]] inline void malformed(const std::string& what) {
  throw std::runtime_error("multopt: the checkpoint's header is malformed: " + what +
                           " (its checksum is right, so whatever wrote it does not follow the format)");
}

// Reads a header's fields, which must fill it exactly.
class HeaderParser {
 public:
  explicit HeaderParser(const Bytes& bytes) : bytes_(bytes) {}

  std::uint64_t number() { return get<std::uint64_t>(take(8)); }
  double real() { return from_bits<double>(number()); }
  std::string text() {
    const std::uint64_t length = number();
    const unsigned char* begin = take(length);
    return std::string(begin, begin + length);
  }
  // A count of entries of at least 8 bytes each: bounded by what is left, so a bad count
  // cannot make a huge allocation.
  std::size_t count() {
    const std::uint64_t n = number();
    if (n > (bytes_.size() - at_) / 8) malformed("a count exceeds what the header can hold");
    return std::size_t(n);
  }
  void finish() const {
    if (at_ != bytes_.size()) malformed("it is longer than its fields");
  }

 private:
  const unsigned char* take(std::uint64_t n) {
    if (n > bytes_.size() - at_) malformed("a field runs past its end");
    at_ += std::size_t(n);
    return bytes_.data() + at_ - n;
  }
  const Bytes& bytes_;
  std::size_t at_ = 0;
};

inline CheckpointHeader decode(const Bytes& bytes) {
  HeaderParser in(bytes);
  CheckpointHeader header;
  header.scalar = in.text();
  header.base = in.text();
  header.rule = in.text();
  header.groups.resize(in.count());
  for (auto& group : header.groups) {
    group.resize(in.count());
    for (auto& [name, value] : group) {
      name = in.text();
      value = in.real();
    }
  }
  header.tensors.resize(in.count());
  for (auto& t : header.tensors)
    for (std::uint64_t* field : {&t.size, &t.group, &t.steps, &t.slot_mask, &t.fresh_slots})
      *field = in.number();
  header.schedules.resize(in.count());
  for (auto& s : header.schedules) {
    s.kind = in.text();
    s.group = in.number();
    s.epoch = in.number();
  }
  in.finish();
  return header;
}

// Writes to the stream, keeping the CRC-32 of everything written so far.
class ChecksummedWriter {
 public:
  explicit ChecksummedWriter(std::ostream& out) : out_(out) {}
  void write(const Bytes& bytes) {
    crc_.update(bytes.data(), bytes.size());
    out_.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  }
  void write_checksum() {
    Bytes bytes;
    put(bytes, crc_.value());
    write(bytes);
  }

 private:
  std::ostream& out_;
  Crc32 crc_;
};

// Reads from the stream, keeping the CRC-32 of everything read so far and where it is.
class ChecksummedReader {
 public:
  explicit ChecksummedReader(std::istream& in) : in_(in) {}

  // Reads exactly `count` bytes, or reports that the stream ended inside `what`.
  void read(unsigned char* out, std::size_t count, const std::string& what) {
    in_.read(reinterpret_cast<char*>(out), std::streamsize(count));
    const auto got = std::size_t(in_.gcount());
    offset_ += got;
    if (got != count) {
      throw std::runtime_error("multopt: the checkpoint is truncated: the stream ends after " +
                               std::to_string(offset_) + " bytes, inside " + what);
    }
    crc_.update(out, count);
  }
  template <class U>
  U read(const std::string& what) {
    unsigned char bytes[sizeof(U)];
    read(bytes, sizeof bytes, what);
    return get<U>(bytes);
  }
  // Reads a CRC-32 and compares it with that of every byte before it.
  void verify_checksum(const std::string& what) {
    const std::uint32_t expected = crc_.value();
    if (read<std::uint32_t>("the checksum of " + what) != expected) {
      throw std::runtime_error("multopt: the checkpoint is corrupted: the checksum of " + what +
                               " does not match its bytes");
    }
  }

 private:
  std::istream& in_;
  Crc32 crc_;
  std::uint64_t offset_ = 0;
};

template <class S>
void write_values(ChecksummedWriter& out, const S* values, std::size_t count) {
  const std::size_t per_buffer = io_buffer_bytes / sizeof(S);
  Bytes buffer;
  buffer.reserve(std::min(count, per_buffer) * sizeof(S));
  for (std::size_t begin = 0; begin < count; begin += per_buffer) {
    buffer.clear();
    for (std::size_t k = begin; k < std::min(count, begin + per_buffer); ++k) put(buffer, bits_of(values[k]));
    out.write(buffer);
  }
}

// Reads values stored as Stored into S: exact, but for double to float, which rounds to
// nearest and refuses a finite value beyond float's range (converting it is undefined).
template <class Stored, class S>
void read_values(ChecksummedReader& in, S* values, std::size_t count, const std::string& what) {
  const std::size_t per_buffer = io_buffer_bytes / sizeof(Stored);
  Bytes buffer(std::min(count, per_buffer) * sizeof(Stored));
  for (std::size_t begin = 0; begin < count; begin += per_buffer) {
    const std::size_t n = std::min(count - begin, per_buffer);
    in.read(buffer.data(), n * sizeof(Stored), what);
    for (std::size_t k = 0; k < n; ++k) {
      const Stored value = from_bits<Stored>(get<BitsOf<Stored>>(buffer.data() + k * sizeof(Stored)));
      if constexpr (sizeof(Stored) > sizeof(S)) {
        if (std::isfinite(value) && std::abs(value) > Stored(std::numeric_limits<S>::max()))
          throw std::invalid_argument("multopt: " + what + " holds a value beyond the range of float");
      }
      values[begin + k] = S(value);
    }
  }
}

// The header of a checkpoint of this optimizer and these schedules.
template <class Base, class Rule, class S, class... Schedules>
CheckpointHeader describe(const Optimizer<Base, Rule, S>& opt, const Schedules&... schedules) {
  static_assert((std::is_base_of_v<Schedule, Schedules> && ...),
                "checkpoints take schedules (classes derived from multopt::Schedule) after the optimizer");
  using Access = CheckpointAccess<Optimizer<Base, Rule, S>>;
  CheckpointHeader header{scalar_name<S>(), Base::name, Rule::name, {}, {}, {}};
  for (const auto& hyper : Access::groups(opt)) {
    auto& fields = header.groups.emplace_back();
    Optimizer<Base, Rule, S>::Hyper::fields(
        hyper, [&](const char* name, const auto& value) { fields.emplace_back(name, double(value)); });
  }
  for (const auto& t : Access::tensors(opt)) {
    std::uint64_t slot_mask = 0;
    for (std::size_t k = 0; k < t.slots.size(); ++k)
      if (!t.slots[k].empty()) slot_mask |= std::uint64_t(1) << k;
    header.tensors.push_back({t.size, t.group, std::uint64_t(t.steps), slot_mask, t.fresh_slots});
  }
  (header.schedules.push_back({Schedules::kind,
                               schedules.group() == all_groups ? all_groups_on_disk : schedules.group(),
                               std::uint64_t(schedules.epoch())}),
   ...);
  return header;
}

[[noreturn]] inline void mismatch(const std::string& what) {
  throw std::invalid_argument("multopt: the checkpoint does not fit: " + what);
}

template <class T>
std::string counted(T count, const char* noun) {
  return std::to_string(count) + " " + noun + (count == 1 ? "" : "s");
}

// Refuses a checkpoint whose structure differs from `here`, that of the optimizer and
// schedules it would load into, and one with values no writer of this format produces.
template <class Base>
void check_fit(const CheckpointHeader& saved, const CheckpointHeader& here, const LoadOptions& options) {
  if (saved.base != here.base || saved.rule != here.rule) {
    mismatch("it is of " + saved.base + " with the " + saved.rule + " rule, the optimizer is " + here.base +
             " with the " + here.rule + " rule");
  }
  if (saved.scalar != "float" && saved.scalar != "double")
    malformed("unknown scalar type '" + saved.scalar + "'");
  if (saved.scalar == "double" && here.scalar == "float" && !options.allow_narrowing) {
    mismatch(
        "it holds double state and the optimizer steps float; rounding the state changes the "
        "trajectory, so it needs LoadOptions::allow_narrowing");
  }
  if (saved.groups.size() != here.groups.size()) {
    mismatch("it has " + counted(saved.groups.size(), "parameter group") + ", the optimizer " +
             std::to_string(here.groups.size()));
  }
  if (saved.tensors.size() != here.tensors.size()) {
    mismatch("it has " + counted(saved.tensors.size(), "tensor") + ", the optimizer " +
             std::to_string(here.tensors.size()));
  }
  constexpr std::uint64_t slot_masks = (std::uint64_t(1) << Base::slot_count) - 1;
  // Step counts and epochs are longs, and the next step or epoch adds one: the largest long
  // would overflow there.
  constexpr auto most = std::uint64_t(std::numeric_limits<long>::max()) - 1;
  const auto beyond = [&](std::uint64_t value) {
    return " " + std::to_string(value) + " (at most " + std::to_string(most) +
           ", so that the next can be counted)";
  };
  for (std::size_t k = 0; k < saved.tensors.size(); ++k) {
    const auto& s = saved.tensors[k];
    const auto& h = here.tensors[k];
    const std::string tensor = "tensor " + std::to_string(k);
    if (s.size != h.size)
      mismatch("its " + tensor + " has " + counted(s.size, "element") + ", the optimizer's " +
               std::to_string(h.size));
    if (s.group != h.group)
      mismatch("its " + tensor + " is in group " + std::to_string(s.group) + ", the optimizer's in group " +
               std::to_string(h.group));
    if (((s.slot_mask | s.fresh_slots) & ~slot_masks) != 0)
      malformed(tensor + " has state slots the " + saved.base + " base does not have");
    if (s.steps > most) malformed(tensor + " has an impossible step count" + beyond(s.steps));
  }
  if (saved.schedules.size() != here.schedules.size()) {
    mismatch("it has " + counted(saved.schedules.size(), "schedule position") + ", " +
             std::to_string(here.schedules.size()) + " schedules were passed");
  }
  for (std::size_t k = 0; k < saved.schedules.size(); ++k) {
    const auto& s = saved.schedules[k];
    const auto& h = here.schedules[k];
    if (s.kind != h.kind || s.group != h.group) {
      mismatch("its schedule " + std::to_string(k) + " is " + s.kind + " on " + group_name(s.group) +
               ", the one passed " + h.kind + " on " + group_name(h.group));
    }
    if (s.epoch > most)
      malformed("schedule " + std::to_string(k) + " is at an impossible epoch" + beyond(s.epoch));
  }
}

// Every group's hyperparameters, validated; each must be saved once by name.
template <class Hyper>
std::vector<Hyper> restored_groups(const CheckpointHeader& saved) {
  const auto names = Hyper::names();
  std::vector<Hyper> groups(saved.groups.size());
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const auto& fields = saved.groups[g];
    groups[g].set_all(fields);  // refuses unknown names and invalid values
    for (const auto& name : names) {
      const auto count =
          std::count_if(fields.begin(), fields.end(), [&](const auto& f) { return f.first == name; });
      if (count != 1) {
        malformed("group " + std::to_string(g) + " has hyperparameter '" + name + "' " + std::to_string(count) +
                  " times instead of once");
      }
    }
  }
  return groups;
}

template <class Stored, class Opt>
std::vector<typename CheckpointAccess<Opt>::TensorState> read_state(ChecksummedReader& in,
                                                                    const CheckpointHeader& saved) {
  std::vector<typename CheckpointAccess<Opt>::TensorState> tensors(saved.tensors.size());
  for (std::size_t k = 0; k < tensors.size(); ++k) {
    const auto& entry = saved.tensors[k];
    tensors[k].steps = long(entry.steps);
    tensors[k].fresh_slots = unsigned(entry.fresh_slots);
    for (std::size_t slot = 0; slot < tensors[k].slots.size(); ++slot) {
      if (!(entry.slot_mask >> slot & 1u)) continue;
      auto& values = tensors[k].slots[slot];
      values.resize(std::size_t(entry.size));
      read_values<Stored>(in, values.data(), values.size(),
                          "tensor " + std::to_string(k) + "'s state slot " + std::to_string(slot));
    }
  }
  return tensors;
}

}  // namespace detail

// Writes the optimizer's state and the schedules' positions. Throws std::runtime_error if the
// stream fails; open files in binary mode.
template <class Base, class Rule, class S, class... Schedules>
void save_checkpoint(std::ostream& out, const Optimizer<Base, Rule, S>& opt, const Schedules&... schedules) {
  using namespace detail;
  using Access = CheckpointAccess<Optimizer<Base, Rule, S>>;
  const Bytes header = encode(describe(opt, schedules...));
  Bytes preamble(std::begin(checkpoint_magic), std::end(checkpoint_magic));
  put(preamble, checkpoint_version);
  put<std::uint64_t>(preamble, header.size());
  ChecksummedWriter writer(out);
  writer.write(preamble);
  writer.write(header);
  writer.write_checksum();
  for (const auto& t : Access::tensors(opt))
    for (const auto& values : t.slots) write_values(writer, values.data(), values.size());
  writer.write_checksum();
  if (!out) throw std::runtime_error("multopt: writing the checkpoint failed");
}

// Restores the state and schedule positions that save_checkpoint wrote for an optimizer of
// the same base, rule and tensors, given the same kinds of schedules on the same groups.
// Throws std::runtime_error for a stream that is not an intact checkpoint of this format
// version, std::invalid_argument for one that does not fit; either way the optimizer and the
// schedules are left exactly as they were.
template <class Base, class Rule, class S, class... Schedules>
void load_checkpoint(std::istream& in, Optimizer<Base, Rule, S>& opt, const LoadOptions& options,
                     Schedules&... schedules) {
  using namespace detail;
  using Opt = Optimizer<Base, Rule, S>;
  ChecksummedReader reader(in);
  char magic[sizeof checkpoint_magic];
  reader.read(reinterpret_cast<unsigned char*>(magic), sizeof magic, "the magic bytes");
  if (!std::equal(std::begin(magic), std::end(magic), std::begin(checkpoint_magic)))
    throw std::runtime_error(
        "multopt: this is not a multopt checkpoint: it does not begin with \"MULTOPT\\0\"");
  const auto version = reader.read<std::uint32_t>("the format version");
  if (version != checkpoint_version) {
    throw std::runtime_error("multopt: the checkpoint has format version " + std::to_string(version) +
                             "; this multopt reads version " + std::to_string(checkpoint_version));
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
  const CheckpointHeader saved = decode(header_bytes);
  check_fit<Base>(saved, describe(opt, schedules...), options);
  auto groups = restored_groups<typename Opt::Hyper>(saved);
  auto tensors =
      saved.scalar == "float" ? read_state<float, Opt>(reader, saved) : read_state<double, Opt>(reader, saved);
  reader.verify_checksum("the whole checkpoint");

  CheckpointAccess<Opt>::restore(opt, groups, tensors);
  [[maybe_unused]] std::size_t k = 0;
  (schedules.seek(long(saved.schedules[k++].epoch)), ...);  // checked: cannot throw
}

// (Enabled for schedules only, so that a LoadOptions lvalue picks the overload above.)
template <class Base, class Rule, class S, class... Schedules,
          std::enable_if_t<(std::is_base_of_v<Schedule, Schedules> && ...), int> = 0>
void load_checkpoint(std::istream& in, Optimizer<Base, Rule, S>& opt, Schedules&... schedules) {
  load_checkpoint(in, opt, LoadOptions{}, schedules...);
}

}  // namespace multopt
