// multopt inside a framework that owns its memory: the framework (stand_in_framework.hpp, "fw")
// keeps every tensor as raw float blocks and hands multopt only pointers and lengths.
//
// What the example does, and checks (it exits non-zero if any check fails):
//   1. one HAdam<float> optimizer with two parameter groups: the weights take the purely
//      multiplicative step (g_mix = 1), the biases, which start at zero and which a
//      multiplicative step could never move, the purely additive one (g_mix = 0), each with
//      its own learning rate;
//   2. two schedules applied once per epoch: a step decay of the learning rates of both
//      groups, and an exponential mix that later drifts the weights towards additive steps;
//   3. a checkpoint round trip: after a few epochs the optimizer and its schedules are saved
//      to a std::stringstream and the framework copies its tensors (the model's own
//      checkpoint); a fresh optimizer bound to the copies loads the checkpoint, both runs
//      continue, and every parameter, step count and hyperparameter must stay bit-identical.
//      A third run from the same copies without the checkpoint must not (the check has teeth);
//   4. training works: the loss falls well below its start, held-out accuracy is high, and
//      the weights keep their signs while their rule is purely multiplicative.
#include <multopt/multopt.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>
#include <vector>

#include "stand_in_framework.hpp"

namespace {

using Optimizer = multopt::HAdam<float>;
constexpr std::size_t kWeights = 0, kBiases = 1;  // the parameter groups
constexpr std::size_t kBatch = 25;

// Configures an optimizer: group 0 (weights) purely multiplicative, group 1 (biases) purely
// additive, each with its own learning rate.
Optimizer make_optimizer() {
  multopt::rules::Hybrid::Params weights;
  weights.lr_out = 0.02;  // relative step of the multiplicative part
  weights.lr = 0.01;      // used once the mix schedule lowers g_mix
  weights.g_mix = 1.0;
  Optimizer opt(weights);  // Adam's defaults: beta1 0.9, beta2 0.999, eps 1e-8
  auto biases = opt.hyper(kWeights);
  biases.rule.g_mix = 0.0;
  biases.rule.lr = 0.05;
  opt.add_group(biases);
  return opt;
}

// Registers the framework's blocks: pointers and lengths, nothing is copied. A checkpoint
// loads only into an optimizer whose tensors are registered in this same order and groups.
void bind(Optimizer& opt, fw::Model& model) {
  for (fw::Tensor* t : model.weights()) opt.add_params(t->data.get(), t->grad.get(), t->numel(), kWeights);
  for (fw::Tensor* t : model.biases()) opt.add_params(t->data.get(), t->grad.get(), t->numel(), kBiases);
}

// The schedules, applied once per epoch: halve both groups' learning rates every 8 epochs,
// and past epoch 12 drift the weights from multiplicative towards additive (g_mix = 0.8^k).
struct Schedules {
  multopt::StepSchedule decay{{/*step_size=*/8, /*gamma_in=*/1.0, /*gamma_out=*/0.5, /*gamma=*/0.5}};
  multopt::ExponentialMixSchedule mix{{/*g0=*/0.8, /*patience=*/12, /*inverse=*/false}, kWeights};
  void apply(Optimizer& opt) {
    decay.apply(opt);
    mix.apply(opt);
  }
};

// One training run: the framework's model, the optimizer stepping it, and its schedules.
struct Run {
  fw::Model model;
  Optimizer opt = make_optimizer();
  Schedules schedules;

  explicit Run(const fw::Model& start) : model(start) { bind(opt, model); }
  Run(const Run&) = delete;  // the optimizer points into this run's model

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
  for (std::size_t k = 0; k < a.opt.tensor_count(); ++k)
    if (a.opt.step_count(k) != b.opt.step_count(k)) return false;
  for (std::size_t group = 0; group < a.opt.group_count(); ++group)
    for (const auto& name : Optimizer::Hyper::names())
      if (a.opt.get(name, group) != b.opt.get(name, group)) return false;
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
  std::printf("HAdam<float>, %zu tensors in 2 groups (weights multiplicative, biases additive)\n",
              run.opt.tensor_count());
  std::printf("epoch  0  train loss %.4f  train acc %.3f\n", double(initial_loss), double(accuracy));

  std::stringstream checkpoint;
  std::unique_ptr<Run> resumed, unrestored;
  bool signs_kept_while_multiplicative = true, resumed_identical = true, unrestored_differs = false;
  float loss = initial_loss;

  for (int epoch = 1; epoch <= kEpochs; ++epoch) {
    const bool multiplicative = run.opt.get("g_mix", kWeights) == 1.0;
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
                  double(loss), run.opt.get("lr_out", kWeights), run.opt.get("g_mix", kWeights),
                  run.opt.get("lr", kBiases));
    }
    if (epoch == kSaveAfter) {
      // The optimizer's checkpoint: state and schedule positions, no parameter values.
      multopt::save_checkpoint(checkpoint, run.opt, run.schedules.decay, run.schedules.mix);
      // The framework's checkpoint of the parameters: here, copies of its tensors. A fresh
      // optimizer bound to the copies loads the optimizer's state and the schedules' positions.
      resumed = std::make_unique<Run>(run.model);
      multopt::load_checkpoint(checkpoint, resumed->opt, resumed->schedules.decay, resumed->schedules.mix);
      unrestored = std::make_unique<Run>(run.model);  // the same copies, a fresh optimizer
      std::printf("epoch %2d  saved the optimizer (%zu bytes), loaded it into a fresh one over copies\n", epoch,
                  checkpoint.str().size());
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
  check(run.opt.step_count(0) == long(kEpochs * (train.size() / kBatch)), "every tensor took every step");
  std::printf("%s\n", failures == 0 ? "PASS" : "FAIL");
  return failures == 0 ? 0 : 1;
}
