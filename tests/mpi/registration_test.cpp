// ShardedOptimizer registrations under mpirun (tests/mpi/CMakeLists.txt runs it on 2 and 3
// ranks):
//   - ranks that register the same sizes in another order, other sizes of the same total, or
//     another number of tensors: the first step() throws std::invalid_argument on every rank,
//     naming the first tensor that differs, and changes no parameter; the same registration on
//     every rank steps;
//   - a tensor that would take the total past INT_MAX elements is refused, however large;
//   - a null param or grad is refused, naming which.
// Exits non-zero, on every rank, if any check fails on any rank; each failure names its rank.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "mpi_support.hpp"

using namespace mpi_test;

namespace {

int ranks = 1;

std::string listed(const std::vector<std::size_t>& sizes) {
  std::string text;
  for (std::size_t size : sizes) text += (text.empty() ? "" : ", ") + std::to_string(size);
  return "[" + text + "]";
}

// How many ranks say `yes`.
int ranks_that(bool yes) {
  int mine = yes ? 1 : 0, all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  return all;
}

struct Registration {
  std::string what;
  std::vector<std::size_t> sizes;  // this rank's tensors, in registration order
  std::vector<std::string> words;  // the refusal's message must hold each; none: must step
};

// Registers `r.sizes` on every rank and steps once: refused on every rank with r.words and no
// parameter changed, or (no words) stepped on every rank.
void check(const Registration& r) {
  const std::string what = r.what + " (rank " + std::to_string(rank_here) + ": " + listed(r.sizes) + ")";
  std::vector<std::vector<float>> params, grads;
  multopt::ShardedOptimizer<multopt::MAdam<float>> opt(MPI_COMM_WORLD);
  for (std::size_t size : r.sizes) {
    params.emplace_back(size, 0.5f);
    grads.emplace_back(size, 1.0f);
    opt.add_params(params.back().data(), grads.back().data(), size);
  }
  const auto before = params;
  bool refused = false;
  try {
    opt.step();
  } catch (const std::invalid_argument& error) {
    refused = true;
    const std::string message = error.what();
    if (r.words.empty()) fail(what + " was refused: " + message);
    for (const std::string& word : r.words)
      if (message.find(word) == std::string::npos) fail(what + ": the message does not say '" + word + "': " + message);
    if (params != before) fail(what + ": the refused step changed parameters");
  }
  const int refusing = ranks_that(refused);
  if (!r.words.empty() && refusing != ranks)
    fail(what + " was refused on " + std::to_string(refusing) + " of " + std::to_string(ranks) + " ranks");
  if (r.words.empty() && (refusing != 0 || params == before)) fail(what + " did not step");
}

// Rank 0 registers `first`, the other ranks `rest`.
std::vector<std::size_t> rank0_or(const std::vector<std::size_t>& first, const std::vector<std::size_t>& rest) {
  return rank_here == 0 ? first : rest;
}

void check_registrations() {
  const bool last = rank_here == ranks - 1;
  // Rotated by the rank: on 2 ranks [2, 5, 9] and [5, 9, 2], on 3 also [9, 2, 5].
  std::vector<std::size_t> rotated{2, 5, 9};
  std::rotate(rotated.begin(), rotated.begin() + rank_here % 3, rotated.end());
  const std::string rotated_range = ranks == 2 ? "from 2 to 5 elements" : "from 2 to 9 elements";
  const std::string mine = " registered ";
  const std::vector<Registration> cases = {
      {"the same sizes on every rank", {3, 13}, {}},
      {"one tensor size on every rank", {1000}, {}},
      {"sizes in another order on rank 0", rank0_or({3, 13}, {13, 3}),
       {"tensor 0 (the first that differs) has from 3 to 13 elements", mine + listed(rank0_or({3, 13}, {13, 3}))}},
      {"sizes rotated by the rank", rotated,
       {"tensor 0 (the first that differs) has " + rotated_range, mine + listed(rotated)}},
      {"other sizes of the same total on rank 0", rank0_or({4, 7, 1}, {4, 6, 2}),
       {"tensor 1 (the first that differs) has from 6 to 7 elements"}},
      {"other sizes of the same total on the last rank", last ? std::vector<std::size_t>{8, 8, 9, 7}
                                                              : std::vector<std::size_t>{8, 8, 8, 8},
       {"tensor 2 (the first that differs) has from 8 to 9 elements"}},
      {"one tensor on rank 0 for two elsewhere", rank0_or({6}, {3, 3}),
       {"registered different tensors", "the ranks from 1 to 2"}},
      {"an empty tensor more on the last rank", last ? std::vector<std::size_t>{1, 2, 0}
                                                     : std::vector<std::size_t>{1, 2},
       {"registered different tensors", "the ranks from 2 to 3"}},
  };
  for (const Registration& r : cases) check(r);
}

// The total stays below INT_MAX without wrapping around for any size.
void check_size_limit() {
  float param[10] = {}, grad[10] = {};
  const auto refused = [&](multopt::ShardedOptimizer<multopt::SGD<float>>& opt, std::size_t size) {
    try {
      opt.add_params(param, grad, size);
    } catch (const std::length_error& error) {
      if (std::string(error.what()).find("at most " + std::to_string(INT_MAX) + " elements") == std::string::npos)
        fail("the size limit's message does not name INT_MAX: " + std::string(error.what()));
      return true;
    }
    return false;
  };
  for (const std::size_t huge : {SIZE_MAX, SIZE_MAX - 5, SIZE_MAX - 9, std::size_t(INT_MAX) - 9}) {
    multopt::ShardedOptimizer<multopt::SGD<float>> opt(MPI_COMM_WORLD);
    opt.add_params(param, grad, 10);
    if (!refused(opt, huge)) fail("a tensor of " + std::to_string(huge) + " elements after one of 10 was accepted");
    if (opt.layout().total() != 10) fail("a refused tensor changed the layout");
  }
  multopt::ShardedOptimizer<multopt::SGD<float>> full(MPI_COMM_WORLD);
  full.add_params(param, grad, 10);
  if (refused(full, std::size_t(INT_MAX) - 10)) fail("a total of exactly INT_MAX elements was refused");
  if (!refused(full, 1)) fail("one element past INT_MAX was accepted");
}

// A null param or grad is refused, naming which, unless the tensor is empty.
void check_null_pointers() {
  float param[3] = {}, grad[3] = {};
  multopt::ShardedOptimizer<multopt::SGD<float>> opt(MPI_COMM_WORLD);
  for (const auto& [what, p, g] : {std::tuple<std::string, float*, const float*>{"param", nullptr, grad},
                                   {"grad", param, nullptr}}) {
    try {
      opt.add_params(p, g, 3);
      fail("a null " + what + " was accepted");
    } catch (const std::invalid_argument& error) {
      if (std::string(error.what()) != "multopt: " + what + " is a null pointer")
        fail("the null " + what + "'s message: " + error.what());
    }
  }
  opt.add_params(nullptr, nullptr, 0);
  if (opt.layout().tensor_sizes != std::vector<std::size_t>{0}) fail("an empty tensor without buffers was refused");
}

}  // namespace

int main(int argc, char** argv) {
  return run_on_every_rank(
      argc, argv, "registration_test",
      [](int count) {
        ranks = count;
        check_registrations();
        check_size_limit();
        check_null_pointers();
      },
      [] { return std::string("mismatched registrations refused on every rank, size limit holds"); });
}
