// Checkpoints: resuming continues a trajectory bit for bit, for every base and rule in float and
// double; every truncated, damaged or unfitting stream is refused with a clear message and
// leaves the optimizer and schedules as they were.
#include <cmath>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "test_support.hpp"

namespace arg = multopt::arg;

namespace {

// A training run of a typed optimizer or one made by name: three tensors (one empty, one not a
// multiple of any packet width) in two groups, the second with all state; a step schedule on
// the second group and, for the hybrid, a random mix on both. Gradients depend on the
// parameters and the step count.
template <class Opt>
class Training {
 public:
  using S = typename Opt::Scalar;

  explicit Training(std::unique_ptr<Opt> made = std::make_unique<Opt>(), std::uint64_t mix_seed = 11)
      : opt(std::move(made)), mix_({2, mix_seed}) {
    test::add_group_with(*opt, test::stateful_settings(opt->hyperparameter_names()));
    const std::size_t sizes[] = {37, 0, 9};
    for (std::size_t k = 0; k < 3; ++k) {
      for (std::size_t i = 0; i < sizes[k]; ++i) params[k].push_back(S(std::sin(1.0 + double(i + 40 * k))));
      grads[k].assign(sizes[k], S(0));
      opt->add_params(params[k].data(), grads[k].data(), sizes[k], k == 0 ? 0 : 1);
    }
  }
  Training(const Training&) = delete;  // the optimizer points into params and grads
  Training& operator=(const Training&) = delete;

  void train(int epochs) {
    for (int epoch = 0; epoch < epochs; ++epoch) {
      const S step = S(opt->step_count(0) + 1);
      for (std::size_t k = 0; k < 3; ++k)
        for (std::size_t i = 0; i < params[k].size(); ++i)
          grads[k][i] = std::sin(params[k][i] * step) + S(0.1) * S(i % 5);
      opt->step();
      step_schedule_.apply(*opt);
      if (is_hybrid()) mix_.apply(*opt);
    }
  }

  std::string save() const {
    std::ostringstream out(std::ios::binary);
    with_schedules(*this, [&](const auto&... schedules) { multopt::save_checkpoint(out, *opt, schedules...); });
    return out.str();
  }
  void load(const std::string& bytes, const multopt::LoadOptions& options = {}) {
    std::istringstream in(bytes, std::ios::binary);
    with_schedules(*this,
                   [&](auto&... schedules) { multopt::load_checkpoint(in, *opt, options, schedules...); });
  }
  // The parameters live in the caller's memory, which a checkpoint does not hold.
  void copy_params_from(const Training& other) {
    for (std::size_t k = 0; k < 3; ++k)
      std::copy(other.params[k].begin(), other.params[k].end(), params[k].begin());
  }
  long schedule_epoch() const { return step_schedule_.epoch(); }

  std::unique_ptr<Opt> opt;
  std::vector<S> params[3], grads[3];

 private:
  bool is_hybrid() const { return std::string(opt->rule_name()) == "hybrid"; }

  template <class Self, class F>
  static void with_schedules(Self& self, F&& f) {
    if (self.is_hybrid()) {
      f(self.step_schedule_, self.mix_);
    } else {
      f(self.step_schedule_);
    }
  }

  multopt::StepSchedule step_schedule_{{3, 0.5, 0.5, 0.5}, 1};
  multopt::RandomMixSchedule mix_;
};

// The complete state of a run as a checkpoint holds it, plus the parameters.
template <class Opt>
std::pair<std::string, std::vector<typename Opt::Scalar>> snapshot(const Training<Opt>& run) {
  std::vector<typename Opt::Scalar> params;
  for (const auto& p : run.params) params.insert(params.end(), p.begin(), p.end());
  return {run.save(), params};
}

// Loads `bytes` into `run`: true if it threw a multopt error and left the run as it was.
template <class Opt>
bool refused_cleanly(Training<Opt>& run, const std::string& bytes, const char* expected_words) {
  const auto before = snapshot(run);
  std::string message;
  try {
    run.load(bytes);
  } catch (const std::runtime_error& e) {
    message = e.what();
  } catch (const std::invalid_argument& e) {
    message = e.what();
  }
  const bool clean = message.rfind("multopt: ", 0) == 0 && message.find(expected_words) != std::string::npos &&
                     snapshot(run) == before;
  if (!clean) UNSCOPED_INFO("message: '" << message << "', expected '" << expected_words << "'");
  return clean;
}

template <class S>
using Named = Training<multopt::AnyOptimizer<S>>;

std::string with_byte(std::string bytes, std::size_t at, unsigned char value) {
  bytes[at] = char(value);
  return bytes;
}

}  // namespace

