// The header of a checkpoint: everything but its state arrays (the optimizer's kind, every
// group's hyperparameters and the optimizer's settings by name, each tensor's size, group, step
// count and state arrays, the schedules' positions), and its encoding in the versions this
// library reads (docs/checkpoint-format.md).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../storage.hpp"
#include "encoding.hpp"

namespace multopt::detail {

inline constexpr char checkpoint_magic[8] = {'M', 'U', 'L', 'T', 'O', 'P', 'T', '\0'};
// Version 2 added the optimizer's settings (max_grad_norm), the hyperparameters of the stages
// before the base (lr_factor, maximize, decoupled_weight_decay) and, in each tensor's record,
// the count and values of the base's scalar state. Version 3 added the parameters' type (16-bit
// parameters keep float state), the storage mode of 16-bit parameters among the settings, and
// per tensor whether its fp32 master weights follow its state arrays; optimizers of float and
// double parameters still write version 2, which says all they have. Version 4 added the
// settings grad_scale and ema_decay, each saved where it is in use, and per tensor whether its
// moving average of the weights follows its master weights; it is written only where one of
// them is (version_for). Versions 1 to 4 load.
inline constexpr std::uint32_t checkpoint_version = 4;
inline constexpr std::uint64_t all_groups_on_disk = ~std::uint64_t(0);

template <class S>
const char* scalar_name() {
  if constexpr (std::is_same_v<S, Eigen::bfloat16>) return "bf16";
  else if constexpr (std::is_same_v<S, Eigen::half>) return "fp16";
  else return std::is_same_v<S, float> ? "float" : "double";
}

inline std::string group_name(std::uint64_t group) {
  return group == all_groups_on_disk ? "all groups" : "group " + std::to_string(group);
}

// Everything in a checkpoint but the state arrays, which follow it in the order it lists them.
struct CheckpointHeader {
  struct Tensor {
    std::uint64_t size, group, steps, array_mask, new_state_arrays;
    std::vector<double> scalars;  // the base's per-tensor scalar state (NAdam's mu_product); v2
    std::uint64_t master = 0;     // 1: its master weights follow its state arrays; v3
    std::uint64_t ema = 0;        // 1: its moving average of the weights follows them; v4
  };
  struct Position {
    std::string kind;
    std::uint64_t group, epoch;
  };
  std::string scalar, parameter, base, rule;  // scalar: the state's type; parameter: v3 (before, scalar)
  std::vector<std::vector<std::pair<std::string, double>>> groups;  // hyperparameters by name
  std::vector<std::pair<std::string, double>> settings;              // the optimizer's, by name (v2)
  std::vector<Tensor> tensors;
  std::vector<Position> schedules;
};

using SchedulePosition = CheckpointHeader::Position;

// The oldest version that holds all of the header, so that a checkpoint that uses nothing newer
// loads in older multopt too: 4 with a moving average or loss scaling, else 3 for 16-bit
// parameters and 2 for the others.
inline std::uint32_t version_for(const CheckpointHeader& header) {
  bool newest = false;
  for (const auto& setting : header.settings)
    newest = newest || setting.first == "grad_scale" || setting.first == "ema_decay";
  for (const auto& t : header.tensors) newest = newest || t.ema;
  if (newest) return 4;
  return header.parameter != header.scalar ? 3 : 2;
}

// The header in format version 2, 3 or 4.
inline Bytes encode(const CheckpointHeader& header, std::uint32_t version = checkpoint_version) {
  Bytes out;
  put_text(out, header.scalar);
  if (version >= 3) put_text(out, header.parameter);
  put_text(out, header.base);
  put_text(out, header.rule);
  put<std::uint64_t>(out, header.groups.size());
  const auto put_named = [&out](const std::vector<std::pair<std::string, double>>& values) {
    put<std::uint64_t>(out, values.size());
    for (const auto& [name, value] : values) {
      put_text(out, name);
      put(out, bits_of(value));
    }
  };
  for (const auto& group : header.groups) put_named(group);
  put_named(header.settings);
  put<std::uint64_t>(out, header.tensors.size());
  for (const auto& t : header.tensors) {
    for (std::uint64_t field : {t.size, t.group, t.steps, t.array_mask, t.new_state_arrays}) put(out, field);
    if (version >= 3) put(out, t.master);
    if (version >= 4) put(out, t.ema);
    put<std::uint64_t>(out, t.scalars.size());
    for (double value : t.scalars) put(out, bits_of(value));
  }
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

inline CheckpointHeader decode(const Bytes& bytes, std::uint32_t version) {
  HeaderParser in(bytes);
  CheckpointHeader header;
  header.scalar = in.text();
  header.parameter = version >= 3 ? in.text() : header.scalar;
  header.base = in.text();
  header.rule = in.text();
  const auto read_named = [&in](std::vector<std::pair<std::string, double>>& values) {
    values.resize(in.count());
    for (auto& [name, value] : values) {
      name = in.text();
      value = in.real();
    }
  };
  header.groups.resize(in.count());
  for (auto& group : header.groups) read_named(group);
  if (version >= 2) read_named(header.settings);
  header.tensors.resize(in.count());
  for (auto& t : header.tensors) {
    for (std::uint64_t* field : {&t.size, &t.group, &t.steps, &t.array_mask, &t.new_state_arrays})
      *field = in.number();
    if (version >= 3) t.master = in.number();
    if (version >= 4) t.ema = in.number();
    if (version >= 2) {
      t.scalars.resize(in.count());
      for (double& value : t.scalars) value = in.real();
    }
  }
  header.schedules.resize(in.count());
  for (auto& s : header.schedules) {
    s.kind = in.text();
    s.group = in.number();
    s.epoch = in.number();
  }
  in.finish();
  return header;
}

}  // namespace multopt::detail
