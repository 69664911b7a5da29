// Each schedule's sequence of values against docs/math.md's definitions worked out by hand,
// the groups each one changes, and what each refuses.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <multopt/multopt.hpp>
#include <string>
#include <vector>

namespace arg = multopt::arg;

using multopt::all_groups;

namespace {

// The value of each named hyperparameter of `group` after each of `calls` applications.
template <class Opt, class Schedule>
std::vector<std::vector<double>> trace(Opt& opt, Schedule& schedule, const std::vector<std::string>& names,
                                       int calls, std::size_t group = 0) {
  std::vector<std::vector<double>> values(names.size());
  for (int call = 0; call < calls; ++call) {
    schedule.apply(opt);
    for (std::size_t k = 0; k < names.size(); ++k) values[k].push_back(opt.get(names[k], group));
  }
  return values;
}

template <class Opt, class Schedule>
std::vector<double> trace(Opt& opt, Schedule& schedule, const std::string& name, int calls,
                          std::size_t group = 0) {
  return trace(opt, schedule, std::vector<std::string>{name}, calls, group)[0];
}

// A hybrid optimizer with lr_in 1, lr_out 0.5, lr 1 and g_mix 0.5 in two groups.
multopt::HSGD<double> two_group_hybrid() {
  multopt::HSGD<double> opt(arg::lr_in = 1.0, arg::lr_out = 0.5, arg::lr = 1.0, arg::g_mix = 0.5);
  opt.add_group(opt.hyper(0));
  return opt;
}

}  // namespace

TEST_CASE("the step schedule multiplies each learning rate every step_size epochs", "[schedules]") {
  auto opt = two_group_hybrid();
  multopt::StepSchedule schedule({2, 0.5, 0.25, 0.1});
  const auto values = trace(opt, schedule, {"lr_in", "lr_out", "lr", "g_mix"}, 6);
  CHECK(values[0] == std::vector<double>{1, 0.5, 0.5, 0.25, 0.25, 0.125});
  CHECK(values[1] == std::vector<double>{0.5, 0.125, 0.125, 0.03125, 0.03125, 0.0078125});
  CHECK(values[2] == std::vector<double>{1, 0.1, 0.1, 0.1 * 0.1, 0.1 * 0.1, 0.1 * 0.1 * 0.1});
  CHECK(values[3] == std::vector<double>(6, 0.5));
  CHECK(schedule.epoch() == 6);
  CHECK(opt.get("lr", 1) == opt.get("lr", 0));
}

TEST_CASE("the step schedule changes only the learning rates the group's rule has", "[schedules]") {
  const multopt::StepSchedule::Params every_rate{1, 0.5, 0.5, 0.5};
  multopt::Adam<float> additive(arg::lr = 0.25);
  multopt::StepSchedule on_additive(every_rate);
  CHECK(trace(additive, on_additive, "lr", 3) == std::vector<double>{0.125, 0.0625, 0.03125});

  multopt::MAdam<float> multiplicative(arg::lr_in = 2.0, arg::lr_out = 0.25);
  multopt::StepSchedule on_multiplicative(every_rate);
  const auto values = trace(multiplicative, on_multiplicative, {"lr_in", "lr_out", "beta1"}, 2);
  CHECK(values[0] == std::vector<double>{1.0, 0.5});
  CHECK(values[1] == std::vector<double>{0.125, 0.0625});
  CHECK(values[2] == std::vector<double>{0.9, 0.9});
}

TEST_CASE("the exponential mix schedule sets g0^k past the patience, 1 before", "[schedules]") {
  auto opt = two_group_hybrid();
  multopt::ExponentialMixSchedule schedule({0.5, 2});
  CHECK(trace(opt, schedule, "g_mix", 6) == std::vector<double>{1, 1, 0.5, 0.25, 0.125, 0.0625});
  CHECK(opt.get("g_mix", 1) == 0.0625);
}

