// Fits y = A·w to noiseless data with MAdam stepping a plain float buffer that "the
// framework" owns, and prints the loss as it falls. The true weights are positive: the
// multiplicative rule never changes a weight's sign (HAdam would be the choice otherwise).
#include <multopt/multopt.hpp>

#include <cstdio>
#include <random>
#include <vector>

int main() {
  constexpr int samples = 256, features = 32;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> positive(0.1f, 2.0f);

  std::vector<float> a(samples * features), target(features), y(samples);
  for (float& x : a) x = normal(rng);
  for (float& x : target) x = positive(rng);
  for (int i = 0; i < samples; ++i) {
    y[i] = 0.0f;
    for (int j = 0; j < features; ++j) y[i] += a[i * features + j] * target[j];
  }

  // The framework's tensors: weights (non-zero: the multiplicative rule keeps zeros) and grads.
  std::vector<float> w(features, 1.0f), grad(features);
  multopt::MAdam<float> opt(multopt::arg::lr_in = 1.0, multopt::arg::lr_out = 0.01);
  opt.add_params(w.data(), grad.data(), w.size());

  for (int step = 1; step <= 2000; ++step) {
    float loss = 0.0f;
    std::fill(grad.begin(), grad.end(), 0.0f);
    for (int i = 0; i < samples; ++i) {
      float r = -y[i];
      for (int j = 0; j < features; ++j) r += a[i * features + j] * w[j];
      loss += r * r / samples;
      for (int j = 0; j < features; ++j) grad[j] += 2.0f * r * a[i * features + j] / samples;
    }
    opt.step();
    if (step == 1 || step % 250 == 0) std::printf("step %4d  loss %.6f\n", step, loss);
  }
}
