// A multilayer perceptron (inputs → one or more ReLU layers → softmax) with hand-written
// backpropagation over mini-batches held one sample per column, so that every layer is one
// matrix product.
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <random>
#include <vector>

#include "datasets.hpp"

namespace demo {

// A parameter tensor and its gradient, as the optimizer and the noise test see them.
struct ParameterView {
  float* values;
  float* grads;
  std::size_t size;
};

struct Evaluation {
  double loss;      // mean cross-entropy
  double accuracy;  // fraction of samples classified correctly
};

class Mlp {
 public:
  // `hidden_layers` ReLU layers of `hidden` units each. `init_scale` multiplies the standard
  // deviation of the He-normal weights (the study varies it); the biases do not depend on it.
  Mlp(int inputs, int hidden, int classes, unsigned seed, int hidden_layers = 1, float init_scale = 1.0f) {
    for (int k = 0; k <= hidden_layers; ++k) {
      const int fan_in = k == 0 ? inputs : hidden, fan_out = k == hidden_layers ? classes : hidden;
      layers_.push_back({Eigen::MatrixXf(fan_out, fan_in), Eigen::VectorXf(fan_out),
                         Eigen::MatrixXf::Zero(fan_out, fan_in), Eigen::VectorXf::Zero(fan_out)});
    }
    activations_.resize(std::size_t(hidden_layers));
    std::mt19937 rng(seed);
    // He-normal weights suit ReLU layers. They must be non-zero: the multiplicative rule
    // scales a weight by its own magnitude, so a zero weight would never move.
    for (Layer& layer : layers_) he_normal(layer.weights, init_scale, rng);
    // Biases are usually zero, which would freeze them under the multiplicative rule; draw
    // them instead as torch.nn.Linear does by default, uniform within ±1/√fan_in: small,
    // non-zero, and of both signs, since the multiplicative rule scales a bias but keeps
    // its sign.
    for (Layer& layer : layers_) small_uniform(layer.biases, int(layer.weights.cols()), rng);
  }

  // The optimizer keeps pointers into these tensors: register them after the model has
  // reached the place where it will stay.
  std::vector<ParameterView> parameters() {
    std::vector<ParameterView> views;
    for (Layer& layer : layers_) {
      views.push_back(view(layer.weights, layer.weight_grads));
      views.push_back(view(layer.biases, layer.bias_grads));
    }
    return views;
  }

  // Forward and backward pass over one batch: writes every gradient, returns the mean loss.
  double train_batch(const Eigen::MatrixXf& inputs, const std::vector<int>& labels) {
    forward(inputs, activations_, logits_);
    const double loss = softmax_cross_entropy(logits_, labels, &output_grad_);
    output_grad_ /= float(inputs.cols());  // the loss is a mean over the batch
    for (std::size_t k = layers_.size(); k-- > 0;) {
      Layer& layer = layers_[k];
      const Eigen::MatrixXf& layer_inputs = k == 0 ? inputs : activations_[k - 1];
      layer.weight_grads.noalias() = output_grad_ * layer_inputs.transpose();
      layer.bias_grads = output_grad_.rowwise().sum();
      if (k == 0) break;
      input_grad_.noalias() = layer.weights.transpose() * output_grad_;
      input_grad_.array() *= (layer_inputs.array() > 0.0f).cast<float>();  // ReLU's derivative
      output_grad_.swap(input_grad_);
    }
    return loss;
  }

  // Loss and accuracy over a whole data set, in blocks to bound the memory of activations.
  Evaluation evaluate(const Dataset& data) const {
    constexpr Eigen::Index block = 2048;
    double loss_sum = 0.0;
    long correct = 0;
    std::vector<Eigen::MatrixXf> activations(activations_.size());
    Eigen::MatrixXf logits;
    for (Eigen::Index first = 0; first < data.size(); first += block) {
      const Eigen::Index count = std::min<Eigen::Index>(block, data.size() - first);
      forward(data.images.middleCols(first, count), activations, logits);
      const std::vector<int> labels(data.labels.begin() + first, data.labels.begin() + first + count);
      loss_sum += softmax_cross_entropy(logits, labels, nullptr) * double(count);
      for (Eigen::Index k = 0; k < count; ++k) {
        Eigen::Index predicted = 0;
        logits.col(k).maxCoeff(&predicted);
        correct += predicted == labels[std::size_t(k)];
      }
    }
    return {loss_sum / data.size(), double(correct) / data.size()};
  }

 private:
  struct Layer {
    Eigen::MatrixXf weights;
    Eigen::VectorXf biases;
    Eigen::MatrixXf weight_grads;
    Eigen::VectorXf bias_grads;
  };

  // Every hidden layer's ReLU outputs into `activations`, the last layer's into `logits`.
  void forward(const Eigen::Ref<const Eigen::MatrixXf>& inputs, std::vector<Eigen::MatrixXf>& activations,
               Eigen::MatrixXf& logits) const {
    for (std::size_t k = 0; k + 1 < layers_.size(); ++k) {
      Eigen::MatrixXf& outputs = activations[k];
      if (k == 0) {
        outputs.noalias() = layers_[k].weights * inputs;
      } else {
        outputs.noalias() = layers_[k].weights * activations[k - 1];
      }
      outputs = (outputs.colwise() + layers_[k].biases).cwiseMax(0.0f);
    }
    if (layers_.size() == 1) {
      logits.noalias() = layers_.back().weights * inputs;
    } else {
      logits.noalias() = layers_.back().weights * activations.back();
    }
    logits.colwise() += layers_.back().biases;
  }

  template <class Tensor>
  static ParameterView view(Tensor& values, Tensor& grads) {
    return {values.data(), grads.data(), std::size_t(values.size())};
  }

  static void he_normal(Eigen::MatrixXf& weights, float scale, std::mt19937& rng) {
    std::normal_distribution<float> normal(0.0f, scale * std::sqrt(2.0f / float(weights.cols())));
    for (float& w : weights.reshaped()) w = normal(rng);
  }

  static void small_uniform(Eigen::VectorXf& biases, int fan_in, std::mt19937& rng) {
    const float bound = 1.0f / std::sqrt(float(fan_in));
    std::uniform_real_distribution<float> uniform(-bound, bound);
    for (float& b : biases) b = uniform(rng);
  }

  // Mean cross-entropy of the softmax of each column; with `grad`, also its gradient with
  // respect to the logits for each sample (softmax minus the one-hot label).
  static double softmax_cross_entropy(const Eigen::MatrixXf& logits, const std::vector<int>& labels,
                                      Eigen::MatrixXf* grad) {
    const Eigen::RowVectorXf peak = logits.colwise().maxCoeff();  // shift for stable exp
    const Eigen::MatrixXf exps = (logits.rowwise() - peak).array().exp().matrix();
    const Eigen::RowVectorXf sums = exps.colwise().sum();
    double loss = 0.0;
    for (Eigen::Index k = 0; k < logits.cols(); ++k) {
      const Eigen::Index label = labels[std::size_t(k)];
      loss += std::log(double(sums(k))) - double(logits(label, k) - peak(k));
    }
    if (grad) {
      *grad = exps.array().rowwise() / sums.array();
      for (Eigen::Index k = 0; k < logits.cols(); ++k) (*grad)(labels[std::size_t(k)], k) -= 1.0f;
    }
    return loss / double(logits.cols());
  }

  std::vector<Layer> layers_;  // the hidden layers, then the output layer
  // Activations and gradients of the last training batch, kept to reuse their memory.
  std::vector<Eigen::MatrixXf> activations_;
  Eigen::MatrixXf logits_, output_grad_, input_grad_;
};

}  // namespace demo
