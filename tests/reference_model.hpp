// An independent model of the update formulas of docs/math.md, in long double, one element
// at a time, written from the text of the contract and not from the library's code. Settings
// use the case-file vocabulary (names as in docs/math.md, the hybrid's weight `g`, booleans
// 0/1, `momentum_type none|tanh`), so the model also writes cases for multopt_replay.
#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace reference {

using Real = long double;
using Settings = std::vector<std::pair<std::string, std::string>>;

class Model {
 public:
  Model(std::string base, std::string rule, const Settings& settings, const std::vector<double>& init)
      : base_(std::move(base)), rule_(std::move(rule)), theta_(init.begin(), init.end()) {
    for (const auto& [name, value] : settings) settings_[name] = value;
    const std::size_t n = theta_.size();
    m_.assign(n, 0); v_.assign(n, 0); vmax_.assign(n, 0); b_.assign(n, 0); q_.assign(n, 0); a_.assign(n, 0);
    sum_.assign(n, base_ == "adagrad" ? value("initial_accumulator_value", 0) : 0);
  }

  void step(const std::vector<double>& grad) {
    ++t_;
    if (base_ == "nadam") {  // μ_t, μ_{t+1} and Π ← Π·μ_t, once per step of the tensor
      const Real beta1 = value("beta1", 0.9L), psi = value("momentum_decay", 4e-3L);
      mu_ = beta1 * (1 - std::pow(0.96L, Real(t_) * psi) / 2);
      mu_next_ = beta1 * (1 - std::pow(0.96L, Real(t_ + 1) * psi) / 2);
      mu_product_ *= mu_;
    }
    for (std::size_t i = 0; i < theta_.size(); ++i) step_element(i, grad.at(i));
  }

  const std::vector<Real>& theta() const { return theta_; }
  std::vector<double> theta_as_double() const { return {theta_.begin(), theta_.end()}; }

 private:
  // A setting's value, or the default that docs/math.md gives it (lr and lr_out have none).
  Real value(const std::string& name, Real fallback) const {
    const auto it = settings_.find(name);
    return it == settings_.end() ? fallback : std::stold(it->second);
  }
  Real required(const std::string& name) const {
    if (!settings_.count(name)) throw std::invalid_argument("reference model: " + name + " is required");
    return std::stold(settings_.at(name));
  }
  bool tanh_momentum() const {
    const auto it = settings_.find("momentum_type");
    return it != settings_.end() && it->second == "tanh";
  }

