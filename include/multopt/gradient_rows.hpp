// A gradient given for some rows of a tensor only (an embedding table's rows that a batch touched,
// as torch's sparse COO gradient holds them), made into what the step walks: each row once, in
// increasing order, with its values summed over its repeats in the order given, in one array.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

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
  // type (widened to S). `what` names the tensor in a refusal: an index outside [0, row_limit),
  // which is refused before anything is kept.
  template <class G>
  void coalesce(const RowIndices& given, const G* values, std::size_t row_limit, const std::string& what) {
    for (std::size_t k = 0; k < given.count; ++k)
      if (given.indices[k] < 0 || std::uint64_t(given.indices[k]) >= row_limit)
        throw std::invalid_argument("multopt: " + what + " has a gradient row index " + std::to_string(given.indices[k]) +
                                    " (entry " + std::to_string(k) + ") outside [0, " + std::to_string(row_limit) +
                                    "); nothing was stepped");
    order_.resize(given.count);
    for (std::size_t k = 0; k < given.count; ++k) order_[k] = {given.indices[k], k};
    std::sort(order_.begin(), order_.end());  // equal rows in the order given: a fixed summation order
    rows_.clear();
    for (std::size_t k = 0; k < order_.size(); ++k)
      if (k == 0 || order_[k].first != order_[k - 1].first) rows_.push_back(std::size_t(order_[k].first));
    const std::size_t width = given.width;
    values_.resize(rows_.size() * width);
    S* out = values_.data() - width;
    for (std::size_t k = 0; k < order_.size(); ++k) {
      const G* in = values + order_[k].second * width;
      const bool repeat = k > 0 && order_[k].first == order_[k - 1].first;
      if (!repeat) out += width;
      for (std::size_t i = 0; i < width; ++i) out[i] = repeat ? out[i] + widened(in[i]) : widened(in[i]);
    }
  }

  const std::vector<std::size_t>& rows() const { return rows_; }  // in increasing order
  const S* values() const { return values_.data(); }               // rows().size() × width

 private:
  template <class G>
  static S widened(G x) {
    if constexpr (is_16bit<G>) return detail::widen(x);
    else return x;
  }

  std::vector<std::pair<std::int64_t, std::size_t>> order_;  // (row, entry), sorted
  std::vector<std::size_t> rows_;
  std::vector<S> values_;
};

}  // namespace multopt
