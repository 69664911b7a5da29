// The epoch schedules (docs/schedules.md): StepSchedule, ExponentialMixSchedule,
// RandomMixSchedule and FunctionSchedule, each a Schedule (schedule.hpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "schedule.hpp"
#include "validate.hpp"

namespace multopt {

// Every step_size epochs multiplies lr_in by gamma_in, lr_out by gamma_out and lr by gamma.
// A group changes only the learning rates its rule has, so one configuration serves every rule.
class StepSchedule : public Schedule {
 public:
  static constexpr const char* kind = "step";

  struct Params {
    long step_size = 1;
    double gamma_in = 1.0;
    double gamma_out = 1.0;
    double gamma = 1.0;

    void validate() const {
      if (step_size < 1) reject_long("step_size", step_size, ">= 1");
      // Learning rates must stay finite and >= 0.
      for (const auto& [name, value] : {std::pair{"gamma_in", gamma_in}, {"gamma_out", gamma_out}, {"gamma", gamma}})
        if (!(value >= 0.0 && value <= std::numeric_limits<double>::max())) reject(name, value, "finite and >= 0");
    }
  };

  explicit StepSchedule(const Params& params, std::size_t group = all_groups)
      : Schedule(group), params_(params) {
    params_.validate();
  }
  const Params& params() const { return params_; }

  template <class Opt>
  void apply(Opt& opt) {
    advance(kind, opt, [this](typename Opt::Hyper& hyper, long epoch) {
      if (epoch % params_.step_size != 0) return;
      const std::tuple<const char*, const char*, double> rates[] = {
          {"lr_in", "gamma_in", params_.gamma_in}, {"lr_out", "gamma_out", params_.gamma_out},
          {"lr", "gamma", params_.gamma}};
      for (const auto& [name, gamma_name, gamma] : rates) {
        if (!hyper.has(name)) continue;
        double value = hyper.get(name);
        scale(value, name, gamma_name, gamma, epoch);
        hyper.set(name, value);
      }
    });
  }

 private:
  // rate *= gamma, refused where the product overflows, naming the gamma that made it.
  static void scale(double& rate, const char* name, const char* gamma_name, double gamma, long epoch) {
    const double scaled = rate * gamma;
    if (!(scaled <= std::numeric_limits<double>::max())) {
      throw std::invalid_argument(std::string("multopt: the step schedule's ") + gamma_name + " = " + shown(gamma) +
                                  " makes " + name + " = " + shown(scaled) + " at epoch " + std::to_string(epoch) +
                                  " (from " + name + " = " + shown(rate) + "): learning rates must stay finite");
    }
    rate = scaled;
  }

  Params params_;
};

// Moves the hybrid rule's g_mix from multiplicative (1) towards additive (0), or with
// `inverse` the other way: at the k-th call past the first `patience` calls g_mix = g0^k
// (inverse: 1 − (1 − g0)^k); during the first `patience` calls g_mix = 1 (inverse: 0).
class ExponentialMixSchedule : public Schedule {
 public:
  static constexpr const char* kind = "exponential_mix";

  struct Params {
    double g0 = 1.0;
    long patience = -1;
    bool inverse = false;

    void validate() const {
      require_in_range("g0", g0);
      validate_patience(patience);
    }
  };

  explicit ExponentialMixSchedule(const Params& params, std::size_t group = all_groups)
      : Schedule(group), params_(params) {
    params_.validate();
  }
  const Params& params() const { return params_; }

  // The g_mix that the epoch-th call sets, for any epoch (Python's load_state_dict takes any):
  // compared before subtracting, as epoch − patience overflows for a very negative epoch.
  double mix_at(long epoch) const {
    const long waited = calls_before_acting(params_.patience);
    if (epoch <= waited) return params_.inverse ? 0.0 : 1.0;
    const long k = epoch - waited;  // both >= 0: no overflow
    return params_.inverse ? 1.0 - std::pow(1.0 - params_.g0, double(k)) : std::pow(params_.g0, double(k));
  }

