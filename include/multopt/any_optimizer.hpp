// AnyOptimizer<P>: everything a typed Optimizer offers, through one runtime type, so that a
// framework driven by configuration files never names a template (runtime.hpp makes them by
// name). Hyperparameters are named values here; schedules and checkpoints take it as they take
// a typed optimizer.
#pragma once

#include <cstddef>
#include <istream>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "checkpoint.hpp"
#include "optimizer.hpp"

namespace multopt {

using NamedValues = std::vector<std::pair<std::string, double>>;


// A group's hyperparameters by name, as AnyOptimizer hands them out: change them with set()
// and give them back with set_hyper(), which validates them.
class NamedHyper {
 public:
  NamedHyper() = default;
  explicit NamedHyper(NamedValues values) : values_(std::move(values)) {}

  bool has(std::string_view name) const { return find(name) < values_.size(); }
  double get(std::string_view name) const { return values_[index(name)].second; }
  void set(std::string_view name, double value) { values_[index(name)].second = value; }
  const NamedValues& values() const { return values_; }

 private:
  std::size_t find(std::string_view name) const {
    std::size_t k = 0;
    while (k < values_.size() && values_[k].first != canonical_name(name)) ++k;
    return k;
  }
  std::size_t index(std::string_view name) const {
    const std::size_t k = find(name);
    if (k == values_.size()) throw std::invalid_argument("multopt: unknown hyperparameter '" + std::string(name) + "'");
    return k;
  }
  NamedValues values_;
};

template <class P>
class AnyOptimizer {
  using S = Arithmetic<P>;

 public:
  using Scalar = P;
  using Compute = S;
  using Hyper = NamedHyper;

  virtual ~AnyOptimizer() = default;
  virtual const char* base_name() const = 0;
  virtual const char* rule_name() const = 0;

  // Groups and hyperparameters, as Optimizer's. add_group makes a group with group 0's
  // hyperparameters and `settings` applied (all validated before the group is made).
  virtual std::size_t add_group(const NamedValues& settings = {}) = 0;
  virtual std::size_t group_count() const = 0;
  virtual void set(const std::string& name, double value, std::size_t group = 0) = 0;
  virtual void set_all(const NamedValues& settings, std::size_t group = 0) = 0;
  virtual double get(const std::string& name, std::size_t group = 0) const = 0;
  virtual std::vector<std::string> hyperparameter_names() const = 0;
  virtual NamedHyper hyper(std::size_t group = 0) const = 0;
  virtual void set_hyper(const NamedHyper& hyper, std::size_t group = 0) = 0;
  virtual void check_hyper(const NamedHyper& hyper) const = 0;

  // Tensors and their named state.
  virtual std::size_t add_params(P* param, const P* grad, std::size_t size, std::size_t group = 0) = 0;
  // 16-bit parameters with fp32 gradients.
  template <class Q = P, std::enable_if_t<is_16bit<Q>, int> = 0>
  std::size_t add_params(P* param, const float* grad, std::size_t size, std::size_t group = 0) {
    return add_params_fp32(param, grad, size, group);
  }
  virtual std::size_t tensor_count() const = 0;
  virtual std::size_t size(std::size_t tensor) const = 0;
  virtual std::size_t group_of(std::size_t tensor) const = 0;
  virtual long step_count(std::size_t tensor) const = 0;
  virtual void set_step_count(std::size_t tensor, long steps) = 0;
  virtual std::vector<std::string> state_names() const = 0;
  virtual std::vector<std::string> state_names(std::size_t tensor) const = 0;
  virtual const S* state(std::size_t tensor, std::string_view name) const = 0;
  virtual void set_state(std::size_t tensor, std::string_view name, const S* values, std::size_t size) = 0;
  virtual double scalar_state(std::size_t tensor, std::string_view name) const = 0;
  virtual void set_scalar_state(std::size_t tensor, std::string_view name, double value) = 0;

  // The step and what shapes it.
  virtual void step() = 0;
  virtual double max_grad_norm() const = 0;
  virtual void set_max_grad_norm(double max_norm) = 0;
  virtual double grad_norm() const = 0;
  virtual NonFinitePolicy non_finite_policy() const = 0;
  virtual void set_non_finite_policy(NonFinitePolicy policy) = 0;
  virtual const std::vector<std::size_t>& skipped_tensors() const = 0;
  virtual const ThreadSettings& thread_settings() const = 0;
  virtual void set_thread_settings(const ThreadSettings& settings) = 0;
  virtual const StorageMode& storage() const = 0;
  virtual void set_storage(const StorageMode& storage) = 0;
  virtual const S* master(std::size_t tensor) const = 0;
  virtual void set_master(std::size_t tensor, const S* values, std::size_t size) = 0;

  // Checkpoints: save_checkpoint(out, any, schedules...) and load_checkpoint below call these.
  virtual void save(std::ostream& out, const std::vector<detail::SchedulePosition>& schedules) const = 0;
  virtual std::vector<long> load(std::istream& in, const LoadOptions& options,
                                 const std::vector<detail::SchedulePosition>& schedules) = 0;

 protected:
  // add_params with fp32 gradients (16-bit parameters only; never called for float or double).
  virtual std::size_t add_params_fp32(P* param, const float* grad, std::size_t size, std::size_t group) = 0;
};

template <class Opt>
class ErasedOptimizer final : public AnyOptimizer<typename Opt::Scalar> {
  using P = typename Opt::Scalar;
  using S = typename Opt::Compute;