TEST_CASE("the inverse exponential mix schedule sets 1 - (1 - g0)^k past the patience, 0 before",
          "[schedules]") {
  auto opt = two_group_hybrid();
  multopt::ExponentialMixSchedule schedule({0.5, 1, true});
  CHECK(trace(opt, schedule, "g_mix", 4) == std::vector<double>{0, 0.5, 0.75, 0.875});
  multopt::ExponentialMixSchedule slow({0.25, -1, true});
  CHECK(trace(opt, slow, "g_mix", 3) == std::vector<double>{0.25, 0.4375, 0.578125});
}

TEST_CASE("an exponential mix with patience -1 or 0 acts from the first call", "[schedules]") {
  for (long patience : {-1L, 0L}) {
    auto opt = two_group_hybrid();
    multopt::ExponentialMixSchedule schedule({0.9, patience});
    const auto g = trace(opt, schedule, "g_mix", 3);
    CHECK(g[0] == Approx(0.9).epsilon(1e-15));
    CHECK(g[1] == Approx(0.81).epsilon(1e-15));
    CHECK(g[2] == Approx(0.729).epsilon(1e-15));
  }
  CHECK(multopt::ExponentialMixSchedule({0.9}).params().patience == -1);
}

// The top bits of the first outputs of SplitMix64 seeded with 42 (computed by an independent
// implementation, checked against the published outputs below).
const std::vector<double> seed_42_mixes{1, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1, 1, 1, 0};

TEST_CASE("the random mix's generator is SplitMix64", "[schedules]") {
  // The first outputs for seed 1234567 of the reference implementation (Vigna's splitmix64.c).
  CHECK(multopt::RandomMixSchedule::splitmix64(1234567, 1) == 6457827717110365317u);
  CHECK(multopt::RandomMixSchedule::splitmix64(1234567, 2) == 3203168211198807973u);
  CHECK(multopt::RandomMixSchedule::splitmix64(1234567, 3) == 9817491932198370423u);
}

TEST_CASE("the random mix schedule draws 0 or 1 past the patience and leaves g_mix before", "[schedules]") {
  auto opt = two_group_hybrid();
  multopt::RandomMixSchedule schedule({2, 42});
  std::vector<double> expected{0.5, 0.5};
  expected.insert(expected.end(), seed_42_mixes.begin(), seed_42_mixes.end());
  CHECK(trace(opt, schedule, "g_mix", 18) == expected);
  CHECK(opt.get("g_mix", 1) == opt.get("g_mix", 0));  // one draw per call for all groups
}

TEST_CASE("the random mix schedule is fair, seedable, and resumes where seek() puts it", "[schedules]") {
  auto opt = two_group_hybrid();
  multopt::RandomMixSchedule long_run({-1, 7});
  const auto mixes = trace(opt, long_run, "g_mix", 10000);
  double ones = 0;
  for (double g : mixes) ones += g;
  CHECK(ones > 4800);
  CHECK(ones < 5200);

  multopt::RandomMixSchedule other_seed({-1, 8});
  CHECK(trace(opt, other_seed, "g_mix", 64) != std::vector<double>(mixes.begin(), mixes.begin() + 64));

  multopt::RandomMixSchedule resumed({-1, 7});
  resumed.seek(5000);
  CHECK(trace(opt, resumed, "g_mix", 20) == std::vector<double>(mixes.begin() + 5000, mixes.begin() + 5020));
  resumed.seek(3);  // backwards too
  CHECK(trace(opt, resumed, "g_mix", 5) == std::vector<double>(mixes.begin() + 3, mixes.begin() + 8));
  CHECK(resumed.epoch() == 8);
}

TEST_CASE("a schedule changes the group it names, or all of them", "[schedules]") {
  auto opt = two_group_hybrid();
  multopt::ExponentialMixSchedule only_second({0.5}, 1);
  only_second.apply(opt);
  CHECK(opt.get("g_mix", 0) == 0.5);
  CHECK(opt.get("g_mix", 1) == 0.5);
  only_second.apply(opt);
  CHECK(opt.get("g_mix", 0) == 0.5);
  CHECK(opt.get("g_mix", 1) == 0.25);

  multopt::StepSchedule every_group({1, 1.0, 1.0, 0.5}, all_groups);
  every_group.apply(opt);
  CHECK(opt.get("lr", 0) == 0.5);
  CHECK(opt.get("lr", 1) == 0.5);
  CHECK(every_group.group() == all_groups);
}

