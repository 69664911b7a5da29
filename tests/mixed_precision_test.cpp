// 16-bit parameters (storage.hpp, conversions.hpp): master weights step exactly as a float optimizer (every
// base × rule, here and only here), round to nearest even equals rounding the float result,
// every storage mode resumes from a checkpoint, master weights given back with set_master
// continue the run, overflow and subnormals follow IEEE, and the non-finite policy and clipping
// see 16-bit gradients. (Stochastic rounding itself: stochastic_rounding_test.cpp.)
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <vector>

#include "mixed_precision.hpp"

using namespace mixed;

// Every combination made by name, in bf16 and fp16.
TEMPLATE_TEST_CASE("master weights step as the float optimizer, bit for bit, and are stored rounded",
                   "[mixed][master]", bf16, fp16) {
  using P = TestType;
  const auto combination = GENERATE(from_range(test::every_combination()));
  INFO(test::describe(combination));
  Pair<P> pair(combination, StorageMode{Rounding::master, 0}, threaded(3, 1000));
  for (int t = 0; t < 8; ++t) {
    pair.new_gradients();
    pair.narrow->step();
    pair.wide->step();
  }
  bool same_master = true, rounded = true;
  for (std::size_t k = 0; k < kSizes.size(); ++k) {
    same_master = same_master && std::memcmp(pair.narrow->master(k), pair.params[k].data(), kSizes[k] * 4) == 0;
    for (std::size_t i = 0; i < kSizes[k]; ++i)
      rounded = rounded && bits(pair.params16[k][i]) == bits(P(pair.params[k][i]));
  }
  CHECK(same_master);
  CHECK(rounded);
  CHECK(pair.same_state());
}

TEST_CASE("fp16 master weights, and 16-bit gradients, step as float does", "[mixed][master]") {
  Pair<fp16> pair(kMAdam, StorageMode{Rounding::master, 0}, threaded(2, 512));
  for (int t = 0; t < 6; ++t) {
    pair.new_gradients();
    pair.narrow->step();
    pair.wide->step();
  }
  bool same = true;
  for (std::size_t k = 0; k < kSizes.size(); ++k)
    same = same && std::memcmp(pair.narrow->master(k), pair.params[k].data(), kSizes[k] * 4) == 0;
  CHECK(same);

  // Gradients of the parameter's type: as float gradients of the widened values.
  std::vector<bf16> p16 = {bf16(0.5f), bf16(-1.25f), bf16(3.0f)}, g16 = {bf16(0.1f), bf16(-2.0f), bf16(0.7f)};
  std::vector<float> p = {0.5f, -1.25f, 3.0f}, g = {widen(g16[0]), widen(g16[1]), widen(g16[2])};
  multopt::Optimizer<multopt::bases::Adam, multopt::rules::Hybrid, bf16> narrow;
  multopt::HAdam<float> wide;
  narrow.add_params(p16.data(), g16.data(), 3);
  wide.add_params(p.data(), g.data(), 3);
  narrow.step(), wide.step(), narrow.step(), wide.step();
  CHECK(std::memcmp(narrow.master(0), p.data(), 12) == 0);
}

TEST_CASE("round to nearest even stores the float step of the stored value, rounded", "[mixed][nearest]") {
  auto check = [](const test::Combination& combination, auto tag) {
    using P = typename decltype(tag)::type;
    Pair<P> pair(combination, StorageMode{Rounding::nearest, 0}, threaded(2, 1000));
    bool rounded = true;
    for (int t = 0; t < 6; ++t) {
      pair.new_gradients();
      for (std::size_t k = 0; k < kSizes.size(); ++k)
        for (std::size_t i = 0; i < kSizes[k]; ++i) pair.params[k][i] = widen(pair.params16[k][i]);
      pair.narrow->step();
      pair.wide->step();
      for (std::size_t k = 0; k < kSizes.size(); ++k)
        for (std::size_t i = 0; i < kSizes[k]; ++i)
          rounded = rounded && bits(pair.params16[k][i]) == bits(P(pair.params[k][i]));
    }
    CHECK(rounded);
    CHECK(pair.same_state());
    CHECK(pair.narrow->master(0) == nullptr);
  };
  check(kMAdam, std::common_type<bf16>{});
  check({"sgd", "additive"}, std::common_type<fp16>{});
  check({"rmsprop", "hybrid"}, std::common_type<bf16>{});
}