 public:
  const char* base_name() const override { return Opt::BaseType::name; }
  const char* rule_name() const override { return Opt::RuleType::name; }

  std::size_t add_group(const NamedValues& settings) override {
    auto hyper = opt_.hyper(0);
    hyper.set_all(settings);
    return opt_.add_group(hyper);
  }
  std::size_t group_count() const override { return opt_.group_count(); }
  void set(const std::string& name, double value, std::size_t group) override { opt_.set(name, value, group); }
  void set_all(const NamedValues& settings, std::size_t group) override {
    auto hyper = opt_.hyper(group);
    hyper.set_all(settings);
    opt_.set_hyper(hyper, group);
  }
  double get(const std::string& name, std::size_t group) const override { return opt_.get(name, group); }
  std::vector<std::string> hyperparameter_names() const override { return Opt::hyperparameter_names(); }
  NamedHyper hyper(std::size_t group) const override {
    NamedValues values;
    Opt::Hyper::fields(opt_.hyper(group), [&](const char* name, const auto& v) { values.emplace_back(name, double(v)); });
    return NamedHyper(std::move(values));
  }
  void set_hyper(const NamedHyper& hyper, std::size_t group) override { opt_.set_hyper(typed(hyper), group); }
  void check_hyper(const NamedHyper& hyper) const override { Opt::check_hyper(typed(hyper)); }

  std::size_t add_params(P* param, const P* grad, std::size_t size, std::size_t group) override {
    return opt_.add_params(param, grad, size, group);
  }
  std::size_t add_params_fp32(P* param, const float* grad, std::size_t size, std::size_t group) override {
    if constexpr (is_16bit<P>) {
      return opt_.add_params(param, grad, size, group);
    } else {
      (void)param, (void)grad, (void)size, (void)group;
      throw std::logic_error("multopt: fp32 gradients are for 16-bit parameters");
    }
  }
  std::size_t tensor_count() const override { return opt_.tensor_count(); }
  std::size_t size(std::size_t tensor) const override { return opt_.size(tensor); }
  std::size_t group_of(std::size_t tensor) const override { return opt_.group_of(tensor); }
  long step_count(std::size_t tensor) const override { return opt_.step_count(tensor); }
  void set_step_count(std::size_t tensor, long steps) override { opt_.set_step_count(tensor, steps); }
  std::vector<std::string> state_names() const override { return Opt::state_names(); }
  std::vector<std::string> state_names(std::size_t tensor) const override { return opt_.state_names(tensor); }
  const S* state(std::size_t tensor, std::string_view name) const override { return opt_.state(tensor, name); }
  void set_state(std::size_t tensor, std::string_view name, const S* values, std::size_t size) override {
    opt_.set_state(tensor, name, values, size);
  }
  double scalar_state(std::size_t tensor, std::string_view name) const override {
    return opt_.scalar_state(tensor, name);
  }
  void set_scalar_state(std::size_t tensor, std::string_view name, double value) override {
    opt_.set_scalar_state(tensor, name, value);
  }

  void step() override { opt_.step(); }
  double max_grad_norm() const override { return opt_.max_grad_norm(); }
  void set_max_grad_norm(double max_norm) override { opt_.set_max_grad_norm(max_norm); }
  double grad_norm() const override { return opt_.grad_norm(); }
  NonFinitePolicy non_finite_policy() const override { return opt_.non_finite_policy(); }
  void set_non_finite_policy(NonFinitePolicy policy) override { opt_.set_non_finite_policy(policy); }
  const std::vector<std::size_t>& skipped_tensors() const override { return opt_.skipped_tensors(); }
  const ThreadSettings& thread_settings() const override { return opt_.thread_settings(); }
  void set_thread_settings(const ThreadSettings& settings) override { opt_.set_thread_settings(settings); }
  const StorageMode& storage() const override { return opt_.storage(); }
  void set_storage(const StorageMode& storage) override { opt_.set_storage(storage); }
  const S* master(std::size_t tensor) const override { return opt_.master(tensor); }
  void set_master(std::size_t tensor, const S* values, std::size_t size) override {
    opt_.set_master(tensor, values, size);
  }

  void save(std::ostream& out, const std::vector<detail::SchedulePosition>& schedules) const override {
    detail::save(out, opt_, schedules);
  }
  std::vector<long> load(std::istream& in, const LoadOptions& options,
                         const std::vector<detail::SchedulePosition>& schedules) override {
    return detail::load(in, opt_, options, schedules);
  }

 private:
  // The typed hyperparameters of these named ones, validated.
  static typename Opt::Hyper typed(const NamedHyper& hyper) {
    typename Opt::Hyper typed;
    typed.set_all(hyper.values());
    return typed;
  }

  Opt opt_;
};

template <class S, class... Schedules>
void save_checkpoint(std::ostream& out, const AnyOptimizer<S>& opt, const Schedules&... schedules) {
  opt.save(out, detail::positions_of(schedules...));
}

template <class S, class... Schedules>
void load_checkpoint(std::istream& in, AnyOptimizer<S>& opt, const LoadOptions& options, Schedules&... schedules) {
  const auto epochs = opt.load(in, options, detail::positions_of(schedules...));
  [[maybe_unused]] std::size_t k = 0;
  (schedules.seek(epochs[k++]), ...);  // checked by the load: cannot throw
}

}  // namespace multopt
