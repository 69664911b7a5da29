// A sparse gradient's rows coalesced (gradient_rows.hpp): each row once, in increasing order, its
// repeats summed in the order given; an index out of range refused before anything is kept.
#include <multopt/gradient_rows.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <stdexcept>
#include <vector>

#include <Eigen/Core>

TEST_CASE("coalesced rows: sorted, each once, repeats summed in the order given", "[gradient_rows]") {
  const std::vector<std::int64_t> rows = {5, 1, 5, 0, 5};
  const std::vector<double> values = {1, 2, 10, 20, 100, 200, 0.5, 0.25, 1e16, 3};
  multopt::CoalescedRows<double> coalesced;
  coalesced.coalesce(multopt::RowIndices{rows.data(), rows.size(), 2}, values.data(), 6, 0);
  CHECK(coalesced.rows() == std::vector<std::size_t>{0, 1, 5});
  const double* v = coalesced.values();
  CHECK(v[0] == 0.5);
  CHECK(v[1] == 0.25);
  CHECK(v[2] == 10);
  CHECK(v[3] == 20);
  // Row 5: 1 + 100 + 1e16 in that order (1e16 + 101 rounds to 1e16 + 100, as torch's sum does).
  CHECK(v[4] == (1.0 + 100.0) + 1e16);
  CHECK(v[5] == (2.0 + 200.0) + 3.0);
}

TEST_CASE("coalesced rows refuse an index out of range and keep what they had", "[gradient_rows]") {
  const std::vector<std::int64_t> first = {2};
  const std::vector<float> first_values = {7, 8};
  multopt::CoalescedRows<float> coalesced;
  coalesced.coalesce(multopt::RowIndices{first.data(), 1, 2}, first_values.data(), 3, 0);
  for (const std::int64_t bad : {std::int64_t(-1), std::int64_t(3)}) {
    const std::vector<std::int64_t> rows = {0, bad};
    const std::vector<float> values = {1, 2, 3, 4};
    CHECK_THROWS_WITH(
        coalesced.coalesce(multopt::RowIndices{rows.data(), 2, 2}, values.data(), 3, 4),
        "multopt: tensor 4 has a gradient row index " + std::to_string(bad) + " (entry 1) outside [0, 3); nothing was stepped");
    CHECK(coalesced.rows() == std::vector<std::size_t>{2});
    CHECK(coalesced.values()[0] == 7);
    CHECK(coalesced.values()[1] == 8);
  }
}

TEST_CASE("coalesced rows of 16-bit values are summed in float", "[gradient_rows]") {
  const std::vector<std::int64_t> rows = {1, 1};
  const std::vector<Eigen::bfloat16> values = {Eigen::bfloat16(256.0f), Eigen::bfloat16(1.0f)};
  multopt::CoalescedRows<float> coalesced;
  coalesced.coalesce(multopt::RowIndices{rows.data(), 2, 1}, values.data(), 2, 0);
  CHECK(coalesced.rows() == std::vector<std::size_t>{1});
  CHECK(coalesced.values()[0] == 257.0f);  // bfloat16 itself would round 257 to 256
}