// Every combination made by name (the checkpoint is the typed optimizer's bytes), in float and double.
TEMPLATE_TEST_CASE("10 steps, save, load, 10 more is bit-identical to 20 straight", "[checkpoint]", float,
                   double) {
  const auto combination = GENERATE(from_range(test::every_combination()));
  INFO(test::describe(combination));
  Named<TestType> straight(test::make_named<TestType>(combination)), first(test::make_named<TestType>(combination)),
      resumed(test::make_named<TestType>(combination));
  straight.train(20);
  first.train(10);
  const std::string saved = first.save();
  resumed.train(3);  // state of its own, which the load replaces
  resumed.copy_params_from(first);
  resumed.load(saved);
  CHECK(resumed.save() == saved);
  resumed.train(10);
  for (std::size_t k = 0; k < 3; ++k) CHECK(resumed.params[k] == straight.params[k]);
  CHECK(resumed.save() == straight.save());
  CHECK(resumed.schedule_epoch() == 20);
  CHECK(resumed.opt->step_count(2) == 20);
}

// A damaged copy of a checkpoint, and the words its refusal must name.
struct DamagedCopy {
  std::string bytes;
  const char* words;
};

// Every damaged copy of a combination's checkpoint after 4 steps (damage(saved, i) for each byte
// position i) is refused by an optimizer 2 steps in, which is left as it was and then loads the
// undamaged checkpoint.
template <class S, class Damage>
void check_every_damage_refused(const test::Combination& combination, const Damage& damage) {
  INFO(test::describe(combination));
  Named<S> saver(test::make_named<S>(combination)), target(test::make_named<S>(combination));
  saver.train(4);
  target.train(2);
  const std::string saved = saver.save();
  std::size_t clean = 0;
  for (std::size_t at = 0; at < saved.size(); ++at) {
    const auto [bytes, words] = damage(saved, at);
    clean += refused_cleanly(target, bytes, words);
  }
  CHECK(clean == saved.size());
  target.load(saved);
  CHECK(target.save() == saved);
}

TEMPLATE_TEST_CASE("a truncated checkpoint is refused at every length", "[checkpoint]", float, double) {
  const auto combination = GENERATE(from_range(test::every_combination()));
  check_every_damage_refused<TestType>(combination, [](const std::string& saved, std::size_t length) {
    return DamagedCopy{saved.substr(0, length), "truncated"};
  });
}

TEMPLATE_TEST_CASE("a checkpoint with any byte changed is refused", "[checkpoint]", float, double) {
  const auto combination = GENERATE(from_range(test::every_combination()));
  check_every_damage_refused<TestType>(combination, [](const std::string& saved, std::size_t at) {
    // Damage to the magic, the version or the header length shows as such; elsewhere the checksums catch it.
    const char* words = at < 8 ? "not a multopt checkpoint" : at < 12 ? "format version" : "";
    return DamagedCopy{with_byte(saved, at, static_cast<unsigned char>(saved[at] ^ 0x10)), words};
  });
}

TEST_CASE("a checkpoint of another format version is refused with the version", "[checkpoint]") {
  Training<multopt::Adam<float>> saver, target;
  saver.train(2);
  const std::string newer = with_byte(saver.save(), 8, 5);
  CHECK(refused_cleanly(target, newer, "format version 5; this multopt reads versions 1 to 4"));
  CHECK(refused_cleanly(target, "", "truncated: the stream ends after 0 bytes, inside the magic bytes"));
  CHECK(refused_cleanly(target, "PK\3\4 a zip file, not a checkpoint", "not a multopt checkpoint"));
}

TEST_CASE("a checkpoint of another optimizer type is refused", "[checkpoint]") {
  Training<multopt::Adam<double>> adam;
  Training<multopt::MAdam<double>> madam;
  Training<multopt::RMSprop<double>> rmsprop;
  adam.train(2);
  CHECK(refused_cleanly(madam, adam.save(),
                        "it is of adam with the additive rule, the optimizer is adam with "
                        "the multiplicative rule"));
  CHECK(
      refused_cleanly(rmsprop, adam.save(), "it is of adam with the additive rule, the optimizer is rmsprop"));
}

