// The stand-in framework of framework_buffers.cpp: "fw" stands for any deep-learning framework.
// It owns every tensor as raw float blocks (value, gradient, optimizer state) of some shape,
// computes gradients in place, and hands multopt nothing but pointers and lengths. The model is a small
// two-layer classifier (tanh hidden layer, softmax output) on synthetic Gaussian blobs, with
// gradients written out by hand.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace fw {

// A tensor as the framework keeps it: a shape and heap blocks it owns — its values, its
// gradient and its optimizer state (blocks by name, made by the optimizer at its first step,
// and its step count), all saved and restored with the model. The blocks never move once
// allocated (moving a Tensor moves the pointers, not the floats).
struct Tensor {
  std::string name;
  std::vector<std::size_t> shape;
  std::unique_ptr<float[]> data, grad;
  std::map<std::string, std::unique_ptr<float[]>> optimizer_state;
  long steps = 0;

  Tensor(std::string name_, std::vector<std::size_t> shape_)
      : name(std::move(name_)), shape(std::move(shape_)),
        data(new float[numel()]()), grad(new float[numel()]()) {}

  std::size_t numel() const {
    return std::accumulate(shape.begin(), shape.end(), std::size_t(1), std::multiplies<>());
  }
  // A deep copy: new blocks with the same values, optimizer state included (what a model
  // checkpoint restores), or without it (a model's weights alone).
  Tensor clone(bool with_optimizer_state = true) const {
    Tensor copy(name, shape);
    std::copy_n(data.get(), numel(), copy.data.get());
    if (!with_optimizer_state) return copy;
    for (const auto& [key, block] : optimizer_state) {
      copy.optimizer_state[key].reset(new float[numel()]);
      std::copy_n(block.get(), numel(), copy.optimizer_state[key].get());
    }
    copy.steps = steps;
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
  Model(const Model& other, bool with_optimizer_state = true)
      : w1(other.w1.clone(with_optimizer_state)), b1(other.b1.clone(with_optimizer_state)),
        w2(other.w2.clone(with_optimizer_state)), b2(other.b2.clone(with_optimizer_state)) {}
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