  template <class Opt>
  void apply(Opt& opt) {
    require_g_mix(kind, opt);
    advance(kind, opt, [this](auto& hyper, long epoch) { hyper.set("g_mix", mix_at(epoch)); });
  }

 private:
  Params params_;
};

// Past the first `patience` calls, each call sets the hybrid rule's g_mix to 0 or 1 with equal
// probability (one draw per call, shared by the groups it changes); earlier calls leave it as
// it is. The j-th draw is the top bit of the j-th output of SplitMix64 seeded with `seed`, a
// function of seed and j alone: the same mixes with every compiler, and after seek() to any
// epoch at once.
class RandomMixSchedule : public Schedule {
 public:
  static constexpr const char* kind = "random_mix";

  struct Params {
    long patience = -1;
    std::uint64_t seed = 5489;  // std::mt19937_64::default_seed, this schedule's generator once

    void validate() const { validate_patience(patience); }
  };

  explicit RandomMixSchedule(const Params& params, std::size_t group = all_groups)
      : Schedule(group), params_(params) {
    params_.validate();
  }
  RandomMixSchedule() : RandomMixSchedule(Params{}) {}
  const Params& params() const { return params_; }

  // The j-th output (j = 1, 2, ...) of SplitMix64 (Steele, Lea and Flood, "Fast splittable
  // pseudorandom number generators", OOPSLA 2014; Java's SplittableRandom) seeded with `seed`.
  static std::uint64_t splitmix64(std::uint64_t seed, std::uint64_t j) {
    std::uint64_t z = seed + j * 0x9E3779B97F4A7C15u;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
  }

  template <class Opt>
  void apply(Opt& opt) {
    require_g_mix(kind, opt);
    const long earlier_draws = epoch() - calls_before_acting(params_.patience);  // both >= 0: no overflow
    if (earlier_draws < 0) return advance(kind, opt, [](auto&, long) {});
    const double mix = double(splitmix64(params_.seed, std::uint64_t(earlier_draws) + 1) >> 63);
    advance(kind, opt, [mix](auto& hyper, long) { hyper.set("g_mix", mix); });
  }

 private:
  Params params_;
};

// A schedule from the caller's function of the epoch, for the hyperparameters of optimizers
// whose Hyper type is H (Optimizer::Hyper). It plugs in like the others: the same apply(),
// group targeting, all-or-nothing validation and checkpointed epoch.
template <class H>
class FunctionSchedule : public Schedule {
 public:
  static constexpr const char* kind = "function";
  // Changes any hyperparameters of one group; epoch is 1 on the first call.
  using Change = std::function<void(H& hyper, long epoch)>;

  explicit FunctionSchedule(Change change, std::size_t group = all_groups)
      : Schedule(group), change_(std::move(change)) {
    if (!change_) throw std::invalid_argument("multopt: a function schedule needs a function");
  }

  // Sets the hyperparameter `name` to value(epoch).
  FunctionSchedule(const std::string& name, std::function<double(long epoch)> value,
                   std::size_t group = all_groups)
      : FunctionSchedule(setter(name, std::move(value)), group) {}

  template <class Opt>
  void apply(Opt& opt) {
    static_assert(std::is_same_v<typename Opt::Hyper, H>,
                  "this FunctionSchedule was made for another optimizer's hyperparameters");
    advance(kind, opt, change_);
  }

 private:
  static Change setter(const std::string& name, std::function<double(long epoch)> value) {
    if (!value) throw std::invalid_argument("multopt: a function schedule needs a function");
    H().get(name);  // rejects an unknown name now rather than at the first epoch
    return [name, value = std::move(value)](H& hyper, long epoch) { hyper.set(name, value(epoch)); };
  }

  Change change_;
};

}  // namespace multopt