TEST_CASE("a checkpoint of other tensors or groups is refused", "[checkpoint]") {
  std::vector<float> p(8, 1.0f), g(8, 0.5f);
  auto adam = [&](std::vector<std::size_t> sizes, std::vector<std::size_t> groups) {
    multopt::Adam<float> opt;
    opt.add_group(opt.hyper());
    for (std::size_t k = 0; k < sizes.size(); ++k) opt.add_params(p.data(), g.data(), sizes[k], groups[k]);
    return opt;
  };
  auto saved = adam({8, 3}, {0, 1});
  saved.step();
  std::ostringstream out;
  multopt::save_checkpoint(out, saved);
  const std::string bytes = out.str();

  auto refuses = [&](multopt::Adam<float>&& target, const char* words) {
    std::ostringstream before;
    multopt::save_checkpoint(before, target);
    std::istringstream in(bytes);
    CHECK_THROWS_WITH(multopt::load_checkpoint(in, target),
                      Catch::StartsWith("multopt: the checkpoint does not fit") && Catch::Contains(words));
    std::ostringstream after;
    multopt::save_checkpoint(after, target);
    CHECK(after.str() == before.str());
  };
  refuses(adam({8}, {0}), "it has 2 tensors, the optimizer 1");
  refuses(adam({8, 3, 1}, {0, 1, 1}), "it has 2 tensors, the optimizer 3");
  refuses(adam({8, 4}, {0, 1}), "its tensor 1 has 3 elements, the optimizer's 4");
  refuses(adam({8, 3}, {0, 0}), "its tensor 1 is in group 1, the optimizer's in group 0");
  multopt::Adam<float> one_group;
  one_group.add_params(p.data(), g.data(), 8);
  one_group.add_params(p.data(), g.data(), 3);
  refuses(std::move(one_group), "it has 2 parameter groups, the optimizer 1");
}

TEST_CASE("schedules must be the kinds, on the groups, that were saved", "[checkpoint]") {
  multopt::HSGD<double> opt;
  multopt::ExponentialMixSchedule exponential({0.5});
  multopt::RandomMixSchedule random({-1, 3});
  for (int epoch = 0; epoch < 3; ++epoch) {
    exponential.apply(opt);
    random.apply(opt);
  }
  std::ostringstream out;
  multopt::save_checkpoint(out, opt, exponential, random);

  auto refuses = [&](auto... schedules) {
    std::istringstream in(out.str());
    CHECK_THROWS_AS(multopt::load_checkpoint(in, opt, schedules...), std::invalid_argument);
  };
  refuses();
  refuses(exponential);
  refuses(random, exponential);
  refuses(exponential, multopt::RandomMixSchedule({-1, 3}, 0));
  std::istringstream in(out.str());
  CHECK_THROWS_WITH(multopt::load_checkpoint(in, opt, random, exponential),
                    Catch::Contains("its schedule 0 is exponential_mix on all groups, the one passed "
                                    "random_mix on all groups"));

  // Positions come back; the random mix continues its sequence.
  multopt::ExponentialMixSchedule exponential_again({0.5});
  multopt::RandomMixSchedule random_again({-1, 3});
  std::istringstream good(out.str());
  multopt::load_checkpoint(good, opt, exponential_again, random_again);
  CHECK(exponential_again.epoch() == 3);
  CHECK(random_again.epoch() == 3);
  random.apply(opt);
  const double next = opt.get("g_mix");
  random_again.apply(opt);
  CHECK(opt.get("g_mix") == next);
}

TEST_CASE("a float checkpoint widens into a double optimizer exactly", "[checkpoint]") {
  Training<multopt::MRMSprop<float>> single;
  Training<multopt::MRMSprop<double>> twice;
  single.train(5);
  twice.load(single.save());
  for (std::size_t tensor : {0, 2}) {
    CHECK(twice.opt->step_count(tensor) == 5);
    for (int array = 0; array < 3; ++array) {
      const float* narrow = single.opt->state(tensor, array);
      const double* wide = twice.opt->state(tensor, array);
      REQUIRE((narrow == nullptr) == (wide == nullptr));
      for (std::size_t i = 0; narrow && i < single.opt->size(tensor); ++i) CHECK(wide[i] == double(narrow[i]));
    }
  }
  CHECK(twice.schedule_epoch() == 5);
}

