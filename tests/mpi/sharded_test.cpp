// ShardedOptimizer under mpirun (tests/mpi/CMakeLists.txt runs it on 2 and 3 ranks). For every
// base, and every rule on some base (Representatives below), in float and double:
//   - 20 steps with different gradients on every rank leave every rank's parameters, and this
//     rank's state, bit-identical to one plain optimizer stepped over the whole tensors with
//     the averaged gradients, which are gathered from the reduction itself (MPI chooses its own
//     summation order); tensor sizes that no rank count divides, tensors in one arena or apart,
//     and so few elements that some ranks own none;
//   - 10 steps, a checkpoint, 10 more steps in a fresh optimizer equal 20 straight steps.
// Then: the shard bounds are balanced; checkpoints of another rank count, of another rank, of
// a single-process optimizer and damaged ones are refused and change nothing.
// Exits non-zero, on every rank, if any check fails on any rank; each failure names its rank.
#include <multopt/distributed/mpi.hpp>
#include <multopt/multopt.hpp>

#include <cstdio>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

int rank_here = 0;
int failures = 0;

void fail(const std::string& what) {
  ++failures;
  std::fprintf(stderr, "rank %d: FAIL %s\n", rank_here, what.c_str());
}

constexpr int steps = 20;
// 1170 elements: divisible by neither 2 nor 3, nor by a 64-byte block; tensors cut by shards.
const std::vector<std::size_t> mixed_sizes{1000, 37, 3, 129, 1};
// Fewer elements than one block: every rank but the last owns none.
const std::vector<std::size_t> tiny_sizes{3, 2};

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

// Settings under which the base keeps every state array it has and every term of the rule
// acts, where the combination has them; `rate` scales the learning rates.
template <class Hyper>
Hyper busy_hyper(double rate) {
  const std::vector<std::pair<std::string, double>> candidates{
      {"momentum", 0.5}, {"nesterov", 1},    {"beta1", 0.8},         {"amsgrad", 1},
      {"lr_decay", 0.05}, {"initial_accumulator_value", 0.1},        {"centered", 1},
      {"lr", 0.01 * rate}, {"lr_in", 1.5},    {"lr_out", 0.01 * rate}, {"g_mix", 0.5}};
  const auto known = Hyper::names();
  std::vector<std::pair<std::string, double>> settings;
  for (const auto& setting : candidates)
    if (std::find(known.begin(), known.end(), setting.first) != known.end()) settings.push_back(setting);
  Hyper hyper;
  hyper.set_all(settings);
  return hyper;
}