TEST_CASE("16-bit optimizers resume exactly from a checkpoint", "[mixed][checkpoint]") {
  for (Rounding rounding : {Rounding::master, Rounding::stochastic, Rounding::nearest}) {
    INFO(multopt::rounding_name(rounding));
    Pair<bf16> straight(kMAdam, StorageMode{rounding, 12345}, threaded(2, 1000));
    Pair<bf16> resumed(kMAdam, StorageMode{rounding, 12345}, threaded(2, 1000));
    for (int t = 0; t < 3; ++t) straight.new_gradients(), straight.narrow->step();
    std::stringstream checkpoint;
    multopt::save_checkpoint(checkpoint, *straight.narrow);
    CHECK(checkpoint.str()[8] == 3);  // format version 3
    resumed.params16 = straight.params16;
    resumed.narrow->set_storage({Rounding::nearest, 0});  // the checkpoint restores the mode and seed
    multopt::load_checkpoint(checkpoint, *resumed.narrow);
    CHECK(resumed.narrow->storage().rounding == rounding);
    CHECK(resumed.narrow->storage().seed == 12345);
    resumed.rng = straight.rng;
    for (int t = 0; t < 3; ++t) {
      straight.new_gradients(), straight.narrow->step();
      resumed.new_gradients(), resumed.narrow->step();
    }
    bool same = true;
    for (std::size_t k = 0; k < kSizes.size(); ++k) {
      same = same && std::memcmp(straight.params16[k].data(), resumed.params16[k].data(), kSizes[k] * 2) == 0;
      if (rounding == Rounding::master)
        same = same && std::memcmp(straight.narrow->master(k), resumed.narrow->master(k), kSizes[k] * 4) == 0;
    }
    CHECK(same);
  }
  // A float optimizer still writes version 2; a bf16 checkpoint does not load into an fp16 optimizer.
  Pair<bf16> pair(kMAdam, StorageMode{}, threaded(1, 1000));
  pair.wide->step();
  std::stringstream f, b;
  multopt::save_checkpoint(f, *pair.wide);
  multopt::save_checkpoint(b, *pair.narrow);
  CHECK(f.str()[8] == 2);
  Pair<fp16> other(kMAdam, StorageMode{}, threaded(1, 1000));
  CHECK_THROWS_WITH(multopt::load_checkpoint(b, *other.narrow), Catch::Contains("bf16 parameters"));
}

