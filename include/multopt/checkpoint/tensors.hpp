// Each tensor's state arrays in a checkpoint (described, read, restored): apart from checkpoint.hpp's format and API.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "../contract.hpp"
#include "../state_array.hpp"
#include "../storage.hpp"
#include "../stored_array.hpp"
#include "../tensor_state.hpp"
#include "encoding.hpp"
#include "header.hpp"

namespace multopt::detail {

// What a checkpoint restores of one tensor, of any base: read by code that is compiled once per
// state type rather than once per base × rule combination.
template <class S>
struct SavedTensor {
  long steps = 0;
  unsigned new_state_arrays = 0;
  std::vector<StoredArray<S>> arrays;  // the base's, in the order of Base::Array
  StateArray<S> master{};
  StateArray<S> ema{};
  std::vector<double> scalars;  // one per scalar state of the base
};

// Swaps a checkpoint's tensors in: compiled once per base, for every rule.
template <class P, class Base>
void restore_tensors(std::vector<TensorState<P, Base>>& tensors, std::vector<SavedTensor<Arithmetic<P>>>& saved) noexcept {
  for (std::size_t k = 0; k < saved.size(); ++k) {
    auto& tensor = tensors[k];
    tensor.steps = saved[k].steps;
    tensor.new_state_arrays = saved[k].new_state_arrays;
    if constexpr (contract::scalar_count<Base> > 0)  // as many: checked
      std::copy(saved[k].scalars.begin(), saved[k].scalars.end(), tensor.scalars.begin());
    for (std::size_t array = 0; array < tensor.arrays.size(); ++array)
      tensor.arrays[array].swap(saved[k].arrays[array]);
    tensor.master.swap(saved[k].master);
    tensor.ema.swap(saved[k].ema);
  }
}

// What a checkpoint's header says of each tensor: compiled once per base, for every rule.
template <class P, class Base>
std::vector<CheckpointHeader::Tensor> describe_tensors(const std::vector<TensorState<P, Base>>& tensors) {
  std::vector<CheckpointHeader::Tensor> described;
  for (const auto& t : tensors) {
    CheckpointHeader::Tensor& d = described.emplace_back();
    d.size = t.size;
    d.group = t.group;
    d.steps = std::uint64_t(t.steps);
    d.array_mask = 0;
    for (std::size_t k = 0; k < t.arrays.size(); ++k)
      if (!t.arrays[k].empty()) d.array_mask |= std::uint64_t(1) << k;
    d.new_state_arrays = t.new_state_arrays;
    d.scalars.assign(t.scalars.begin(), t.scalars.end());
    d.master = t.master.empty() ? 0u : 1u;
    d.ema = t.ema.empty() ? 0u : 1u;
  }
  return described;
}

// The state of a checkpoint of a base with `array_count` state arrays, whose header check_fit passed.
template <class Stored, class S>
std::vector<SavedTensor<S>> read_state(ChecksummedReader& in, const CheckpointHeader& saved, int array_count) {
  std::vector<SavedTensor<S>> tensors(saved.tensors.size());
  for (std::size_t k = 0; k < tensors.size(); ++k) {
    const auto& entry = saved.tensors[k];
    tensors[k].steps = long(entry.steps);
    tensors[k].new_state_arrays = unsigned(entry.new_state_arrays);
    tensors[k].scalars = entry.scalars;
    tensors[k].arrays.resize(std::size_t(array_count));
    for (std::size_t array = 0; array < tensors[k].arrays.size(); ++array) {
      if (!(entry.array_mask >> array & 1u)) continue;
      StateArray<S> values(std::size_t(entry.size));
      read_values<Stored>(in, values.data(), values.size(),
                          "tensor " + std::to_string(k) + "'s state array " + std::to_string(array));
      tensors[k].arrays[array] = StoredArray<S>(std::move(values));
    }
    if (entry.master) {
      tensors[k].master.resize(std::size_t(entry.size));
      read_values<Stored>(in, tensors[k].master.data(), tensors[k].master.size(),
                          "tensor " + std::to_string(k) + "'s master weights");
    }
    if (entry.ema) {
      tensors[k].ema.resize(std::size_t(entry.size));
      read_values<Stored>(in, tensors[k].ema.data(), tensors[k].ema.size(),
                          "tensor " + std::to_string(k) + "'s moving average");
    }
  }
  return tensors;
}

}  // namespace multopt::detail