TEST_CASE("a function of the epoch plugs in as a schedule", "[schedules]") {
  using Opt = multopt::SGD<double>;
  Opt opt(arg::lr = 0.1);
  opt.add_group(opt.hyper(0));

  multopt::FunctionSchedule<Opt::Hyper> inverse_time(
      "lr", [](long epoch) { return 1.0 / double(epoch); }, 1);
  CHECK(trace(opt, inverse_time, "lr", 4, 1) == std::vector<double>{1.0, 0.5, 1.0 / 3.0, 0.25});
  CHECK(opt.get("lr", 0) == 0.1);
  CHECK(inverse_time.epoch() == 4);

  // Settings that constrain each other change together.
  std::vector<long> epochs;
  multopt::FunctionSchedule<Opt::Hyper> warm_momentum([&](Opt::Hyper& hyper, long epoch) {
    epochs.push_back(epoch);
    if (epoch == 2) hyper.set_all({{"momentum", 0.9}, {"nesterov", 1}});
  });
  CHECK(trace(opt, warm_momentum, "nesterov", 3, 1) == std::vector<double>{0, 1, 1});
  CHECK(opt.get("momentum", 0) == 0.9);
  CHECK(epochs == std::vector<long>{1, 1, 2, 2, 3, 3});  // once per group and epoch
}

TEST_CASE("a failed application leaves every group and the schedule as they were", "[schedules]") {
  using Opt = multopt::SGD<double>;
  Opt opt(arg::lr = 1.0);
  opt.add_group(opt.hyper(0));
  opt.set("lr", 0.25, 1);
  multopt::FunctionSchedule<Opt::Hyper> subtract([](Opt::Hyper& hyper, long) { hyper.rule.lr -= 0.5; });
  CHECK_THROWS_WITH(subtract.apply(opt), Catch::StartsWith("multopt: the function schedule's change for epoch 1 to "
                                                            "group 1 is invalid: lr = -0.25 is invalid: it must be"));
  CHECK(opt.get("lr", 0) == 1.0);
  CHECK(opt.get("lr", 1) == 0.25);
  CHECK(subtract.epoch() == 0);

  multopt::FunctionSchedule<Opt::Hyper> fail([](Opt::Hyper&, long) { throw std::runtime_error("user error"); });
  CHECK_THROWS_AS(fail.apply(opt), std::runtime_error);
  CHECK(fail.epoch() == 0);

  multopt::StepSchedule missing_group({1, 1, 1, 0.5}, 2);
  CHECK_THROWS_AS(missing_group.apply(opt), std::out_of_range);
  CHECK(missing_group.epoch() == 0);
}

TEST_CASE("the mix schedules refuse rules without g_mix", "[schedules]") {
  multopt::MSGD<float> opt;
  multopt::ExponentialMixSchedule exponential({0.5});
  multopt::RandomMixSchedule random;
  CHECK_THROWS_WITH(exponential.apply(opt), Catch::Contains("exponential_mix schedule sets g_mix") &&
                                                Catch::Contains("multiplicative rule does not have"));
  CHECK_THROWS_WITH(random.apply(opt), Catch::Contains("random_mix schedule sets g_mix"));
  CHECK(exponential.epoch() == 0);
  CHECK(random.epoch() == 0);
}

