// One of a base's state arrays as Optimizer holds it: stored as the step computes, or, for a
// step computed in float, in 16 bits (StateStorage, docs/mixed-precision.md). Values go in
// rounded to nearest even and come out widened, exactly.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

#include "conversions.hpp"
#include "state_array.hpp"
#include "storage.hpp"

namespace multopt {

template <class S>
class StoredArray {
  static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>);

 public:
  StoredArray() = default;
  // `values` as they are (stored as computed).
  explicit StoredArray(StateArray<S> values) : wide_(std::move(values)) {}
  // `size` values from `values`, or `size` copies of `value`, stored as `storage` (a 16-bit one
  // for S = float alone: check_storage).
  StoredArray(const S* values, std::size_t size, StateStorage storage) : storage_(storage) {
    if (storage == StateStorage::compute) {
      wide_.assign(values, values + size);
    } else if constexpr (std::is_same_v<S, float>) {
      if (storage == StateStorage::bfloat16) bf16_.resize(size);
      else fp16_.resize(size);
      narrow_state(values, pointer(), 0, size, false, 0, 0);
    }
  }
  StoredArray(std::size_t size, S value, StateStorage storage) : storage_(storage) {
    if (storage == StateStorage::compute) wide_.assign(size, value);
    else *this = StoredArray(StateArray<S>(size, value).data(), size, storage);
  }

  bool empty() const { return size() == 0; }
  std::size_t size() const { return wide_.size() + bf16_.size() + fp16_.size(); }  // one of them holds it
  StateStorage storage() const { return storage_; }
  // Bytes of memory the values take.
  std::size_t bytes() const { return wide_.size() * sizeof(S) + (bf16_.size() + fp16_.size()) * 2; }
  // The values where they are stored as computed, else (and while empty) null.
  const S* data() const { return wide_.empty() ? nullptr : wide_.data(); }
  S* data() { return wide_.empty() ? nullptr : wide_.data(); }
  // The values stored as computed, moved out.
  StateArray<S> take_computed() noexcept { return std::move(wide_); }
  // Where the step finds them (null while empty).
  StatePointer<S> pointer() {
    if constexpr (std::is_same_v<S, float>) {
      if (!bf16_.empty()) return bf16_.data();
      if (!fp16_.empty()) return fp16_.data();
    }
    return wide_.empty() ? nullptr : wide_.data();
  }
  // The values, widened.
  StateArray<S> values() const {
    if constexpr (std::is_same_v<S, float>) {
      StateArray<S> wide(size());
      if (!bf16_.empty()) Storage<Eigen::bfloat16>::widen(bf16_.data(), wide.data(), wide.size());
      else if (!fp16_.empty()) Storage<Eigen::half>::widen(fp16_.data(), wide.data(), wide.size());
      else return wide_;
      return wide;
    }
    return wide_;
  }
  // The same values stored as `storage` (rounded to nearest where it is 16-bit).
  StoredArray stored_as(StateStorage storage) const {
    if (storage == storage_) return *this;
    const StateArray<S> wide = values();
    return StoredArray(wide.data(), wide.size(), storage);
  }

  void swap(StoredArray& other) noexcept {
    wide_.swap(other.wide_);
    bf16_.swap(other.bf16_);
    fp16_.swap(other.fp16_);
    std::swap(storage_, other.storage_);
  }

 private:
  StateArray<S> wide_;
  StateArray<Eigen::bfloat16> bf16_;
  StateArray<Eigen::half> fp16_;
  StateStorage storage_ = StateStorage::compute;
};

}  // namespace multopt
