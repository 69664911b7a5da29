// ShardedOptimizer under mpirun (tests/mpi/CMakeLists.txt runs it on 2 and 3 ranks). For every
// base, and every rule on some base (Representatives below), in float and double:
//   - 20 steps with different gradients on every rank leave every rank's parameters, and this
//     rank's state, bit-identical to one plain optimizer stepped over the whole tensors with
//     the averaged gradients, which are gathered from the reduction itself (MPI chooses its own
//     summation order); tensor sizes that no rank count divides, tensors in one arena or apart,
//     and so few elements that some ranks own none;
//   - 10 steps, a checkpoint, 10 more steps in a fresh optimizer equal 20 straight steps.
// Then: the shard bounds are balanced; checkpoints of another rank count, of another rank, of
// a single-process optimizer and damaged ones are refused and change nothing; and the checks
// of agreement_test.cpp (non-finite gradients, schedules).
// Exits non-zero, on every rank, if any check fails on any rank; each failure names its rank.
#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "mpi_support.hpp"

using namespace mpi_test;

namespace {

// This rank's state arrays, piece by piece, against `expected`, where expected(p, array) points
// at the first element of piece p in that array (or is null).
template <class Opt, class Expected>
void expect_same_state(const multopt::ShardedOptimizer<Opt>& opt, const Expected& expected, const std::string& what) {
  const auto& pieces = opt.layout().pieces;
  for (std::size_t p = 0; p < pieces.size(); ++p) {
    for (int array = 0; array < Opt::BaseType::array_count; ++array) {
      const auto* mine = opt.inner().state(p, array);
      const auto* theirs = expected(p, array);
      if ((mine == nullptr) != (theirs == nullptr) || (mine && !same_bits(mine, theirs, pieces[p].size))) {
        fail(what + ": state array " + std::to_string(array) + " of tensor " + std::to_string(pieces[p].tensor) +
             " differs");
        return;
      }
    }
  }
}

template <class Opt>
void check_against_single_process(const std::vector<std::size_t>& sizes, bool arena) {
  using S = typename Opt::Scalar;
  const std::string what = name_of<Opt>(sizes, arena);
  ShardedAndReference<Opt> both(sizes, arena);
  const multopt::ShardedOptimizer<Opt>& sharded = both.sharded;
  for (int step = 0; step < steps; ++step) {
    both.tensors.fill_gradients(step);
    both.step();
  }
  expect_same_values(both.tensors, both.reference_tensors, what);
  expect_same_state(sharded, [&](std::size_t p, int index) {
    const multopt::ShardLayout::Piece& piece = sharded.layout().pieces[p];
    const S* array = both.reference.state(piece.tensor, index);
    return array ? array + piece.offset : nullptr;
  }, what);
}

template <class Opt>
void check_checkpoint_resumes(const std::vector<std::size_t>& sizes) {
  using S = typename Opt::Scalar;
  const std::string what = name_of<Opt>(sizes, false) + ", resumed from a checkpoint";
  Tensors<S> straight_tensors(sizes, false), resumed_tensors(sizes, false);
  multopt::ShardedOptimizer<Opt> straight(MPI_COMM_WORLD), first_half(MPI_COMM_WORLD);
  attach(straight, straight_tensors, own_gradients(straight_tensors));
  attach(first_half, resumed_tensors, own_gradients(resumed_tensors));
  for (int step = 0; step < steps; ++step) {
    straight_tensors.fill_gradients(step);
    straight.step();
  }
  for (int step = 0; step < steps / 2; ++step) {
    resumed_tensors.fill_gradients(step);
    first_half.step();
  }
  std::stringstream checkpoint;
  multopt::save_checkpoint(checkpoint, first_half);

  // The model's own checkpoint: a copy of its tensors, which a fresh optimizer steps on.
  Tensors<S> restored_tensors = resumed_tensors;
  multopt::ShardedOptimizer<Opt> second_half(MPI_COMM_WORLD);
  attach(second_half, restored_tensors, own_gradients(restored_tensors));
  multopt::load_checkpoint(checkpoint, second_half);
  for (int step = steps / 2; step < steps; ++step) {
    restored_tensors.fill_gradients(step);
    second_half.step();
  }
  expect_same_values(restored_tensors, straight_tensors, what);
  expect_same_state(second_half, [&](std::size_t p, int array) { return straight.inner().state(p, array); }, what);
}

// All shards but the last are whole 64-byte blocks; no two differ by more than one block.
template <class S>
void check_bounds_balanced() {
  constexpr std::size_t block = 64 / sizeof(S);
  for (int ranks = 1; ranks <= 7; ++ranks) {
    for (std::size_t total : {0, 1, 15, 16, 17, 100, 1170, 4096, 1000003}) {
      const std::vector<std::size_t> bounds = multopt::shard_bounds<S>(total, ranks);
      const std::string what = "shard_bounds(" + std::to_string(total) + ", " + std::to_string(ranks) + ")";
      if (bounds.size() != std::size_t(ranks) + 1 || bounds.front() != 0 || bounds.back() != total) {
        fail(what + " does not cover the elements");
        continue;
      }
      std::size_t smallest = total, largest = 0;
      for (std::size_t r = 0; r < std::size_t(ranks); ++r) {
        const std::size_t size = bounds[r + 1] - bounds[r];
        if (bounds[r + 1] < bounds[r] || (r + 1 < std::size_t(ranks) && size % block != 0))
          fail(what + ": shard " + std::to_string(r) + " is not a whole number of blocks");
        smallest = std::min(smallest, size);
        largest = std::max(largest, size);
      }
      if (largest - smallest > block) fail(what + ": shards differ by more than one block");
    }
  }
}

// What the previous rank (in a ring) passes: here, its checkpoint.
std::string from_previous_rank(const std::string& mine, int ranks) {
  const int next = (rank_here + 1) % ranks, previous = (rank_here + ranks - 1) % ranks;
  unsigned long long size = mine.size(), their_size = 0;
  MPI_Sendrecv(&size, 1, MPI_UNSIGNED_LONG_LONG, next, 0, &their_size, 1, MPI_UNSIGNED_LONG_LONG, previous, 0,
               MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  std::string theirs(their_size, '\0');
  MPI_Sendrecv(mine.data(), int(size), MPI_CHAR, next, 1, theirs.data(), int(their_size), MPI_CHAR, previous, 1,
               MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  return theirs;
}

// Checkpoints that must not load: each is refused with a message that names the mismatch,
// and leaves the optimizer as it was.
void check_refusals(int ranks) {
  using Opt = multopt::MAdam<float>;
  Tensors<float> tensors(mixed_sizes, false), alone_tensors(mixed_sizes, false);
  multopt::ShardedOptimizer<Opt> opt(MPI_COMM_WORLD), alone(MPI_COMM_SELF);
  attach(opt, tensors, own_gradients(tensors));
  attach(alone, alone_tensors, own_gradients(alone_tensors));
  for (int step = 0; step < 2; ++step) {
    tensors.fill_gradients(step);
    opt.step();
    alone_tensors.fill_gradients(step);
    alone.step();
  }
  std::stringstream before, on_one_rank, single_process;
  multopt::save_checkpoint(before, opt);
  multopt::save_checkpoint(on_one_rank, alone);
  multopt::save_checkpoint(single_process, opt.inner());
  std::string damaged = before.str();
  damaged[30] = char(damaged[30] ^ 1);  // inside the shard layout

  const auto expect_refused = [&](const std::string& bytes, bool misfit, const std::vector<std::string>& words,
                                  const std::string& what) {
    std::istringstream in(bytes);
    try {
      multopt::load_checkpoint(in, opt);
      fail(what + " was loaded");
    } catch (const std::exception& error) {
      const std::string message = error.what();
      if (misfit != (dynamic_cast<const std::invalid_argument*>(&error) != nullptr))
        fail(what + ": refused with the wrong exception type: " + message);
      for (const std::string& word : words)
        if (message.find(word) == std::string::npos) fail(what + ": the message does not say '" + word + "': " + message);
    }
    std::stringstream after;
    multopt::save_checkpoint(after, opt);
    if (after.str() != before.str()) fail(what + ": the refused load changed the optimizer");
  };
  const std::string here = std::to_string(rank_here), previous = std::to_string((rank_here + ranks - 1) % ranks);
  expect_refused(on_one_rank.str(), true, {"written on 1 rank", "runs on " + std::to_string(ranks) + " ranks"},
                 "a checkpoint written on 1 rank");
  expect_refused(from_previous_rank(before.str(), ranks), true, {"shard of rank " + previous, "this is rank " + here},
                 "rank " + previous + "'s checkpoint");
  expect_refused(single_process.str(), false, {"single-process"}, "a single-process checkpoint");
  expect_refused(damaged, false, {"corrupted"}, "a damaged checkpoint");
}

// Every base once, with the rules in turn so that each appears: the sharded optimizer handles a
// base by its state (arrays and per-tensor scalars), a rule not at all, and each combination's
// arithmetic is the single-process tests' concern. (All 63 combinations cost this file minutes
// of compiling.)
template <class S>
using Representatives =
    multopt::TypeList<multopt::Optimizer<multopt::bases::Sgd, multopt::rules::Additive, S>,
                      multopt::Optimizer<multopt::bases::Adam, multopt::rules::Multiplicative, S>,
                      multopt::Optimizer<multopt::bases::Adagrad, multopt::rules::Hybrid, S>,
                      multopt::Optimizer<multopt::bases::Rmsprop, multopt::rules::Exponential, S>,
                      multopt::Optimizer<multopt::bases::Sgd, multopt::rules::TanhMomentum, S>,
                      multopt::Optimizer<multopt::bases::Adamax, multopt::rules::NonNegativeClip, S>,
                      multopt::Optimizer<multopt::bases::Nadam, multopt::rules::NonNegativeReflect, S>,
                      multopt::Optimizer<multopt::bases::Radam, multopt::rules::Hybrid, S>,
                      multopt::Optimizer<multopt::bases::Adadelta, multopt::rules::Multiplicative, S>,
                      multopt::Optimizer<multopt::bases::Lion, multopt::rules::Exponential, S>>;

// Calls check(tag) for each of Representatives<S>, where decltype(tag)::type is the optimizer.
template <class S, class Check>
int for_each_optimizer(const Check& check) {
  int count = 0;
  multopt::for_each_type(Representatives<S>{}, [&](auto tag) {
    check(tag);
    ++count;
  });
  return count;
}

}  // namespace

int main(int argc, char** argv) {
  int combinations = 0;
  return run_on_every_rank(
      argc, argv, "sharded_test",
      [&](int ranks) {
        const auto check = [](auto tag) {
          using Opt = typename decltype(tag)::type;
          for (bool arena : {false, true}) check_against_single_process<Opt>(mixed_sizes, arena);
          check_against_single_process<Opt>(tiny_sizes, false);
          check_checkpoint_resumes<Opt>(mixed_sizes);
        };
        combinations = for_each_optimizer<float>(check) + for_each_optimizer<double>(check);
        check_bounds_balanced<float>();
        check_bounds_balanced<double>();
        check_refusals(ranks);
        check_agreement_and_schedules(ranks);
      },
      [&] {
        return std::to_string(combinations) +
               " optimizers (every base and every rule, float and double), " + std::to_string(steps) +
               " steps each, bit-identical to one process; checkpoints resume and refuse misfits; the ranks agree "
               "on non-finite gradients; schedules apply as to one process";
      });
}