  void step_element(std::size_t i, Real g) {
    Real& theta = theta_[i];
    g += value("weight_decay", 0) * theta;
    const Real lr_in = value("lr_in", 1);
    if (tanh_momentum()) g = std::tanh(lr_in * g);  // SGD then runs on tanh(lr_in·g)

    Real d = 0, s = 1;
    if (base_ == "sgd") {
      const Real mu = value("momentum", 0), tau = value("dampening", 0);
      if (mu == 0) {
        d = g;
      } else {
        b_[i] = t_ == 1 ? g : mu * b_[i] + (1 - tau) * g;
        d = value("nesterov", 0) != 0 ? g + mu * b_[i] : b_[i];
      }
    } else if (base_ == "adam") {
      const Real beta1 = value("beta1", 0.9L), beta2 = value("beta2", 0.999L), eps = value("eps", 1e-8L);
      m_[i] = beta1 * m_[i] + (1 - beta1) * g;
      v_[i] = beta2 * v_[i] + (1 - beta2) * g * g;
      Real second = v_[i];
      if (value("amsgrad", 0) != 0) second = vmax_[i] = std::max(vmax_[i], v_[i]);
      const Real denom = std::sqrt(second) / std::sqrt(1 - std::pow(beta2, Real(t_))) + eps;
      d = m_[i] / denom;
      s = 1 / (1 - std::pow(beta1, Real(t_)));
    } else if (base_ == "adagrad") {
      sum_[i] += g * g;
      d = g / (std::sqrt(sum_[i]) + value("eps", 1e-10L));
      s = 1 / (1 + Real(t_ - 1) * value("lr_decay", 0));
    } else if (base_ == "rmsprop") {
      const Real alpha = value("alpha", 0.99L), eps = value("eps", 1e-8L), mu = value("momentum", 0);
      q_[i] = alpha * q_[i] + (1 - alpha) * g * g;
      Real avg = std::sqrt(q_[i]) + eps;
      if (value("centered", 0) != 0) {
        a_[i] = alpha * a_[i] + (1 - alpha) * g;
        avg = std::sqrt(q_[i] - a_[i] * a_[i]) + eps;
      }
      if (mu > 0) {
        b_[i] = mu * b_[i] + g / avg;
        d = b_[i];
      } else {
        d = g / avg;
      }
    } else if (base_ == "adamax") {
      const Real beta1 = value("beta1", 0.9L), beta2 = value("beta2", 0.999L), eps = value("eps", 1e-8L);
      m_[i] = beta1 * m_[i] + (1 - beta1) * g;
      v_[i] = std::max(beta2 * v_[i], std::fabs(g) + eps);  // v_: the infinity norm u
      d = m_[i] / v_[i];
      s = 1 / (1 - std::pow(beta1, Real(t_)));
    } else if (base_ == "nadam") {
      const Real beta1 = value("beta1", 0.9L), beta2 = value("beta2", 0.999L), eps = value("eps", 1e-8L);
      m_[i] = beta1 * m_[i] + (1 - beta1) * g;
      v_[i] = beta2 * v_[i] + (1 - beta2) * g * g;
      const Real denom = std::sqrt(v_[i] / (1 - std::pow(beta2, Real(t_)))) + eps;
      d = ((1 - mu_) / (1 - mu_product_) * g + mu_next_ / (1 - mu_product_ * mu_next_) * m_[i]) / denom;
    } else if (base_ == "radam") {
      const Real beta1 = value("beta1", 0.9L), beta2 = value("beta2", 0.999L), eps = value("eps", 1e-8L);
      m_[i] = beta1 * m_[i] + (1 - beta1) * g;
      v_[i] = beta2 * v_[i] + (1 - beta2) * g * g;
      const Real t = Real(t_), rho_inf = 2 / (1 - beta2) - 1;
      const Real rho_t = rho_inf - 2 * t * std::pow(beta2, t) / (1 - std::pow(beta2, t));
      if (rho_t > 5) {
        const Real r = std::sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t));
        d = m_[i] * r * std::sqrt(1 - std::pow(beta2, t)) / (std::sqrt(v_[i]) + eps);
      } else {
        d = m_[i];
      }
      s = 1 / (1 - std::pow(beta1, t));
    } else if (base_ == "adadelta") {
      const Real rho = value("rho", 0.9L), eps = value("eps", 1e-6L);
      q_[i] = rho * q_[i] + (1 - rho) * g * g;                 // q_: square_avg
      d = std::sqrt(a_[i] + eps) / std::sqrt(q_[i] + eps) * g;  // a_: acc_delta
      a_[i] = rho * a_[i] + (1 - rho) * d * d;
    } else if (base_ == "sparse_adam") {
      const Real beta1 = value("beta1", 0.9L), beta2 = value("beta2", 0.999L), eps = value("eps", 1e-8L);
      m_[i] = beta1 * m_[i] + (1 - beta1) * g;
      v_[i] = beta2 * v_[i] + (1 - beta2) * g * g;
      d = m_[i] / (std::sqrt(v_[i]) + eps);
      s = std::sqrt(1 - std::pow(beta2, Real(t_))) / (1 - std::pow(beta1, Real(t_)));
    } else if (base_ == "lion") {
      const Real beta1 = value("beta1", 0.9L), beta2 = value("beta2", 0.99L);
      const Real c = beta1 * m_[i] + (1 - beta1) * g;
      d = c > 0 ? 1 : c < 0 ? -1 : 0;
      m_[i] = beta2 * m_[i] + (1 - beta2) * g;
    } else {
      throw std::invalid_argument("reference model: unknown base " + base_);
    }

    if (tanh_momentum()) {
      theta -= s * required("lr_out") * std::fabs(theta) * d;
    } else if (rule_ == "additive") {
      theta -= s * required("lr") * d;
    } else if (rule_ == "multiplicative") {
      theta -= s * required("lr_out") * std::fabs(theta) * std::tanh(lr_in * d);
    } else if (rule_ == "hybrid") {
      const Real mix = value("g", 1);
      theta = theta - mix * s * required("lr_out") * std::fabs(theta) * std::tanh(lr_in * d) -
              (1 - mix) * s * required("lr") * d;
    } else if (rule_ == "exponential") {
      const Real sign = theta > 0 ? 1 : theta < 0 ? -1 : 0;
      theta *= std::exp2(-s * required("lr_out") * sign * std::tanh(lr_in * d));
    } else if (rule_ == "nonnegative_clip") {
      theta = std::max(theta - s * required("lr") * d, Real(0));
    } else if (rule_ == "nonnegative_reflect") {
      theta = std::fabs(theta - s * required("lr") * d);
    } else {
      throw std::invalid_argument("reference model: unknown rule " + rule_);
    }
  }

  std::string base_, rule_;
  std::map<std::string, std::string> settings_;
  std::vector<Real> theta_, m_, v_, vmax_, sum_, q_, a_, b_;
  long t_ = 0;
  Real mu_ = 0, mu_next_ = 0, mu_product_ = 1;  // NAdam's, per tensor
};

}  // namespace reference
