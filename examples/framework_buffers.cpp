// multopt inside a framework that owns its memory.
//
// "fw" below stands for any deep-learning framework: it owns every tensor as a raw float block
// (value and gradient) of some shape, computes gradients in place, and hands multopt nothing
// but pointers and lengths. The model is a small two-layer classifier (tanh hidden layer,
// softmax output) on synthetic Gaussian blobs, with gradients written out by hand.
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
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace fw {

// A tensor as the framework keeps it: a shape and two heap blocks it owns. The blocks never
// move once allocated (moving a Tensor moves the pointers, not the floats), which is what
// lets an optimizer keep pointers into them.
struct Tensor {
  std::string name;
  std::vector<std::size_t> shape;
  std::unique_ptr<float[]> data, grad;

  Tensor(std::string name_, std::vector<std::size_t> shape_)
      : name(std::move(name_)), shape(std::move(shape_)),
        data(new float[numel()]()), grad(new float[numel()]()) {}

  std::size_t numel() const {
    return std::accumulate(shape.begin(), shape.end(), std::size_t(1), std::multiplies<>());
  }
  // A deep copy: new blocks with the same values (what a model checkpoint restores).
  Tensor clone() const {
    Tensor copy(name, shape);
    std::copy_n(data.get(), numel(), copy.data.get());
    return copy;
  }
  void zero_grad() { std::fill_n(grad.get(), numel(), 0.0f); }
  bool same_values(const Tensor& other) const {
    return numel() == other.numel() && std::memcmp(data.get(), other.data.get(), numel() * sizeof(float)) == 0;
  }
};

constexpr std::size_t kInputs = 8, kHidden = 13, kClasses = 3;

struct Dataset {
  std::vector<float> x;  // samples × kInputs, row-major
  std::vector<int> y;
  std::size_t size() const { return y.size(); }
};

// Three Gaussian blobs in 8 dimensions; the generator is seeded, so every run sees the same data.
Dataset blobs(std::size_t samples, unsigned seed) {
  std::mt19937 centres_rng(2024);  // the same centres for every split
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> centres(kClasses * kInputs);
  for (float& c : centres) c = 1.5f * normal(centres_rng);
  std::mt19937 rng(seed);
  Dataset data;
  for (std::size_t i = 0; i < samples; ++i) {
    const int label = int(i % kClasses);
    for (std::size_t j = 0; j < kInputs; ++j) data.x.push_back(centres[label * kInputs + j] + normal(rng));
    data.y.push_back(label);
  }
  return data;
}

// h = tanh(W1·x + b1), p = softmax(W2·h + b2), loss = −log p[label].
struct Model {
  Tensor w1{"w1", {kHidden, kInputs}}, b1{"b1", {kHidden}};
  Tensor w2{"w2", {kClasses, kHidden}}, b2{"b2", {kClasses}};

  explicit Model(unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (Tensor* w : {&w1, &w2}) {
      const float fan_in = float(w->shape[1]);
      for (std::size_t i = 0; i < w->numel(); ++i) w->data[i] = normal(rng) / std::sqrt(fan_in);
    }
    // The biases stay at zero, as frameworks initialise them.
  }
  Model(const Model& other) : w1(other.w1.clone()), b1(other.b1.clone()), w2(other.w2.clone()), b2(other.b2.clone()) {}
  Model& operator=(const Model&) = delete;

  std::vector<Tensor*> weights() { return {&w1, &w2}; }
  std::vector<Tensor*> biases() { return {&b1, &b2}; }
  std::vector<const Tensor*> all() const { return {&w1, &b1, &w2, &b2}; }

  // Forward pass of one sample; fills h and p, returns the loss.
  float forward(const float* x, int label, float* h, float* p) const {
    for (std::size_t i = 0; i < kHidden; ++i) {
      float a = b1.data[i];
      for (std::size_t j = 0; j < kInputs; ++j) a += w1.data[i * kInputs + j] * x[j];
      h[i] = std::tanh(a);
    }
    float top = -INFINITY;
    for (std::size_t k = 0; k < kClasses; ++k) {
      float z = b2.data[k];
      for (std::size_t i = 0; i < kHidden; ++i) z += w2.data[k * kHidden + i] * h[i];
      p[k] = z;
      top = std::max(top, z);
    }
    float sum = 0.0f;
    for (std::size_t k = 0; k < kClasses; ++k) sum += (p[k] = std::exp(p[k] - top));
    for (std::size_t k = 0; k < kClasses; ++k) p[k] /= sum;
    return -std::log(std::max(p[label], 1e-30f));
  }

  // Mean loss of a mini-batch; writes its gradients into the grad blocks (backpropagation).
  float backward(const Dataset& data, const std::size_t* batch, std::size_t count) {
    for (Tensor* t : {&w1, &b1, &w2, &b2}) t->zero_grad();
    float loss = 0.0f, h[kHidden], p[kClasses], dh[kHidden];
    const float inv = 1.0f / float(count);
    for (std::size_t n = 0; n < count; ++n) {
      const float* x = &data.x[batch[n] * kInputs];
      const int label = data.y[batch[n]];
      loss += forward(x, label, h, p) * inv;
      std::fill_n(dh, kHidden, 0.0f);
      for (std::size_t k = 0; k < kClasses; ++k) {
        const float dz = (p[k] - (int(k) == label ? 1.0f : 0.0f)) * inv;
        b2.grad[k] += dz;
        for (std::size_t i = 0; i < kHidden; ++i) {
          w2.grad[k * kHidden + i] += dz * h[i];
          dh[i] += dz * w2.data[k * kHidden + i];
        }
      }
      for (std::size_t i = 0; i < kHidden; ++i) {
        const float da = dh[i] * (1.0f - h[i] * h[i]);
        b1.grad[i] += da;
        for (std::size_t j = 0; j < kInputs; ++j) w1.grad[i * kInputs + j] += da * x[j];
      }
    }
    return loss;
  }

  float mean_loss(const Dataset& data, float* accuracy) const {
    float loss = 0.0f, h[kHidden], p[kClasses];
    std::size_t right = 0;
    for (std::size_t n = 0; n < data.size(); ++n) {
      loss += forward(&data.x[n * kInputs], data.y[n], h, p);
      right += std::size_t(std::max_element(p, p + kClasses) - p) == std::size_t(data.y[n]);
    }
    *accuracy = float(right) / float(data.size());
    return loss / float(data.size());
  }
};

}  // namespace fw

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
