// What every epoch schedule shares (docs/schedules.md): schedules are value objects that change
// one group's hyperparameters or all groups' at each apply(optimizer), counting epochs; seek() is
// how checkpoints restore them. The schedules themselves are in schedules.hpp.
#pragma once

#include <algorithm>
#include <cstddef>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "validate.hpp"

namespace multopt {

// The group index that makes a schedule change every parameter group.
inline constexpr std::size_t all_groups = static_cast<std::size_t>(-1);

// What every schedule shares: the groups it changes, the epochs it has seen, and the
// all-or-nothing way it changes them.
class Schedule {
 public:
  std::size_t group() const { return group_; }
  // How many times apply() has run: the number of the last epoch the schedule acted on.
  long epoch() const { return epoch_; }
  // Continues as if apply() had run `epoch` times. The optimizer is not touched: the
  // hyperparameters the schedule set are the optimizer's state, saved with it. The largest
  // long is refused, as checkpoints refuse it: the next apply() could not count its epoch.
  void seek(long epoch) {
    if (epoch < 0) reject_long("epoch", epoch, ">= 0");
    if (epoch == most_epochs)
      reject_long("epoch", epoch,
                          "at most " + std::to_string(most_epochs - 1) + ", so that the next epoch can be counted");
    epoch_ = epoch;
  }

 protected:
  explicit Schedule(std::size_t group) : group_(group) {}
  ~Schedule() = default;  // schedules are values, never deleted through this base

  // Calls change(hyper, epoch) on a copy of each targeted group's hyperparameters, epoch
  // being this call's number (1 on the first), and stores the copies only when every one
  // changed and validated: on any error the optimizer and the schedule stay as they were. A
  // value that fails validation is reported as the `kind` schedule's doing.
  template <class Opt, class Change>
  void advance(const char* kind, Opt& opt, Change&& change) {
    if (epoch_ == most_epochs) {
      throw std::overflow_error(std::string("multopt: the ") + kind + " schedule has counted " +
                                std::to_string(epoch_) + " epochs, the most a long can count");
    }
    const long epoch = epoch_ + 1;
    const bool every = group_ == all_groups;
    const std::size_t first = every ? 0 : group_;
    const std::size_t count = every ? opt.group_count() : 1;
    std::vector<typename Opt::Hyper> changed;
    changed.reserve(count);
    for (std::size_t k = 0; k < count; ++k) {
      changed.push_back(opt.hyper(first + k));  // out_of_range for a group that does not exist
      change(changed.back(), epoch);
      try {
        opt.check_hyper(changed.back());
      } catch (const std::invalid_argument& error) {
        throw std::invalid_argument(std::string("multopt: the ") + kind + " schedule's change for epoch " +
                                    std::to_string(epoch) + " to group " + std::to_string(first + k) +
                                    " is invalid: " + without_prefix(error.what()));
      }
    }
    for (std::size_t k = 0; k < count; ++k) opt.set_hyper(changed[k], first + k);  // valid: cannot throw
    epoch_ = epoch;
  }

  // An error message of multopt's without its "multopt: ", to be quoted inside another.
  static std::string without_prefix(const std::string& message) {
    const std::string prefix = "multopt: ";
    return message.compare(0, prefix.size(), prefix) == 0 ? message.substr(prefix.size()) : message;
  }

  // A value as the validation messages show it (validate.hpp): up to 17 significant digits.
  static std::string shown(double value) {
    std::ostringstream text;
    text.precision(17);
    text << value;
    return text.str();
  }

  // Calls that change nothing before the first that does; a negative patience waits for none.
  static long calls_before_acting(long patience) { return std::max(patience, 0L); }

  static void validate_patience(long patience) {
    if (patience < -1) reject_long("patience", patience, ">= -1");
  }

  // The mix schedules set the hybrid rule's g_mix; any other rule is a configuration error.
  template <class Opt>
  static void require_g_mix(const char* kind, const Opt& opt) {
    const auto names = opt.hyperparameter_names();
    if (std::find(names.begin(), names.end(), "g_mix") == names.end()) {
      throw std::invalid_argument(std::string("multopt: the ") + kind +
                                  " schedule sets g_mix, the hybrid rule's mix weight, which the " +
                                  opt.rule_name() + " rule does not have");
    }
  }

 private:
  static constexpr long most_epochs = std::numeric_limits<long>::max();

  std::size_t group_;
  long epoch_ = 0;
};

}  // namespace multopt