TEST_CASE("16-bit overflow, subnormals and NaN are stored as IEEE says", "[mixed][extremes]") {
  const float inf = std::numeric_limits<float>::infinity();
  // fp16: the largest finite is 65504; 65520 (half a unit above) and beyond round to +inf.
  CHECK(widen(stored_after_one_step<fp16>(65504.0f, 15.99f, 1, 0)[0]) <= 65536.0f);
  auto nearest = [](auto tag, float theta, float step) {
    using P = typename decltype(tag)::type;
    std::vector<P> param = {P(theta)};
    std::vector<float> grad = {-step};
    multopt::SGD<P> opt(multopt::arg::lr = 1.0);
    opt.set_storage({Rounding::nearest, 0});
    opt.add_params(param.data(), grad.data(), 1);
    opt.step();
    return widen(param[0]);
  };
  CHECK(nearest(std::common_type<fp16>{}, 65504.0f, 15.0f) == 65504.0f);
  CHECK(nearest(std::common_type<fp16>{}, 65504.0f, 16.0f) == inf);
  CHECK(nearest(std::common_type<fp16>{}, -65504.0f, -16.0f) == -inf);
  CHECK(nearest(std::common_type<bf16>{}, 3.3895314e38f, 1e37f) == inf);
  // Subnormals: fp16 below 2^-14 on the grid 2^-24, bf16 below 2^-126 on 2^-133; not flushed.
  CHECK(nearest(std::common_type<fp16>{}, 0.0f, 5 * 5.96046448e-8f) == 5 * 5.96046448e-8f);
  CHECK(nearest(std::common_type<fp16>{}, 0.0f, 2.6 * 5.96046448e-8f) == 3 * 5.96046448e-8f);
  CHECK(nearest(std::common_type<bf16>{}, 0.0f, std::ldexp(3.0f, -133)) == std::ldexp(3.0f, -133));
  CHECK(nearest(std::common_type<bf16>{}, std::ldexp(1.0f, -130), std::ldexp(1.0f, -132)) == std::ldexp(1.25f, -130));
  CHECK(std::isnan(nearest(std::common_type<bf16>{}, 1.0f, std::nanf(""))));
  CHECK(std::isnan(widen(stored_after_one_step<fp16>(1.0f, std::nanf(""), 1, 0)[0])));
  CHECK(widen(stored_after_one_step<bf16>(inf, 1.0f, 1, 0)[0]) == inf);

  // Every bf16 and fp16 value widens exactly and narrows back to itself.
  std::vector<bf16> x(0x10000), y(0x10000);
  std::vector<fp16> h(0x10000), k(0x10000);
  std::vector<float> wide(0x10000), wide_h(0x10000);
  for (std::uint32_t b = 0; b < 0x10000u; ++b) {
    x[b] = Eigen::numext::bit_cast<bf16>(std::uint16_t(b));
    h[b] = Eigen::numext::bit_cast<fp16>(std::uint16_t(b));
  }
  multopt::Storage<bf16>::widen(x.data(), wide.data(), x.size());
  multopt::Storage<fp16>::widen(h.data(), wide_h.data(), h.size());
  multopt::Storage<bf16>::narrow_nearest(wide.data(), y.data(), x.size());
  multopt::Storage<fp16>::narrow_nearest(wide_h.data(), k.data(), h.size());
  bool exact = true;
  for (std::uint32_t b = 0; b < 0x10000u; ++b) {
    const bool nan = widen(x[b]) != widen(x[b]), nan_h = widen(h[b]) != widen(h[b]);
    exact = exact && (nan ? wide[b] != wide[b] && widen(y[b]) != widen(y[b]) : bits(y[b]) == b && wide[b] == widen(x[b]));
    exact = exact && (nan_h ? wide_h[b] != wide_h[b] && widen(k[b]) != widen(k[b]) : bits(k[b]) == b && wide_h[b] == widen(h[b]));
  }
  CHECK(exact);
  // Random floats narrow as Eigen's scalar conversions (round to nearest even) do.
  std::mt19937 rng(3);
  std::vector<float> random(1 << 20);
  for (float& v : random) v = multopt::detail::float_of(std::uint32_t(rng()));
  y.resize(random.size()), k.resize(random.size());
  multopt::Storage<bf16>::narrow_nearest(random.data(), y.data(), random.size());
  multopt::Storage<fp16>::narrow_nearest(random.data(), k.data(), random.size());
  bool as_eigen = true;
  for (std::size_t i = 0; i < random.size(); ++i)
    if (random[i] == random[i])
      as_eigen = as_eigen && bits(y[i]) == bits(bf16(random[i])) && bits(k[i]) == bits(fp16(random[i]));
  CHECK(as_eigen);
}

TEST_CASE("the non-finite policy and clipping read 16-bit gradients", "[mixed][non-finite]") {
  std::vector<bf16> p = {bf16(1.0f), bf16(2.0f), bf16(3.0f)}, g = {bf16(0.5f), bf16(0.25f), bf16(-1.0f)};
  std::vector<fp16> ph = {fp16(1.0f)}, gh = {fp16(0.5f)};
  multopt::Adam<bf16> opt;
  multopt::Adam<fp16> half;
  opt.add_params(p.data(), g.data(), 3);
  half.add_params(ph.data(), gh.data(), 1);
  const auto before = p;
  g[2] = bf16(std::numeric_limits<float>::infinity());
  opt.set_non_finite_policy(multopt::NonFinitePolicy::throw_error);
  CHECK_THROWS_AS(opt.step(), multopt::NonFiniteGradient);
  CHECK_THROWS_WITH(opt.step(), Catch::Contains("inf at element 2"));
  opt.set_non_finite_policy(multopt::NonFinitePolicy::skip);
  opt.step();
  CHECK(opt.skipped_tensors() == std::vector<std::size_t>{0});
  CHECK(std::memcmp(p.data(), before.data(), 6) == 0);
  CHECK(opt.master(0) == nullptr);
  gh[0] = Eigen::numext::bit_cast<fp16>(std::uint16_t(0x7e00));  // a NaN
  half.set_non_finite_policy(multopt::NonFinitePolicy::skip);
  half.step();
  CHECK(half.skipped_tensors() == std::vector<std::size_t>{0});

  // Clipping: the norm of the widened gradients, as the float optimizer computes it.
  g[2] = bf16(-1.0f);
  std::vector<float> pf = {1.0f, 2.0f, 3.0f}, gf = {0.5f, 0.25f, -1.0f};
  multopt::Adam<float> wide;
  wide.add_params(pf.data(), gf.data(), 3);
  opt.set_max_grad_norm(0.5);
  wide.set_max_grad_norm(0.5);
  opt.step();
  wide.step();
  CHECK(opt.grad_norm() == wide.grad_norm());
  CHECK(std::memcmp(opt.master(0), pf.data(), 12) == 0);
}