// Two groups, tensors alternating between them, a setting changed after registration: the
// same calls on a ShardedOptimizer and on a plain Optimizer.
template <class Optimizer, class S>
void attach(Optimizer& opt, Tensors<S>& tensors, const std::vector<const S*>& grads) {
  using Hyper = typename Optimizer::Hyper;
  opt.set_hyper(busy_hyper<Hyper>(1.0));
  opt.add_group(busy_hyper<Hyper>(0.5));
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

// This rank's state arrays, piece by piece, against `expected`, where expected(p, slot) points
// at the first element of piece p in that array (or is null).
template <class Opt, class Expected>
void expect_same_state(const multopt::ShardedOptimizer<Opt>& opt, const Expected& expected, const std::string& what) {
  const auto& pieces = opt.layout().pieces;
  for (std::size_t p = 0; p < pieces.size(); ++p) {
    for (int slot = 0; slot < Opt::BaseType::slot_count; ++slot) {
      const auto* mine = opt.inner().state(p, slot);
      const auto* theirs = expected(p, slot);
      if ((mine == nullptr) != (theirs == nullptr) || (mine && !same_bits(mine, theirs, pieces[p].size))) {
        fail(what + ": state slot " + std::to_string(slot) + " of tensor " + std::to_string(pieces[p].tensor) +
             " differs");
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

template <class Opt>
void check_against_single_process(const std::vector<std::size_t>& sizes, bool arena) {
  using S = typename Opt::Scalar;
  const std::string what = name_of<Opt>(sizes, arena);
  Tensors<S> tensors(sizes, arena), reference_tensors(sizes, arena);
  multopt::ShardedOptimizer<Opt> sharded(MPI_COMM_WORLD);
  attach(sharded, tensors, own_gradients(tensors));

  std::vector<S> averaged(sharded.layout().total());
  std::vector<const S*> averaged_grads;
  std::size_t offset = 0;
  for (std::size_t size : sizes) {
    averaged_grads.push_back(averaged.data() + offset);
    offset += size;
  }
  Opt reference;
  attach(reference, reference_tensors, averaged_grads);

  for (int step = 0; step < steps; ++step) {
    tensors.fill_gradients(step);
    sharded.step();
    gather_averaged(sharded, averaged);
    reference.step();
  }
  expect_same_values(tensors, reference_tensors, what);
  expect_same_state(sharded, [&](std::size_t p, int slot) {
    const multopt::ShardLayout::Piece& piece = sharded.layout().pieces[p];
    const S* array = reference.state(piece.tensor, slot);
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
  expect_same_state(second_half, [&](std::size_t p, int slot) { return straight.inner().state(p, slot); }, what);
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

// A NaN or infinity that rank 0 writes into tensor 0, at an element that the last rank owns,
// reaches only the last rank's shard of the averaged gradients; under skip every rank leaves
// the whole tensor alone and steps the others, under throw_error every rank throws the same
// exception and nothing changes.
template <class Opt>
void check_non_finite_agreement(int ranks) {
  using S = typename Opt::Scalar;
  const std::string what = name_of<Opt>(mixed_sizes, false) + " with a non-finite gradient";
  Tensors<S> tensors(mixed_sizes, false), reference_tensors(mixed_sizes, false);
  multopt::ShardedOptimizer<Opt> sharded(MPI_COMM_WORLD);
  attach(sharded, tensors, own_gradients(tensors));
  Opt reference;
  std::vector<S> averaged(sharded.layout().total());
  std::vector<const S*> averaged_grads;
  for (std::size_t k = 0, offset = 0; k < mixed_sizes.size(); offset += mixed_sizes[k++])
    averaged_grads.push_back(averaged.data() + offset);
  attach(reference, reference_tensors, averaged_grads);
  const std::size_t element = 999;  // of tensor 0: in the last rank's shard
  if (sharded.layout().bounds[std::size_t(ranks) - 1] > element) fail(what + ": element 999 is not the last rank's");

  sharded.inner().set_non_finite_policy(multopt::NonFinitePolicy::skip);
  reference.set_non_finite_policy(multopt::NonFinitePolicy::skip);
  for (int step = 0; step < 3; ++step) {
    tensors.fill_gradients(step);
    if (step == 1 && rank_here == 0) tensors.grad(0)[element] = std::numeric_limits<S>::infinity();
    sharded.step();
    gather_averaged(sharded, averaged);
    reference.step();
    const std::vector<std::size_t> expected = step == 1 ? std::vector<std::size_t>{0} : std::vector<std::size_t>{};
    if (sharded.skipped_tensors() != expected || reference.skipped_tensors() != expected)
      fail(what + ": step " + std::to_string(step) + " skipped other tensors than expected");
  }
  expect_same_values(tensors, reference_tensors, what + " (skip)");

  sharded.inner().set_non_finite_policy(multopt::NonFinitePolicy::throw_error);
  tensors.fill_gradients(3);
  if (rank_here == 0) tensors.grad(0)[element] = std::numeric_limits<S>::quiet_NaN();
  const Tensors<S> before = tensors;
  try {
    sharded.step();
    fail(what + ": throw_error did not throw");
  } catch (const multopt::NonFiniteGradient& e) {
    if (e.tensor() != 0 || e.index() != element || std::string(e.what()).find("nan") == std::string::npos)
      fail(what + ": the exception names another element: " + e.what());
  }
  if (tensors.values != before.values) fail(what + ": throw_error changed parameters");
}

// Every base once, with the rules in turn so that each appears: the sharded optimizer handles a
// base by its state (slots and per-tensor scalars), a rule not at all, and each combination's
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
  MPI_Init(&argc, &argv);
  int ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_here);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  if (ranks < 2) {
    std::fprintf(stderr, "sharded_test: run it under mpirun with 2 or more ranks\n");
    MPI_Finalize();
    return 2;
  }
  int combinations = 0;
  try {
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
    check_non_finite_agreement<multopt::MAdam<float>>(ranks);
    check_non_finite_agreement<multopt::HSGD<double>>(ranks);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "rank %d: %s\n", rank_here, error.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  int all_failures = 0;
  MPI_Allreduce(&failures, &all_failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank_here == 0) {
    if (all_failures == 0) {
      std::printf("sharded_test on %d ranks: %d optimizers (every base and every rule, float and double), %d steps each, "
                  "bit-identical to one process; checkpoints resume and refuse misfits\n",
                  ranks, combinations, steps);
    } else {
      std::printf("sharded_test on %d ranks: %d checks failed\n", ranks, all_failures);
    }
  }
  MPI_Finalize();
  return all_failures == 0 ? 0 : 1;
}
