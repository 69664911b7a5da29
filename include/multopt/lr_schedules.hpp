// Per-step learning-rate schedules: a curve gives lr_factor for each step (warmup, cosine
// decay, ...), and an LrSchedule sets it before each step, whatever the rule: lr_factor scales
// lr and lr_out alike (docs/schedules.md). The curves are the closed forms of
// torch.optim.lr_scheduler's LinearLR, CosineAnnealingLR, ExponentialLR, StepLR and SequentialLR.
#pragma once

#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "schedules.hpp"
#include "validate.hpp"

namespace multopt {

// The factor for step k, k = 0 for the first step (torch's last_epoch).
using LrCurve = std::function<double(long step)>;

// Each refusal names the curve and its own argument ("linear: steps"), so that it is clear which
// of the curves made together (a sequence of them, say) was refused.
namespace curves {

inline LrCurve constant(double factor = 1.0) {
  require_non_negative("constant: factor", factor);
  return [factor](long) { return factor; };
}

// From `start` to `end` in a straight line over `steps` steps, then `end` (LinearLR).
inline LrCurve linear(double start, double end, long steps) {
  require_non_negative("linear: start", start);
  require_non_negative("linear: end", end);
  if (steps < 1) reject_long("linear: steps", steps, ">= 1");
  return [=](long k) { return start + (end - start) * double(std::min(k, steps)) / double(steps); };
}

// From 1 to `floor` along half a cosine over `steps` steps, then `floor` (CosineAnnealingLR
// with eta_min = floor·lr, whose closed form would rise again after T_max steps).
inline LrCurve cosine(long steps, double floor = 0.0) {
  if (steps < 1) reject_long("cosine: steps", steps, ">= 1");
  require_non_negative("cosine: floor", floor);
  return [=](long k) {
    const double pi = std::acos(-1.0);
    return floor + (1.0 - floor) * (1.0 + std::cos(pi * double(std::min(k, steps)) / double(steps))) / 2.0;
  };
}

// gamma^k (ExponentialLR).
inline LrCurve exponential(double gamma) {
  require_non_negative("exponential: gamma", gamma);
  return [gamma](long k) { return std::pow(gamma, double(k)); };
}

// gamma^⌊k / step_size⌋ (StepLR).
inline LrCurve step_decay(long step_size, double gamma) {
  if (step_size < 1) reject_long("step_decay: step_size", step_size, ">= 1");
  require_non_negative("step_decay: gamma", gamma);
  return [=](long k) { return std::pow(gamma, double(k / step_size)); };
}

// parts[i] from step milestones[i − 1] on, counting its own steps from 0 there (SequentialLR).
inline LrCurve sequence(std::vector<LrCurve> parts, std::vector<long> milestones) {
  if (parts.empty()) throw std::invalid_argument("multopt: sequence: parts is empty: it must hold at least one curve");
  if (milestones.size() != parts.size() - 1) {
    throw std::invalid_argument("multopt: sequence: milestones.size() = " + std::to_string(milestones.size()) +
                                " is invalid: it must be parts.size() - 1 = " + std::to_string(parts.size() - 1));
  }
  for (std::size_t i = 0; i < milestones.size(); ++i) {
    const std::string name = "sequence: milestones[" + std::to_string(i) + "]";
    if (milestones[i] < 1) reject_long(name, milestones[i], ">= 1");
    if (i > 0 && milestones[i] <= milestones[i - 1])
      reject_long(name, milestones[i], "above milestones[" + std::to_string(i - 1) + "] = " +
                                                    std::to_string(milestones[i - 1]));
  }
  for (std::size_t i = 0; i < parts.size(); ++i)
    if (!parts[i])
      throw std::invalid_argument("multopt: sequence: parts[" + std::to_string(i) + "] is an empty curve");
  return [parts = std::move(parts), milestones = std::move(milestones)](long k) {
    std::size_t i = 0;
    while (i < milestones.size() && k >= milestones[i]) ++i;
    return parts[i](i == 0 ? k : k - milestones[i - 1]);
  };
}

// The common case: a linear warmup from `start` to 1 over `warmup` steps, then a cosine decay
// to `floor` at step `total`.
inline LrCurve warmup_cosine(long warmup, long total, double floor = 0.0, double start = 0.0) {
  // Checked here, so that a refusal names these arguments rather than linear's or cosine's (and
  // total − warmup cannot overflow).
  if (warmup < 1) reject_long("warmup_cosine: warmup", warmup, ">= 1");
  if (total <= warmup) reject_long("warmup_cosine: total", total, "above warmup = " + std::to_string(warmup));
  require_non_negative("warmup_cosine: floor", floor);
  require_non_negative("warmup_cosine: start", start);
  return sequence({linear(start, 1.0, warmup), cosine(total - warmup, floor)}, {warmup});
}

}  // namespace curves

// Sets lr_factor of one group (or all) to curve(k) at the k-th call, k = 0 on the first: call
// apply(opt) once before each opt.step(). Its position (epoch(), the calls so far) is saved in
// checkpoints like an epoch schedule's; the curve is code, given again when a run resumes.
class LrSchedule : public Schedule {
 public:
  static constexpr const char* kind = "lr_factor";

  explicit LrSchedule(LrCurve curve, std::size_t group = all_groups) : Schedule(group), curve_(std::move(curve)) {
    if (!curve_) throw std::invalid_argument("multopt: an lr_factor schedule needs a curve");
  }

  // The factor the schedule sets at call k (0 on the first).
  double factor_at(long k) const { return curve_(k); }

  template <class Opt>
  void apply(Opt& opt) {
    advance(kind, opt, [this](auto& hyper, long call) { hyper.set("lr_factor", curve_(call - 1)); });
  }

 private:
  LrCurve curve_;
};

}  // namespace multopt