TEST_CASE("storage modes by name, through AnyOptimizer", "[mixed][runtime]") {
  auto opt = multopt::make_optimizer<bf16>("adam", "multiplicative", {{"rounding", "stochastic"}, {"rounding_seed", "7"}});
  CHECK(opt->storage().rounding == Rounding::stochastic);
  CHECK(opt->storage().seed == 7);
  CHECK(multopt::make_optimizer<fp16>("sgd", "hybrid")->storage().rounding == Rounding::master);
  CHECK_THROWS_MATCHES(multopt::make_optimizer<bf16>("adam", "additive", {{"rounding", "up"}}), std::invalid_argument,
                       test::names({"rounding", "'up'"}));
  CHECK_THROWS_MATCHES(multopt::make_optimizer<bf16>("adam", "additive", {{"rounding_seed", "-1"}}),
                       std::invalid_argument, test::names({"rounding_seed", "'-1'"}));
  CHECK_THROWS_MATCHES(multopt::make_optimizer<float>("adam", "additive", {{"rounding", "nearest"}}),
                       std::invalid_argument, test::names({"float", "double"}));
  std::vector<bf16> p = {bf16(1.0f)};
  std::vector<float> g = {0.5f};
  opt->add_params(p.data(), g.data(), 1);
  opt->step();
  CHECK(opt->master(0) == nullptr);
  CHECK((widen(p[0]) == 1.0f || widen(p[0]) == 1.0f - 1.0f / 256));  // a step of 0.1% of 1: either neighbour
}

TEST_CASE("master weights given back continue the run; refused where they do not fit", "[mixed]") {
  // `second` takes `first`'s state and master weights after a step: both continue alike (from
  // its own rounded parameters `second` would not).
  std::vector<bf16> p = {bf16(1.0f), bf16(2.0f), bf16(3.0f)}, q = p;
  const std::vector<bf16> g = {bf16(0.5f), bf16(0.25f), bf16(-1.0f)};
  multopt::MAdam<bf16> first(multopt::arg::lr_out = 1e-3), second(multopt::arg::lr_out = 1e-3);
  first.add_params(p.data(), g.data(), 3);
  second.add_params(q.data(), g.data(), 3);
  first.step();
  q = p;
  second.set_step_count(0, 1);
  for (const char* name : {"exp_avg", "exp_avg_sq"}) second.set_state(0, name, first.state(0, name), 3);
  second.set_master(0, first.master(0), 3);
  for (int k = 0; k < 3; ++k) {
    first.step();
    second.step();
  }
  CHECK(std::memcmp(first.master(0), second.master(0), 12) == 0);
  CHECK(std::memcmp(p.data(), q.data(), 6) == 0);
  CHECK_THROWS_MATCHES(second.set_master(0, first.master(0), 2), std::invalid_argument,
                       test::names({"master weights", "3", "2"}));
  std::vector<float> pf = {1.0f}, gf = {0.5f};
  multopt::Adam<float> wide;
  wide.add_params(pf.data(), gf.data(), 1);
  CHECK_THROWS_MATCHES(wide.set_master(0, pf.data(), 1), std::invalid_argument, test::names({"float", "double"}));
}
