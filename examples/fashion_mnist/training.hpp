// Training one optimizer on a data set: mini-batch epochs from a shared initial model, test
// evaluation after each epoch, and the accuracy of the trained model under weight noise.
#pragma once

#include <multopt/multopt.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "datasets.hpp"
#include "mlp.hpp"
#include "optimizers.hpp"

namespace demo {

struct TrainingConfig {
  int epochs;
  int batch_size;
  unsigned seed;  // the order of the mini-batches, the same for every optimizer; stochastic rounding's bits
  Precision precision;
  bool bf16_state;  // the optimizer's state stored in bf16
};

struct EpochRecord {
  int epoch;              // 0: the initial model
  double train_loss;      // mean over the epoch's mini-batches (epoch 0: over the training set)
  Evaluation test;
  double train_seconds;   // training time up to the end of this epoch, evaluation excluded
};

struct TrainedModel {
  Mlp model;
  std::vector<EpochRecord> epochs;  // epoch 0 first
};

// The model is small: a second thread saves little, and OpenMP's spinning barriers slow a
// step many times over when other programs share the cores. Timings stay comparable.
inline multopt::ThreadSettings single_thread() { return multopt::ThreadSettings{1}; }

// A run's optimizer and the weights it steps. fp32: the model's own tensors. bf16: a bf16 copy
// of each tensor (the model's initial weights rounded to nearest), which a 16-bit optimizer
// steps with the model's fp32 gradients in the chosen storage mode; after every step the model
// gets the stored weights widened, so that its forward and backward passes compute in fp32 on
// exactly the weights that bf16 storage holds.
class StoredWeights {
 public:
  StoredWeights(Mlp& model, const OptimizerSpec& spec, const multopt::Settings& settings,
                const TrainingConfig& config)
      : views_(model.parameters()) {
    multopt::Settings stored_settings = settings;
    if (config.bf16_state) stored_settings.push_back({"state_storage", "bfloat16"});
    if (config.precision == Precision::fp32) {
      fp32_ = multopt::make_optimizer<float>(spec.base, spec.rule, stored_settings);
      fp32_->set_thread_settings(single_thread());
      for (const ParameterView& p : views_) fp32_->add_params(p.values, p.grads, p.size);
      return;
    }
    for (const auto& setting : storage_settings(config.precision, config.seed)) stored_settings.push_back(setting);
    bf16_ = multopt::make_optimizer<Eigen::bfloat16>(spec.base, spec.rule, stored_settings);
    bf16_->set_thread_settings(single_thread());
    stored_.reserve(views_.size());
    for (const ParameterView& p : views_) {
      stored_.emplace_back(p.size);
      Bf16Storage::narrow_nearest(p.values, stored_.back().data(), p.size);
      bf16_->add_params(stored_.back().data(), p.grads, p.size);
    }
    widen_into_model();
  }

  void step() {
    if (fp32_) {
      fp32_->step();
      return;
    }
    bf16_->step();
    widen_into_model();
  }

 private:
  using Bf16Storage = multopt::Storage<Eigen::bfloat16>;

  void widen_into_model() {
    for (std::size_t k = 0; k < views_.size(); ++k)
      Bf16Storage::widen(stored_[k].data(), views_[k].values, views_[k].size);
  }

  std::vector<ParameterView> views_;  // the model's tensors and gradients
  std::unique_ptr<multopt::AnyOptimizer<float>> fp32_;
  std::unique_ptr<multopt::AnyOptimizer<Eigen::bfloat16>> bf16_;
  std::vector<std::vector<Eigen::bfloat16>> stored_;  // bf16 only: one per tensor of views_
};

// The state every optimizer starts from; evaluated once since it is the same for all.
inline EpochRecord initial_record(const Mlp& initial, const Dataset& train, const Dataset& test) {
  return {0, initial.evaluate(train).loss, initial.evaluate(test), 0.0};
}

// The samples order[first], ..., order[first + count - 1] as one batch, into reused storage.
inline void gather_batch(const Dataset& data, const std::vector<int>& order, int first, int count,
                         Eigen::MatrixXf& batch, std::vector<int>& labels) {
  batch.resize(data.images.rows(), count);
  labels.resize(std::size_t(count));
  for (int k = 0; k < count; ++k) {
    const int sample = order[std::size_t(first + k)];
    batch.col(k) = data.images.col(sample);
    labels[std::size_t(k)] = data.labels[std::size_t(sample)];
  }
}

// Trains for config.epochs epochs, or until `on_epoch` returns false.
inline TrainedModel train(const Mlp& initial, const EpochRecord& initial_state, const OptimizerSpec& spec,
                          const multopt::Settings& settings, const Dataset& train_set,
                          const Dataset& test_set, const TrainingConfig& config,
                          const std::function<bool(const EpochRecord&)>& on_epoch) {
  TrainedModel result{initial, {initial_state}};
  StoredWeights weights(result.model, spec, settings, config);

  std::mt19937 shuffler(config.seed);
  std::vector<int> order(std::size_t(train_set.size()));
  std::iota(order.begin(), order.end(), 0);
  Eigen::MatrixXf batch;
  std::vector<int> batch_labels;
  double train_seconds = 0.0;
  for (int epoch = 1; epoch <= config.epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    std::shuffle(order.begin(), order.end(), shuffler);
    double loss_sum = 0.0;
    int batches = 0;
    for (int first = 0; first < train_set.size(); first += config.batch_size, ++batches) {
      const int count = std::min(config.batch_size, train_set.size() - first);
      gather_batch(train_set, order, first, count, batch, batch_labels);
      loss_sum += result.model.train_batch(batch, batch_labels);
      weights.step();
    }
    train_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    result.epochs.push_back({epoch, loss_sum / batches, result.model.evaluate(test_set), train_seconds});
    if (!on_epoch(result.epochs.back())) break;
  }
  return result;
}

// Test accuracy after adding zero-mean Gaussian noise to every parameter tensor (weights
// and biases alike) with standard deviation `relative_strength` × the tensor's RMS value,
// as analog hardware perturbs the weights it stores; averaged over `draws` noise draws.
// The draws depend only on `seed`, so every optimizer's model meets the same noise.
inline double accuracy_under_noise(const Mlp& trained, const Dataset& test, double relative_strength,
                                   int draws, unsigned seed) {
  double accuracy_sum = 0.0;
  for (int draw = 0; draw < draws; ++draw) {
    std::seed_seq seeds{seed, unsigned(draw)};
    std::mt19937 rng(seeds);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    Mlp noisy = trained;
    for (const ParameterView& p : noisy.parameters()) {
      Eigen::Map<Eigen::VectorXf> values(p.values, Eigen::Index(p.size));
      const float rms = values.norm() / std::sqrt(float(p.size));
      const float deviation = float(relative_strength) * rms;
      for (float& v : values) v += deviation * normal(rng);
    }
    accuracy_sum += noisy.evaluate(test).accuracy;
  }
  return accuracy_sum / draws;
}

}  // namespace demo
