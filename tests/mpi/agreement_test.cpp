// ShardedOptimizer under mpirun, what the ranks must agree on beyond the step itself (run by
// multopt_mpi_tests, tests/mpi/CMakeLists.txt, on 2 and 3 ranks):
//   - a non-finite gradient that reaches one rank's shard only is skipped (its tensor, or under
//     skip_all every tensor), or thrown for, on every rank alike;
//   - schedules apply to the sharded optimizer itself, as to a plain one, and are checkpointed;
//   - the moving average and loss scaling, set on inner(), follow the plain optimizer's.
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "mpi_support.hpp"

namespace mpi_test {
namespace {

// A NaN or infinity that rank 0 writes into tensor 0, at an element that the last rank owns,
// reaches only the last rank's shard of the averaged gradients; under skip every rank leaves
// the whole tensor alone and steps the others, under throw_error every rank throws the same
// exception and nothing changes.
template <class Opt>
void check_non_finite_agreement(int ranks) {
  using S = typename Opt::Scalar;
  const std::string what = name_of<Opt>(mixed_sizes, false) + " with a non-finite gradient";
  ShardedAndReference<Opt> both(mixed_sizes, false);
  Tensors<S>& tensors = both.tensors;
  multopt::ShardedOptimizer<Opt>& sharded = both.sharded;
  Opt& reference = both.reference;
  const std::size_t element = 999;  // of tensor 0: in the last rank's shard
  if (sharded.layout().bounds[std::size_t(ranks) - 1] > element) fail(what + ": element 999 is not the last rank's");

  sharded.inner().set_non_finite_policy(multopt::NonFinitePolicy::skip);
  reference.set_non_finite_policy(multopt::NonFinitePolicy::skip);
  for (int step = 0; step < 3; ++step) {
    tensors.fill_gradients(step);
    if (step == 1 && rank_here == 0) tensors.grad(0)[element] = std::numeric_limits<S>::infinity();
    both.step();
    const std::vector<std::size_t> expected = step == 1 ? std::vector<std::size_t>{0} : std::vector<std::size_t>{};
    if (sharded.skipped_tensors() != expected || reference.skipped_tensors() != expected)
      fail(what + ": step " + std::to_string(step) + " skipped other tensors than expected");
  }
  expect_same_values(tensors, both.reference_tensors, what + " (skip)");

  // Under skip_all every rank leaves every tensor alone, its own pieces of them included.
  sharded.inner().set_non_finite_policy(multopt::NonFinitePolicy::skip_all);
  reference.set_non_finite_policy(multopt::NonFinitePolicy::skip_all);
  tensors.fill_gradients(3);
  if (rank_here == 0) tensors.grad(0)[element] = std::numeric_limits<S>::infinity();
  const std::vector<S> unskipped = tensors.values;
  both.step();
  std::vector<std::size_t> every(tensors.sizes.size());
  for (std::size_t k = 0; k < every.size(); ++k) every[k] = k;
  if (sharded.skipped_tensors() != every || reference.skipped_tensors() != every)
    fail(what + ": skip_all did not skip every tensor");
  if (tensors.values != unskipped) fail(what + ": skip_all changed parameters");

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

// The moving average of the weights and loss scaling, set on inner(): every rank's pieces step
// and average as the plain optimizer's tensors, and state_bytes() counts the averages, which a
// step with ema_decay off frees.
template <class Opt>
void check_ema_and_grad_scale() {
  using S = typename Opt::Scalar;
  const std::string what = name_of<Opt>(mixed_sizes, false) + " with ema_decay and grad_scale";
  ShardedAndReference<Opt> both(mixed_sizes, false);
  for (Opt* opt : {&both.sharded.inner(), &both.reference}) {
    opt->set_ema_decay(0.5);
    opt->set_grad_scale(4);
  }
  for (int step = 0; step < 3; ++step) {
    both.tensors.fill_gradients(step);
    both.step();
  }
  expect_same_values(both.tensors, both.reference_tensors, what);
  const std::vector<multopt::ShardLayout::Piece>& pieces = both.sharded.layout().pieces;
  std::size_t averaged = 0;
  for (std::size_t k = 0; k < pieces.size(); ++k) {
    const S* piece = both.sharded.inner().ema(k);
    const S* whole = both.reference.ema(pieces[k].tensor);
    if (!piece || !whole || !same_bits(piece, whole + pieces[k].offset, pieces[k].size))
      fail(what + ": piece " + std::to_string(k) + "'s average differs from the plain optimizer's");
    averaged += pieces[k].size;
  }
  const std::size_t with_averages = both.sharded.state_bytes();
  both.sharded.inner().set_ema_decay(std::nullopt);
  both.reference.set_ema_decay(std::nullopt);
  both.step();
  if (both.sharded.state_bytes() != with_averages - averaged * sizeof(S))
    fail(what + ": state_bytes() does not count the averages");
}

// Schedules apply to the sharded optimizer itself, as to a plain one: an epoch schedule on every
// group, a learning-rate curve on group 1 and a function schedule on group 0, applied before
// each step, leave the parameters and hyperparameters of the plain optimizer given the same
// schedules; their positions are checkpointed with the shard; a change that fails validation
// is refused and changes nothing; a mix schedule needs the hybrid rule, as on a plain optimizer.
template <class Opt>
void check_schedules() {
  using Hyper = typename Opt::Hyper;
  const std::string what = name_of<Opt>(mixed_sizes, false) + " under schedules";
  ShardedAndReference<Opt> both(mixed_sizes, false);
  const auto schedules = [] {
    return std::make_tuple(multopt::StepSchedule({2, 0.5, 0.5, 0.5}),
                           multopt::LrSchedule(multopt::curves::warmup_cosine(3, steps), 1),
                           multopt::FunctionSchedule<Hyper>("weight_decay", [](long e) { return 0.01 / double(e); }, 0));
  };
  auto on_sharded = schedules(), on_reference = schedules();
  for (int step = 0; step < steps; ++step) {
    std::apply([&](auto&... schedule) { (schedule.apply(both.sharded), ...); }, on_sharded);
    std::apply([&](auto&... schedule) { (schedule.apply(both.reference), ...); }, on_reference);
    both.tensors.fill_gradients(step);
    both.step();
  }
  expect_same_values(both.tensors, both.reference_tensors, what);
  for (std::size_t group = 0; group < 2; ++group)
    for (const std::string& name : Hyper::names())
      if (both.sharded.get(name, group) != both.reference.get(name, group))
        fail(what + ": " + name + " of group " + std::to_string(group) + " differs from the plain optimizer's");

  std::stringstream checkpoint;
  std::apply([&](auto&... schedule) { multopt::save_checkpoint(checkpoint, both.sharded, schedule...); }, on_sharded);
  Tensors<typename Opt::Scalar> restored_tensors = both.tensors;
  multopt::ShardedOptimizer<Opt> restored(MPI_COMM_WORLD);
  attach(restored, restored_tensors, own_gradients(restored_tensors));
  auto restored_schedules = schedules();
  std::apply([&](auto&... schedule) { multopt::load_checkpoint(checkpoint, restored, schedule...); }, restored_schedules);
  if (std::get<0>(restored_schedules).epoch() != steps || std::get<1>(restored_schedules).epoch() != steps)
    fail(what + ": the checkpoint did not restore the schedules' epochs");
  if (restored.get("lr_factor", 1) != both.sharded.get("lr_factor", 1)) fail(what + ": lr_factor was not restored");

  const std::vector<double> before{both.sharded.get("weight_decay", 0), both.sharded.get("weight_decay", 1)};
  multopt::FunctionSchedule<Hyper> negative("weight_decay", [](long) { return -1.0; });
  try {
    negative.apply(both.sharded);
    fail(what + ": a negative weight_decay was applied");
  } catch (const std::invalid_argument& error) {
    if (std::string(error.what()).find("weight_decay") == std::string::npos) fail(what + ": " + error.what());
  }
  if (negative.epoch() != 0 || before[0] != both.sharded.get("weight_decay", 0) ||
      before[1] != both.sharded.get("weight_decay", 1))
    fail(what + ": the refused schedule changed the optimizer or counted an epoch");

  multopt::ExponentialMixSchedule mix({0.5});
  const bool hybrid = both.sharded.hyper().has("g_mix");
  try {
    mix.apply(both.sharded);
    if (!hybrid || both.sharded.get("g_mix") != 0.5) fail(what + ": the mix schedule did not set g_mix = 0.5");
  } catch (const std::invalid_argument& error) {
    if (hybrid || std::string(error.what()).find(Opt::rule_name()) == std::string::npos)
      fail(what + ": the mix schedule was refused: " + error.what());
  }
}

}  // namespace

void check_agreement_and_schedules(int ranks) {
  check_non_finite_agreement<multopt::MAdam<float>>(ranks);
  check_non_finite_agreement<multopt::HSGD<double>>(ranks);
  check_schedules<multopt::MAdam<float>>();
  check_schedules<multopt::HSGD<double>>();
  check_ema_and_grad_scale<multopt::MAdam<float>>();
  check_ema_and_grad_scale<multopt::HSGD<double>>();
}

}  // namespace mpi_test
