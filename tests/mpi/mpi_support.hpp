// What the MPI tests of ShardedOptimizer share (tests/mpi/*_test.cpp): their main, failures
// counted on each rank, a framework's tensors, the calls that attach them, bitwise comparisons,
// and a sharded optimizer beside the plain one it must equal.
#pragma once

#include <multopt/distributed/mpi.hpp>
#include <multopt/multopt.hpp>

#include <cstdio>
#include <cstring>
#include <exception>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "../stateful_hyper.hpp"

namespace mpi_test {

inline int rank_here = 0;
inline int failures = 0;

inline void fail(const std::string& what) {
  ++failures;
  std::fprintf(stderr, "rank %d: FAIL %s\n", rank_here, what.c_str());
}

// The failures of every rank, summed: collective, so that every rank exits alike.
inline int failures_on_every_rank() {
  int all = 0;
  MPI_Allreduce(&failures, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  return all;
}

// The main of the MPI test program `program`: on 2 or more ranks, checks(ranks), then on rank 0
// the line `program on N ranks: ` and passed() where no rank failed, the failures' count
// where any did. An exception on one rank aborts them all: the others would wait forever in its
// next collective. Returns the exit status, the same on every rank.
template <class Checks, class Passed>
int run_on_every_rank(int argc, char** argv, const char* program, Checks checks, Passed passed) {
  MPI_Init(&argc, &argv);
  int ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_here);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  if (ranks < 2) {
    std::fprintf(stderr, "%s: run it under mpirun with 2 or more ranks\n", program);
    MPI_Finalize();
    return 2;
  }
  try {
    checks(ranks);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "rank %d: %s\n", rank_here, error.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  const int all_failures = failures_on_every_rank();
  if (rank_here == 0) {
    const std::string outcome =
        all_failures == 0 ? passed() : std::to_string(all_failures) + " checks failed";
    std::printf("%s on %d ranks: %s\n", program, ranks, outcome.c_str());
  }
  MPI_Finalize();
  return all_failures == 0 ? 0 : 1;
}

inline constexpr int steps = 20;
// 1170 elements: divisible by neither 2 nor 3, nor by a 64-byte block; tensors cut by shards.
inline const std::vector<std::size_t> mixed_sizes{1000, 37, 3, 129, 1};
// Fewer elements than one block: every rank but the last owns none.
inline const std::vector<std::size_t> tiny_sizes{3, 2};

// A framework's tensors: values and gradients in one block each, either back to back (one
// arena) or with a gap after each tensor.
template <class S>
struct Tensors {
  std::vector<std::size_t> sizes, starts;
  std::vector<S> values, grads;

  Tensors(const std::vector<std::size_t>& sizes_, bool arena) : sizes(sizes_) {
    std::size_t end = 0;
    for (std::size_t size : sizes) {
      starts.push_back(end);
      end += size + (arena ? 0 : 1);
    }
    std::mt19937 rng(7);  // the same initial values on every rank
    std::uniform_real_distribution<double> uniform(-1.0, 1.0);
    for (std::size_t k = 0; k < end; ++k) values.push_back(S(uniform(rng)));
    grads.assign(end, S(0));
  }
  S* value(std::size_t k) { return values.data() + starts[k]; }
  S* grad(std::size_t k) { return grads.data() + starts[k]; }

  // This rank's gradients at step `step`: different on every rank.
  void fill_gradients(int step) {
    std::seed_seq seed{rank_here, step};
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> uniform(-1.0, 1.0);
    for (std::size_t k = 0; k < sizes.size(); ++k)
      for (std::size_t i = 0; i < sizes[k]; ++i) grad(k)[i] = S(uniform(rng));
  }
};

// Two groups, tensors alternating between them, a setting changed after registration: the
// same calls on a ShardedOptimizer and on a plain Optimizer.
template <class Optimizer, class S>
void attach(Optimizer& opt, Tensors<S>& tensors, const std::vector<const S*>& grads) {
  using Hyper = typename Optimizer::Hyper;
  opt.set_hyper(test::stateful_hyper<Hyper>(1.0));
  opt.add_group(test::stateful_hyper<Hyper>(0.5));
  for (std::size_t k = 0; k < tensors.sizes.size(); ++k) opt.add_params(tensors.value(k), grads[k], tensors.sizes[k], k % 2);
  opt.set("weight_decay", 0.02, 1);
}

template <class S>
std::vector<const S*> own_gradients(Tensors<S>& tensors) {
  std::vector<const S*> grads;
  for (std::size_t k = 0; k < tensors.sizes.size(); ++k) grads.push_back(tensors.grad(k));
  return grads;
}

template <class Opt>
std::string name_of(const std::vector<std::size_t>& sizes, bool arena) {
  return std::string(Opt::BaseType::name) + "/" + Opt::RuleType::name + "/" +
         (std::is_same_v<typename Opt::Scalar, float> ? "float" : "double") + " over " +
         std::to_string(sizes.size()) + " tensors" + (arena ? " in one arena" : "");
}

template <class S>
bool same_bits(const S* a, const S* b, std::size_t count) {
  return count == 0 || std::memcmp(a, b, count * sizeof(S)) == 0;
}

template <class S>
void expect_same_values(Tensors<S>& got, Tensors<S>& expected, const std::string& what) {
  for (std::size_t k = 0; k < got.sizes.size(); ++k) {
    for (std::size_t i = 0; i < got.sizes[k]; ++i) {
      if (!same_bits(got.value(k) + i, expected.value(k) + i, 1)) {
        fail(what + ": tensor " + std::to_string(k) + " element " + std::to_string(i) + " is " +
             std::to_string(double(got.value(k)[i])) + ", expected " + std::to_string(double(expected.value(k)[i])));
        return;
      }
    }
  }
}

// Every rank's shard of the averaged gradients, concatenated.
template <class Opt>
void gather_averaged(const multopt::ShardedOptimizer<Opt>& opt, std::vector<typename Opt::Scalar>& all) {
  const multopt::ShardLayout& layout = opt.layout();
  std::vector<int> counts, displacements;
  for (int r = 0; r < layout.ranks; ++r) {
    counts.push_back(int(layout.bounds[std::size_t(r) + 1] - layout.bounds[std::size_t(r)]));
    displacements.push_back(int(layout.bounds[std::size_t(r)]));
  }
  const auto& mine = opt.averaged_gradients();
  MPI_Allgatherv(mine.data(), int(mine.size()), multopt::detail::mpi_type<typename Opt::Scalar>(), all.data(),
                 counts.data(), displacements.data(), multopt::detail::mpi_type<typename Opt::Scalar>(),
                 MPI_COMM_WORLD);
}

// A ShardedOptimizer over `tensors` and, as what it must equal, one plain optimizer over a copy
// of them that steps with the averaged gradients, gathered from the sharded step's reduction.
template <class Opt>
struct ShardedAndReference {
  using S = typename Opt::Scalar;
  Tensors<S> tensors, reference_tensors;
  multopt::ShardedOptimizer<Opt> sharded{MPI_COMM_WORLD};
  Opt reference;
  std::vector<S> averaged;

  ShardedAndReference(const std::vector<std::size_t>& sizes, bool arena)
      : tensors(sizes, arena), reference_tensors(sizes, arena) {
    attach(sharded, tensors, own_gradients(tensors));
    averaged.resize(sharded.layout().total());
    std::vector<const S*> averaged_grads;
    for (std::size_t k = 0, offset = 0; k < sizes.size(); offset += sizes[k++])
      averaged_grads.push_back(averaged.data() + offset);
    attach(reference, reference_tensors, averaged_grads);
  }
  ShardedAndReference(const ShardedAndReference&) = delete;  // both optimizers point into it
  ShardedAndReference& operator=(const ShardedAndReference&) = delete;

  // Both step once with the gradients that tensors holds.
  void step() {
    sharded.step();
    gather_averaged(sharded, averaged);
    reference.step();
  }
};

// agreement_test.cpp: the non-finite policies and schedules through a ShardedOptimizer.
void check_agreement_and_schedules(int ranks);

}  // namespace mpi_test