TEST_CASE("a double checkpoint loads into a float optimizer only when narrowing is allowed", "[checkpoint]") {
  Training<multopt::HAdam<double>> wide;
  Training<multopt::HAdam<float>> narrow;
  wide.train(5);
  const std::string saved = wide.save();
  CHECK(refused_cleanly(narrow, saved, "it holds double state and the optimizer steps float"));
  narrow.load(saved, multopt::LoadOptions{true});
  for (int array = 0; array < 3; ++array)
    for (std::size_t i = 0; i < 9; ++i)
      CHECK(narrow.opt->state(2, array)[i] == float(wide.opt->state(2, array)[i]));
  CHECK(narrow.opt->hyper(1).rule.g_mix == wide.opt->hyper(1).rule.g_mix);

  // A state value beyond float's range cannot narrow.
  multopt::Adagrad<double> huge(arg::lr = 1.0, arg::initial_accumulator_value = 1e300);
  std::vector<double> p{1.0}, g{0.0};
  huge.add_params(p.data(), g.data(), 1);
  huge.step();
  std::stringstream stream;
  multopt::save_checkpoint(stream, huge);
  multopt::Adagrad<float> small;
  std::vector<float> pf{1.0f}, gf{0.0f};
  small.add_params(pf.data(), gf.data(), 1);
  CHECK_THROWS_WITH(multopt::load_checkpoint(stream, small, multopt::LoadOptions{true}),
                    Catch::Contains("tensor 0's state array 0 holds a value beyond the range of float"));
  CHECK(small.state(0, 0) == nullptr);
}

TEST_CASE("a checkpoint inside a longer stream is read to its end and no further", "[checkpoint]") {
  Training<multopt::HSGD<float>> saver, target;
  saver.train(3);
  std::stringstream stream(std::ios::in | std::ios::out | std::ios::binary);
  stream << "model weights before,";
  const auto start = stream.tellp();
  stream << saver.save() << ",and after";
  stream.seekg(start);
  multopt::StepSchedule schedule({3, 0.5, 0.5, 0.5}, 1);
  multopt::RandomMixSchedule mix({2, 11});
  multopt::load_checkpoint(stream, *target.opt, schedule, mix);
  std::string rest;
  std::getline(stream, rest);
  CHECK(rest == ",and after");
  CHECK(schedule.epoch() == 3);
}

TEST_CASE("an optimizer that never stepped saves and loads with no state arrays", "[checkpoint]") {
  Training<multopt::Adam<double>> fresh, trained;
  trained.train(2);
  trained.load(fresh.save());
  CHECK(trained.opt->step_count(0) == 0);
  CHECK(trained.opt->state(0, 0) == nullptr);
  CHECK(trained.save() == fresh.save());
}

TEST_CASE("checkpoint checksums are zlib's CRC-32", "[checkpoint]") {
  multopt::detail::Crc32 crc;
  const std::string check = "123456789";
  crc.update(reinterpret_cast<const unsigned char*>(check.data()), check.size());
  CHECK(crc.value() == 0xCBF43926u);
}

TEST_CASE("a header with right checksums that breaks the format is refused as malformed", "[checkpoint]") {
  using Header = multopt::detail::CheckpointHeader;
  multopt::SGD<float> opt;
  std::vector<float> p(3, 1.0f), g(3, 0.0f);
  opt.add_params(p.data(), g.data(), 3);
  auto refuses = [&](auto change, const char* words) {
    std::istringstream in(test::with_header(opt, change));
    CHECK_THROWS_WITH(
        multopt::load_checkpoint(in, opt),
        Catch::StartsWith("multopt: the checkpoint's header is malformed") && Catch::Contains(words));
  };
  refuses([](Header& h) { h.scalar = "half"; }, "unknown scalar type 'half'");
  refuses([](Header& h) { h.groups[0].pop_back(); }, "hyperparameter 'maximize' 0 times");
  refuses([](Header& h) { h.groups[0].push_back(h.groups[0][0]); }, "hyperparameter 'lr' 2 times");
  refuses([](Header& h) { h.tensors[0].array_mask = 2; }, "tensor 0 has state arrays the sgd base does not have");
  std::istringstream intact(test::with_header(opt, [](Header&) {}));
  multopt::load_checkpoint(intact, opt);
}