TEST_CASE("schedule parameters are validated, naming the value", "[schedules]") {
  using Catch::Contains;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(multopt::StepSchedule({0}), Contains("step_size = 0 is invalid"));
  CHECK_THROWS_WITH(multopt::StepSchedule({1, -0.5}), Contains("gamma_in = -0.5 is invalid"));
  CHECK_THROWS_WITH(multopt::StepSchedule({1, 1, nan}), Contains("gamma_out = nan is invalid"));
  CHECK_THROWS_WITH(multopt::StepSchedule({1, 1, 1, -1}), Contains("gamma = -1 is invalid"));
  const double inf = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH(multopt::StepSchedule({1, inf}), "multopt: gamma_in = inf is invalid: it must be finite and >= 0");
  CHECK_THROWS_WITH(multopt::StepSchedule({1, 1, inf}), Contains("gamma_out = inf is invalid"));
  CHECK_THROWS_WITH(multopt::StepSchedule({1, 1, 1, inf}), Contains("gamma = inf is invalid"));
  CHECK_THROWS_WITH(multopt::ExponentialMixSchedule({1.5}), Contains("g0 = 1.5 is invalid"));
  CHECK_THROWS_WITH(multopt::ExponentialMixSchedule({0.5, -2}), Contains("patience = -2 is invalid"));
  CHECK_THROWS_WITH(multopt::RandomMixSchedule({-3}), Contains("patience = -3 is invalid"));
  multopt::RandomMixSchedule schedule;
  CHECK_THROWS_WITH(schedule.seek(-1), Contains("epoch = -1 is invalid"));

  using Hyper = multopt::Adam<float>::Hyper;
  CHECK_THROWS_WITH(multopt::FunctionSchedule<Hyper>("momentum", [](long) { return 0.0; }),
                    Contains("unknown hyperparameter 'momentum'"));
  CHECK_THROWS_AS(multopt::FunctionSchedule<Hyper>(multopt::FunctionSchedule<Hyper>::Change{}),
                  std::invalid_argument);
}

TEST_CASE("a step schedule whose gamma overflows a learning rate is refused, naming the gamma", "[schedules]") {
  multopt::SGD<double> opt(arg::lr = 10.0);
  multopt::StepSchedule huge({1, 1, 1, 1e308});
  CHECK_THROWS_WITH(huge.apply(opt), "multopt: the step schedule's gamma = 1e+308 makes lr = inf at epoch 1 "
                                     "(from lr = 10): learning rates must stay finite");
  CHECK(opt.get("lr") == 10.0);
  CHECK(huge.epoch() == 0);
  // Where the product stays finite, it is taken.
  multopt::SGD<double> small(arg::lr = 1e-9);
  huge.apply(small);
  CHECK(small.get("lr") == 1e-9 * 1e308);
  CHECK(huge.epoch() == 1);

  auto hybrid = two_group_hybrid();
  hybrid.set("lr_out", 1e308, 1);
  multopt::StepSchedule out({2, 1, 10});
  out.apply(hybrid);
  CHECK_THROWS_WITH(out.apply(hybrid), "multopt: the step schedule's gamma_out = 10 makes lr_out = inf at epoch 2 "
                                       "(from lr_out = 1e+308): learning rates must stay finite");
  CHECK(hybrid.get("lr_out", 0) == 0.5);  // neither group changed
  CHECK(out.epoch() == 1);
}

TEST_CASE("seek() refuses the largest long, and a schedule counts up to it and no further", "[schedules]") {
  constexpr long most = std::numeric_limits<long>::max();
  multopt::SGD<double> opt(arg::lr = 1.0);
  multopt::StepSchedule schedule({1, 1, 1, 0.5});
  schedule.seek(7);
  CHECK_THROWS_WITH(schedule.seek(most), "multopt: epoch = 9223372036854775807 is invalid: it must be at most "
                                         "9223372036854775806, so that the next epoch can be counted");
  CHECK(schedule.epoch() == 7);
  schedule.seek(most - 1);
  schedule.apply(opt);
  CHECK(schedule.epoch() == most);
  CHECK(opt.get("lr") == 0.5);
  CHECK_THROWS_AS(schedule.apply(opt), std::overflow_error);
  CHECK_THROWS_WITH(schedule.apply(opt), Catch::Contains("has counted 9223372036854775807 epochs"));
  CHECK(schedule.epoch() == most);
  CHECK(opt.get("lr") == 0.5);
}

