// multopt inside a framework that owns its memory, optimizer state included: the framework
// (stand_in_framework.hpp, "fw") keeps every tensor as raw float blocks — values, gradients and
// the optimizer's state — and steps them through multopt::step_tensors, handing it pointers and
// lengths; multopt keeps nothing between steps (docs/api.md, "Bring your own state").
//
// What the example does, and checks (it exits non-zero if any check fails):
//   1. HAdam (Adam with the hybrid rule) over two parameter groups: the weights take the purely
//      multiplicative step (g_mix = 1), the biases, which start at zero and which a
//      multiplicative step could never move, the purely additive one (g_mix = 0), each with
//      its own learning rate;
//   2. two schedules applied once per epoch: a step decay of the learning rates of both
//      groups, and an exponential mix that later drifts the weights towards additive steps;
//   3. a checkpoint round trip: after a few epochs the framework copies its tensors, optimizer
//      state included (the model's own checkpoint), and the schedules; a run from the copies
//      continues bit-identically. A run from copies without the optimizer state must not (the
//      check has teeth);
//   4. training works: the loss falls well below its start, held-out accuracy is high, and
//      the weights keep their signs while their rule is purely multiplicative.
#include <multopt/multopt.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "stand_in_framework.hpp"

namespace {

using Base = multopt::bases::Adam;
using Rule = multopt::rules::Hybrid;
constexpr std::size_t kWeights = 0, kBiases = 1;  // the parameter groups
constexpr std::size_t kBatch = 25;

// The framework's optimizer: the settings of each group and which tensors it steps. The state
// is in the tensors; the schedules change the settings through hyper and set_hyper.
struct FrameworkOptimizer {
  using Hyper = multopt::Hyper<Base, Rule>;
  std::vector<Hyper> groups;
  std::vector<std::pair<fw::Tensor*, std::size_t>> tensors;  // each with its group
  multopt::StepWork<Base, Rule, float> work;  // kept, so that steps allocate nothing
  std::vector<multopt::TensorRefs<Base, float>> refs;

  FrameworkOptimizer() {
    Hyper weights;
    weights.rule.lr_out = 0.02;  // relative step of the multiplicative part
    weights.rule.lr = 0.01;      // used once the mix schedule lowers g_mix
    weights.rule.g_mix = 1.0;
    Hyper biases = weights;  // Adam's defaults: beta1 0.9, beta2 0.999, eps 1e-8
    biases.rule.g_mix = 0.0;
    biases.rule.lr = 0.05;
    groups = {weights, biases};
  }
  void bind(fw::Model& model) {
    for (fw::Tensor* t : model.weights()) tensors.emplace_back(t, kWeights);
    for (fw::Tensor* t : model.biases()) tensors.emplace_back(t, kBiases);
  }

  // One step of every tensor: its state blocks made where the settings need one it lacks.
  void step() {
    refs.clear();
    for (const auto& [t, group] : tensors) {
      multopt::TensorRefs<Base, float> ref;
      for (const multopt::StateArrayInfo& array : multopt::state_arrays<Base, float>(groups[group].base)) {
        std::unique_ptr<float[]>& block = t->optimizer_state[array.name];
        if (!block) {
          block.reset(new float[t->numel()]);
          std::fill_n(block.get(), t->numel(), float(array.initial));
          ref.new_arrays |= 1u << array.index;
        }
        ref.state[std::size_t(array.index)] = block.get();
      }
      ref.param = t->data.get();
      ref.grad = t->grad.get();
      ref.size = t->numel();
      ref.steps = &t->steps;
      ref.group = group;
      refs.push_back(ref);
    }
    multopt::step_tensors(refs, groups, {}, work);
  }

  // What the schedules use.
  std::size_t group_count() const { return groups.size(); }
  const Hyper& hyper(std::size_t group) const { return groups.at(group); }
  static void check_hyper(const Hyper& hyper) { hyper.validate_for<float>(); }
  void set_hyper(const Hyper& hyper, std::size_t group) { groups.at(group) = hyper; }
  static std::vector<std::string> hyperparameter_names() { return Hyper::names(); }
  static const char* rule_name() { return Rule::name; }
};

// The schedules, applied once per epoch: halve both groups' learning rates every 8 epochs,
// and past epoch 12 drift the weights from multiplicative towards additive (g_mix = 0.8^k).
struct Schedules {
  multopt::StepSchedule decay{decay_params()};
  multopt::ExponentialMixSchedule mix{mix_params(), kWeights};

  static multopt::StepSchedule::Params decay_params() {
    multopt::StepSchedule::Params params;
    params.step_size = 8;
    params.gamma_out = params.gamma = 0.5;
    return params;
  }
  static multopt::ExponentialMixSchedule::Params mix_params() {
    multopt::ExponentialMixSchedule::Params params;
    params.g0 = 0.8;
    params.patience = 12;
    return params;
  }
  void apply(FrameworkOptimizer& opt) {
    decay.apply(opt);
    mix.apply(opt);
  }
};

// One training run: the framework's model (with its optimizer state), the optimizer's settings
// and its schedules.
struct Run {
  fw::Model model;
  FrameworkOptimizer opt;
  Schedules schedules;

  explicit Run(const fw::Model& start, bool with_optimizer_state = true) : model(start, with_optimizer_state) {
    opt.bind(model);
  }
  // A run from the framework's checkpoint: its model, optimizer settings and schedules.
  Run(const Run& saved) : model(saved.model), schedules(saved.schedules) {
    opt.groups = saved.opt.groups;
    opt.bind(model);
  }

