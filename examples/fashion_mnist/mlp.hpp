// A one-hidden-layer perceptron (inputs → ReLU → softmax) with hand-written backpropagation
// over mini-batches held one sample per column, so that every layer is one matrix product.
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
  Mlp(int inputs, int hidden, int classes, unsigned seed)
      : w1_(hidden, inputs), b1_(hidden), w2_(classes, hidden), b2_(classes),
        w1_grad_(Eigen::MatrixXf::Zero(hidden, inputs)), b1_grad_(Eigen::VectorXf::Zero(hidden)),
        w2_grad_(Eigen::MatrixXf::Zero(classes, hidden)), b2_grad_(Eigen::VectorXf::Zero(classes)) {
    std::mt19937 rng(seed);
    // He-normal weights suit ReLU layers. They must be non-zero: the multiplicative rule
    // scales a weight by its own magnitude, so a zero weight would never move.
    he_normal(w1_, rng);
    he_normal(w2_, rng);
    // Biases are usually zero, which would freeze them under the multiplicative rule; draw
    // them instead as torch.nn.Linear does by default, uniform within ±1/√fan_in: small,
    // non-zero, and of both signs, since the multiplicative rule scales a bias but keeps
    // its sign.
    small_uniform(b1_, inputs, rng);
    small_uniform(b2_, hidden, rng);
  }

  // The optimizer keeps pointers into these tensors: register them after the model has
  // reached the place where it will stay.
  std::vector<ParameterView> parameters() {
    return {view(w1_, w1_grad_), view(b1_, b1_grad_), view(w2_, w2_grad_), view(b2_, b2_grad_)};
  }

  // Forward and backward pass over one batch: writes every gradient, returns the mean loss.
  double train_batch(const Eigen::MatrixXf& inputs, const std::vector<int>& labels) {
    const Eigen::Index batch = inputs.cols();
    hidden_.noalias() = w1_ * inputs;
    hidden_ = (hidden_.colwise() + b1_).cwiseMax(0.0f);
    logits_.noalias() = w2_ * hidden_;
    logits_.colwise() += b2_;
    const double loss = softmax_cross_entropy(logits_, labels, &logit_grad_);

    logit_grad_ /= float(batch);  // the loss is a mean over the batch
    w2_grad_.noalias() = logit_grad_ * hidden_.transpose();
    b2_grad_ = logit_grad_.rowwise().sum();
    hidden_grad_.noalias() = w2_.transpose() * logit_grad_;
    hidden_grad_.array() *= (hidden_.array() > 0.0f).cast<float>();  // ReLU's derivative
    w1_grad_.noalias() = hidden_grad_ * inputs.transpose();
    b1_grad_ = hidden_grad_.rowwise().sum();
    return loss;
  }

  // Loss and accuracy over a whole data set, in blocks to bound the memory of activations.
  Evaluation evaluate(const Dataset& data) const {
    constexpr Eigen::Index block = 2048;
    double loss_sum = 0.0;
    long correct = 0;
    for (Eigen::Index first = 0; first < data.size(); first += block) {
      const Eigen::Index count = std::min<Eigen::Index>(block, data.size() - first);
      const Eigen::MatrixXf hidden =
          ((w1_ * data.images.middleCols(first, count)).colwise() + b1_).cwiseMax(0.0f);
      const Eigen::MatrixXf logits = (w2_ * hidden).colwise() + b2_;
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
  template <class Tensor>
  static ParameterView view(Tensor& values, Tensor& grads) {
    return {values.data(), grads.data(), std::size_t(values.size())};
  }

  static void he_normal(Eigen::MatrixXf& weights, std::mt19937& rng) {
    std::normal_distribution<float> normal(0.0f, std::sqrt(2.0f / float(weights.cols())));
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

  Eigen::MatrixXf w1_;
  Eigen::VectorXf b1_;
  Eigen::MatrixXf w2_;
  Eigen::VectorXf b2_;
  Eigen::MatrixXf w1_grad_;
  Eigen::VectorXf b1_grad_;
  Eigen::MatrixXf w2_grad_;
  Eigen::VectorXf b2_grad_;
  // Activations of the last training batch, kept to reuse their memory.
  Eigen::MatrixXf hidden_, logits_, logit_grad_, hidden_grad_;
};

}  // namespace demo