TEST_CASE("the random mix draws at once at any epoch, up to the largest", "[schedules]") {
  constexpr long most = std::numeric_limits<long>::max();
  // Draws j = most - 1 and most, then most - 3 and most - 2 (patience 2), of seed 7, computed by
  // an independent implementation of SplitMix64.
  for (const auto& [patience, expected] : {std::pair{-1L, std::vector<double>{1, 1}}, {2L, {0, 0}}}) {
    auto opt = two_group_hybrid();
    multopt::RandomMixSchedule late({patience, 7});
    late.seek(most - 2);
    CHECK(trace(opt, late, "g_mix", 2) == expected);
    CHECK(late.epoch() == most);
  }
  // Seeds 42 and 7 from draw 10^12 + 1 on.
  auto opt = two_group_hybrid();
  multopt::RandomMixSchedule seed_42({-1, 42}), seed_7({-1, 7});
  seed_42.seek(1000000000000);
  seed_7.seek(1000000000000);
  CHECK(trace(opt, seed_42, "g_mix", 5) == std::vector<double>{0, 1, 1, 1, 1});
  CHECK(trace(opt, seed_7, "g_mix", 5) == std::vector<double>{0, 0, 0, 1, 1});
}

TEST_CASE("mix_at takes any epoch with any patience, without overflowing", "[schedules]") {
  constexpr long most = std::numeric_limits<long>::max(), least = std::numeric_limits<long>::min();
  // epoch − patience overflows for a very negative epoch (least − (most − 2) used to wrap around
  // to 3, as if the third call past the patience): every epoch up to the patience is still waiting.
  const multopt::ExponentialMixSchedule patient({0.5, most}), patient_inverse({0.5, most, true});
  for (long epoch : {least, least + 1, -most / 2 - 2, -1L, 0L, 1L, most}) {
    CHECK(patient.mix_at(epoch) == 1.0);
    CHECK(patient_inverse.mix_at(epoch) == 0.0);
  }
  const multopt::ExponentialMixSchedule late({0.5, most - 2}), late_inverse({0.25, most - 2, true});
  CHECK(late.mix_at(least) == 1.0);
  CHECK(late.mix_at(most - 2) == 1.0);
  CHECK(late.mix_at(most - 1) == 0.5);
  CHECK(late.mix_at(most) == 0.25);
  CHECK(late_inverse.mix_at(least) == 0.0);
  CHECK(late_inverse.mix_at(most) == 0.4375);
  for (long patience : {-1L, 0L}) {
    const multopt::ExponentialMixSchedule eager({0.5, patience});
    CHECK(eager.mix_at(least) == 1.0);
    CHECK(eager.mix_at(0) == 1.0);
    CHECK(eager.mix_at(1) == 0.5);
    CHECK(eager.mix_at(most) == 0.0);  // 0.5^(2^63 − 1) underflows
  }

  // And through apply(), up to the largest epoch.
  auto opt = two_group_hybrid();
  multopt::ExponentialMixSchedule applied({0.5, most - 2});
  applied.seek(most - 3);
  CHECK(trace(opt, applied, "g_mix", 3) == std::vector<double>{1, 0.5, 0.25});
  CHECK(applied.epoch() == most);
}

TEST_CASE("schedules refuse integers far out of range, naming the value exactly", "[schedules]") {
  constexpr long most = std::numeric_limits<long>::max(), least = std::numeric_limits<long>::min();
  CHECK_THROWS_WITH(multopt::StepSchedule({least}),
                    "multopt: step_size = -9223372036854775808 is invalid: it must be >= 1");
  CHECK_THROWS_WITH(multopt::ExponentialMixSchedule({0.5, least}),
                    "multopt: patience = -9223372036854775808 is invalid: it must be >= -1");
  CHECK_THROWS_WITH(multopt::RandomMixSchedule({-most}),
                    "multopt: patience = -9223372036854775807 is invalid: it must be >= -1");
  multopt::ExponentialMixSchedule schedule({0.5});
  schedule.seek(4);
  CHECK_THROWS_WITH(schedule.seek(least), "multopt: epoch = -9223372036854775808 is invalid: it must be >= 0");
  CHECK_THROWS_WITH(schedule.seek(-(1L << 53) - 1), "multopt: epoch = -9007199254740993 is invalid: it must be >= 0");
  CHECK(schedule.epoch() == 4);
}