  // One epoch of mini-batches in an order that depends only on the epoch, so that every run
  // at the same epoch sees the same batches. Returns the mean training loss.
  float epoch(const fw::Dataset& data) {
    const long number = schedules.decay.epoch() + 1;
    std::vector<std::size_t> order(data.size());
    std::iota(order.begin(), order.end(), std::size_t(0));
    std::shuffle(order.begin(), order.end(), std::mt19937(unsigned(number)));
    float loss = 0.0f;
    for (std::size_t at = 0; at < order.size(); at += kBatch) {
      loss += model.backward(data, &order[at], std::min(kBatch, order.size() - at));
      opt.step();
    }
    schedules.apply(opt);
    return loss * float(kBatch) / float(data.size());
  }
};

// Whether two runs are at bit-identical points: parameters, step counts, hyperparameters.
bool identical(const Run& a, const Run& b) {
  const auto ta = a.model.all(), tb = b.model.all();
  for (std::size_t k = 0; k < ta.size(); ++k)
    if (!ta[k]->same_values(*tb[k])) return false;
  for (std::size_t k = 0; k < ta.size(); ++k)
    if (ta[k]->steps != tb[k]->steps) return false;
  for (std::size_t group = 0; group < a.opt.group_count(); ++group)
    for (const auto& name : FrameworkOptimizer::Hyper::names())
      if (a.opt.hyper(group).get(name) != b.opt.hyper(group).get(name)) return false;
  return a.schedules.decay.epoch() == b.schedules.decay.epoch() && a.schedules.mix.epoch() == b.schedules.mix.epoch();
}

int failures = 0;
void check(bool ok, const char* what) {
  std::printf("  [%s] %s\n", ok ? "ok" : "FAILED", what);
  failures += !ok;
}

}  // namespace

int main() {
  const fw::Dataset train = fw::blobs(600, 1), test = fw::blobs(300, 2);
  constexpr int kSaveAfter = 10, kEpochs = 30;

  Run run{fw::Model(7)};
  std::vector<float> signs;
  for (const fw::Tensor* w : {&run.model.w1, &run.model.w2})
    for (std::size_t i = 0; i < w->numel(); ++i) signs.push_back(std::copysign(1.0f, w->data[i]));
  auto signs_kept = [&] {
    std::size_t k = 0;
    for (const fw::Tensor* w : {&run.model.w1, &run.model.w2})
      for (std::size_t i = 0; i < w->numel(); ++i)
        if (std::copysign(1.0f, w->data[i]) != signs[k++] || w->data[i] == 0.0f) return false;
    return true;
  };

  float accuracy = 0.0f;
  const float initial_loss = run.model.mean_loss(train, &accuracy);
  std::printf("HAdam in float, %zu tensors in 2 groups (weights multiplicative, biases additive), state in the "
              "framework's tensors\n", run.opt.tensors.size());
  std::printf("epoch  0  train loss %.4f  train acc %.3f\n", double(initial_loss), double(accuracy));

  std::unique_ptr<Run> resumed, unrestored;
  bool signs_kept_while_multiplicative = true, resumed_identical = true, unrestored_differs = false;
  float loss = initial_loss;

  for (int epoch = 1; epoch <= kEpochs; ++epoch) {
    const bool multiplicative = run.opt.hyper(kWeights).rule.g_mix == 1.0;
    loss = run.epoch(train);
    if (multiplicative) signs_kept_while_multiplicative = signs_kept_while_multiplicative && signs_kept();
    if (resumed) {
      resumed->epoch(train);
      unrestored->epoch(train);
      resumed_identical = resumed_identical && identical(run, *resumed);
      unrestored_differs = unrestored_differs || !identical(run, *unrestored);
    }
    if (epoch % 5 == 0 || epoch == 1) {
      std::printf("epoch %2d  train loss %.4f  lr_out %.4g  g_mix %.3g (weights)  lr %.4g (biases)\n", epoch,
                  double(loss), run.opt.hyper(kWeights).rule.lr_out, run.opt.hyper(kWeights).rule.g_mix,
                  run.opt.hyper(kBiases).rule.lr);
    }
    if (epoch == kSaveAfter) {
      // The framework's checkpoint: its tensors with their optimizer state, the optimizer's
      // settings and the schedules' positions. A run continues from it, and one from the
      // weights alone, with a fresh optimizer, beside it.
      resumed = std::make_unique<Run>(run);
      unrestored = std::make_unique<Run>(run.model, /*with_optimizer_state=*/false);
      std::printf("epoch %2d  copied the model with its optimizer state; a run continues from the copy\n", epoch);
      resumed_identical = identical(run, *resumed);
    }
  }

  const float final_loss = run.model.mean_loss(train, &accuracy);
  float test_accuracy = 0.0f;
  run.model.mean_loss(test, &test_accuracy);
  std::printf("final    train loss %.4f  train acc %.3f  test acc %.3f\n", double(final_loss), double(accuracy),
              double(test_accuracy));

  std::printf("checks:\n");
  check(final_loss < 0.25f * initial_loss, "the training loss fell below a quarter of its start");
  check(test_accuracy >= 0.9f, "held-out accuracy is at least 0.9");
  check(signs_kept_while_multiplicative, "no weight changed sign or reached zero while g_mix was 1");
  check(run.model.b1.data[0] != 0.0f && run.model.b2.data[0] != 0.0f, "the additive group moved the biases off zero");
  check(resumed_identical, "the resumed run stayed bit-identical to the uninterrupted one");
  check(unrestored_differs, "a fresh optimizer without the checkpoint did not (the comparison has teeth)");
  check(run.model.w1.steps == long(kEpochs * (train.size() / kBatch)), "every tensor took every step");
  check(run.model.w1.optimizer_state.size() == 2, "the framework holds Adam's exp_avg and exp_avg_sq");
  std::printf("%s\n", failures == 0 ? "PASS" : "FAIL");
  return failures == 0 ? 0 : 1;
}
