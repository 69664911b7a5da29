// A gradient given for some rows of a tensor only (an embedding table's rows that a batch touched,
// as torch's sparse COO gradient holds them), made into what the step walks: each row once, in
// increasing order, with its values summed over its repeats in the order given, in one array.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "conversions.hpp"
#include "storage.hpp"

namespace multopt {

// Where a tensor's gradient is given as rows: `count` row indices in any order, repeats allowed,
// each with `width` values (the tensor is a table of rows of `width` elements).
struct RowIndices {
  const std::int64_t* indices = nullptr;
  std::size_t count = 0;
  std::size_t width = 0;
  bool given() const { return indices || count || width; }
};

// A sparse gradient coalesced. A step keeps one per sparse tensor from call to call, for its room.
template <class S>
class CoalescedRows {
 public:
  // Reads the rows `given` with their values, `given.count` × `given.width` of them, S or a 16-bit
  // type (widened to S). An index outside [0, row_limit) is refused, naming tensor `tensor` of the
  // call, before anything is kept.
  template <class G>
  void coalesce(const RowIndices& given, const G* values, std::size_t row_limit, std::size_t tensor) {
    for (std::size_t k = 0; k < given.count; ++k)
      if (given.indices[k] < 0 || std::uint64_t(given.indices[k]) >= row_limit)
        throw std::invalid_argument("multopt: tensor " + std::to_string(tensor) + " has a gradient row index " + std::to_string(given.indices[k]) +
                                    " (entry " + std::to_string(k) + ") outside [0, " + std::to_string(row_limit) +
                                    "); nothing was stepped");
    sort_by_row(given, row_limit);
    const auto starts_row = [&](std::size_t k) {
      return k == 0 || given.indices[order_[k]] != given.indices[order_[k - 1]];
    };
    rows_.clear();
    for (std::size_t k = 0; k < order_.size(); ++k)
      if (starts_row(k)) rows_.push_back(std::size_t(given.indices[order_[k]]));
    const std::size_t width = given.width;
    values_.resize(rows_.size() * width);
    std::size_t row = 0;
    for (std::size_t k = 0; k < order_.size(); ++k) {
      const G* in = values + order_[k] * width;
      if (starts_row(k)) {
        S* out = values_.data() + row++ * width;
        for (std::size_t i = 0; i < width; ++i) out[i] = widened(in[i]);
      } else {
        S* out = values_.data() + (row - 1) * width;
        for (std::size_t i = 0; i < width; ++i) out[i] = out[i] + widened(in[i]);
      }
    }
  }

  const std::vector<std::size_t>& rows() const { return rows_; }  // in increasing order
  const S* values() const { return values_.data(); }               // rows().size() × width

 private:
  // order_: the entries by row, equal rows in the order given (so that a row's values are summed
  // in a fixed order): a least-significant-digit radix sort, 11 bits a pass, as many passes as
  // row_limit - 1 has bits.
  void sort_by_row(const RowIndices& given, std::size_t row_limit) {
    constexpr std::size_t digit_bits = 11, digits = std::size_t(1) << digit_bits;
    order_.resize(given.count);
    for (std::size_t k = 0; k < given.count; ++k) order_[k] = k;
    scratch_.resize(given.count);
    for (std::size_t shift = 0; shift < 64 && ((row_limit - 1) >> shift) != 0; shift += digit_bits) {
      std::array<std::size_t, digits + 1> starts{};
      const auto digit = [&](std::size_t k) { return (std::uint64_t(given.indices[k]) >> shift) & (digits - 1); };
      for (std::size_t k : order_) ++starts[digit(k) + 1];
      for (std::size_t d = 0; d < digits; ++d) starts[d + 1] += starts[d];
      for (std::size_t k : order_) scratch_[starts[digit(k)]++] = k;
      order_.swap(scratch_);
    }
  }

  template <class G>
  static S widened(G x) {
    if constexpr (is_16bit<G>) return detail::widen(x);
    else return x;
  }

  std::vector<std::size_t> order_, scratch_;  // entries, sorted by row
  std::vector<std::size_t> rows_;
  std::vector<S> values_;
};

}  // namespace multopt