TEST_CASE("the lr curves' refusals name the curve and its own argument", "[schedules][lr_schedules]") {
  namespace curves = multopt::curves;
  constexpr long least = std::numeric_limits<long>::min();
  CHECK_THROWS_WITH(curves::constant(-1), "multopt: constant: factor = -1 is invalid: it must be finite and >= 0");
  CHECK_THROWS_WITH(curves::linear(-0.5, 1, 4), "multopt: linear: start = -0.5 is invalid: it must be finite and >= 0");
  CHECK_THROWS_WITH(curves::linear(0.5, -1, 4), "multopt: linear: end = -1 is invalid: it must be finite and >= 0");
  CHECK_THROWS_WITH(curves::linear(0.5, 1, 0), "multopt: linear: steps = 0 is invalid: it must be >= 1");
  CHECK_THROWS_WITH(curves::cosine(least), "multopt: cosine: steps = -9223372036854775808 is invalid: it must be >= 1");
  CHECK_THROWS_WITH(curves::cosine(4, -1), "multopt: cosine: floor = -1 is invalid: it must be finite and >= 0");
  CHECK_THROWS_WITH(curves::exponential(-2), "multopt: exponential: gamma = -2 is invalid: it must be finite and >= 0");
  CHECK_THROWS_WITH(curves::step_decay(0, 0.5), "multopt: step_decay: step_size = 0 is invalid: it must be >= 1");
  CHECK_THROWS_WITH(curves::step_decay(2, -0.5),
                    "multopt: step_decay: gamma = -0.5 is invalid: it must be finite and >= 0");

  // warmup_cosine checks its own arguments rather than leaving them to linear and cosine.
  CHECK_THROWS_WITH(curves::warmup_cosine(0, 10), "multopt: warmup_cosine: warmup = 0 is invalid: it must be >= 1");
  CHECK_THROWS_WITH(curves::warmup_cosine(-5, std::numeric_limits<long>::max()),
                    "multopt: warmup_cosine: warmup = -5 is invalid: it must be >= 1");
  CHECK_THROWS_WITH(curves::warmup_cosine(10, 10),
                    "multopt: warmup_cosine: total = 10 is invalid: it must be above warmup = 10");
  CHECK_THROWS_WITH(curves::warmup_cosine(2, 10, -0.5),
                    "multopt: warmup_cosine: floor = -0.5 is invalid: it must be finite and >= 0");
  CHECK_THROWS_WITH(curves::warmup_cosine(2, 10, 0, -1),
                    "multopt: warmup_cosine: start = -1 is invalid: it must be finite and >= 0");
  const auto warm = curves::warmup_cosine(2, 4, 0.5, 0.5);
  CHECK(std::vector<double>{warm(0), warm(1), warm(2), warm(3), warm(4), warm(5)} ==
        std::vector<double>{0.5, 0.75, 1, 0.75, 0.5, 0.5});

  const auto one = curves::constant();
  CHECK_THROWS_WITH(curves::sequence({}, {}), "multopt: sequence: parts is empty: it must hold at least one curve");
  CHECK_THROWS_WITH(curves::sequence({one, one}, {}),
                    "multopt: sequence: milestones.size() = 0 is invalid: it must be parts.size() - 1 = 1");
  CHECK_THROWS_WITH(curves::sequence({one, one}, {0}),
                    "multopt: sequence: milestones[0] = 0 is invalid: it must be >= 1");
  CHECK_THROWS_WITH(curves::sequence({one, one, one}, {5, 5}),
                    "multopt: sequence: milestones[1] = 5 is invalid: it must be above milestones[0] = 5");
  CHECK_THROWS_WITH(curves::sequence({one, nullptr}, {3}), "multopt: sequence: parts[1] is an empty curve");
}
