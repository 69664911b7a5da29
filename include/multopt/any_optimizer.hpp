// AnyOptimizer<P>: everything a typed Optimizer offers, through one runtime type, so that a
// framework driven by configuration files never names a template (runtime.hpp makes them by
// name). Hyperparameters are named values here; schedules and checkpoints take it as they take
// a typed optimizer.
#pragma once

#include <cstddef>
#include <istream>
#include <optional>
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
    if (k < values_.size()) return k;
    std::string known;
    for (const auto& value : values_) known += " " + value.first;
    throw std::invalid_argument("multopt: unknown hyperparameter '" + std::string(name) + "'; known:" + known);
  }
  NamedValues values_;
};

// The virtual core below is what each base × rule combination compiles (make_optimizer makes
// every one of them): the step, hyperparameters as named values, state by name, checkpoints.
// The rest of the API is written once, on top of it.
template <class P>
class AnyOptimizer {
  using S = Arithmetic<P>;

 public:
  using Scalar = P;
  using Compute = S;
  using Hyper = NamedHyper;

  virtual ~AnyOptimizer() = default;
  const char* base_name() const { return base_name_; }
  const char* rule_name() const { return rule_name_; }

  // Groups and hyperparameters, as Optimizer's. add_group makes a group with group 0's
  // hyperparameters and `settings` applied (all validated before the group is made).
  std::size_t add_group(const NamedValues& settings = {}) { return write_hyper(0, settings, new_group); }
  virtual std::size_t group_count() const = 0;
  void set(const std::string& name, double value, std::size_t group = 0) { write_hyper(group, {{name, value}}, group); }
  void set_all(const NamedValues& settings, std::size_t group = 0) { write_hyper(group, settings, group); }
  double get(const std::string& name, std::size_t group = 0) const { return hyper(group).get(name); }
  std::vector<std::string> hyperparameter_names() const {
    std::vector<std::string> names;
    for (const auto& value : hyper_values(0)) names.push_back(value.first);
    return names;
  }
  NamedHyper hyper(std::size_t group = 0) const { return NamedHyper(hyper_values(group)); }
  // Fields that `hyper` lacks take their defaults.
  void set_hyper(const NamedHyper& hyper, std::size_t group = 0) { write_hyper(defaults, hyper.values(), group); }
  virtual void check_hyper(const NamedHyper& hyper) const = 0;

  // Tensors and their named state.
  std::size_t add_params(P* param, const P* grad, std::size_t size, std::size_t group = 0) {
    return add_tensor(param, grad, nullptr, size, group);
  }
  // 16-bit parameters with fp32 gradients.
  template <class Q = P, std::enable_if_t<is_16bit<Q>, int> = 0>
  std::size_t add_params(P* param, const float* grad, std::size_t size, std::size_t group = 0) {
    return add_tensor(param, nullptr, grad, size, group);
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
  virtual const S* master(std::size_t tensor) const = 0;
  virtual void set_master(std::size_t tensor, const S* values, std::size_t size) = 0;
  virtual const S* ema(std::size_t tensor) const = 0;
  virtual void set_ema(std::size_t tensor, const S* values, std::size_t size) = 0;
  virtual void swap_ema() = 0;

  // The step and what shapes it: the optimizer's StepOptions, each set through Optimizer's
  // setter of it, which validates it.
  virtual void step() = 0;
  virtual double grad_norm() const = 0;
  virtual const std::vector<std::size_t>& skipped_tensors() const = 0;
  double max_grad_norm() const { return step_options().max_grad_norm; }
  void set_max_grad_norm(double max_norm) { change([&](StepOptions& o) { o.max_grad_norm = max_norm; }); }
  NonFinitePolicy non_finite_policy() const { return step_options().non_finite_policy; }
  void set_non_finite_policy(NonFinitePolicy policy) { change([&](StepOptions& o) { o.non_finite_policy = policy; }); }
  ThreadSettings thread_settings() const { return step_options().threading; }
  void set_thread_settings(const ThreadSettings& settings) { change([&](StepOptions& o) { o.threading = settings; }); }
  std::optional<double> ema_decay() const { return step_options().ema_decay; }
  void set_ema_decay(const std::optional<double>& decay) { change([&](StepOptions& o) { o.ema_decay = decay; }); }
  double grad_scale() const { return step_options().grad_scale; }
  void set_grad_scale(double scale) { change([&](StepOptions& o) { o.grad_scale = scale; }); }
  StorageMode storage() const { return step_options().storage; }
  // Its own call: float and double parameters refuse any storage mode.
  virtual void set_storage(const StorageMode& storage) = 0;

  // Checkpoints: save_checkpoint(out, any, schedules...) and load_checkpoint below call these.
  virtual void save(std::ostream& out, const std::vector<detail::SchedulePosition>& schedules) const = 0;
  virtual std::vector<long> load(std::istream& in, const LoadOptions& options,
                                 const std::vector<detail::SchedulePosition>& schedules) = 0;

 protected:
  AnyOptimizer(const char* base_name, const char* rule_name) : base_name_(base_name), rule_name_(rule_name) {}

  // write_hyper's `from` for every field at its default, and its `to` for a new group.
  static constexpr std::size_t defaults = std::size_t(-1), new_group = std::size_t(-1);
  // Group `from`'s hyperparameters with `settings` applied, validated, into group `to`; returns `to`.
  virtual std::size_t write_hyper(std::size_t from, const NamedValues& settings, std::size_t to) = 0;
  virtual NamedValues hyper_values(std::size_t group) const = 0;
  // grad, or for 16-bit parameters wide_grad (fp32), is null.
  virtual std::size_t add_tensor(P* param, const P* grad, const float* wide_grad, std::size_t size,
                                 std::size_t group) = 0;
  virtual StepOptions step_options() const = 0;
  // Sets every option but the storage mode.
  virtual void set_step_options(const StepOptions& options) = 0;

 private:
  template <class Change>
  void change(const Change& change_it) {
    StepOptions options = step_options();
    change_it(options);
    set_step_options(options);
  }

  const char* base_name_;
  const char* rule_name_;
};

template <class Opt>
class ErasedOptimizer final : public AnyOptimizer<typename Opt::Scalar> {
  using P = typename Opt::Scalar;
  using S = typename Opt::Compute;
  using Any = AnyOptimizer<P>;

 public:
  ErasedOptimizer() : Any(Opt::base_name(), Opt::rule_name()) {}

  std::size_t group_count() const override { return opt_.group_count(); }
  void check_hyper(const NamedHyper& hyper) const override { Opt::check_hyper(typed(Any::defaults, hyper.values())); }

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
  const S* master(std::size_t tensor) const override { return opt_.master(tensor); }
  void set_master(std::size_t tensor, const S* values, std::size_t size) override {
    opt_.set_master(tensor, values, size);
  }
  const S* ema(std::size_t tensor) const override { return opt_.ema(tensor); }
  void set_ema(std::size_t tensor, const S* values, std::size_t size) override { opt_.set_ema(tensor, values, size); }
  void swap_ema() override { opt_.swap_ema(); }

  void step() override { opt_.step(); }
  double grad_norm() const override { return opt_.grad_norm(); }
  const std::vector<std::size_t>& skipped_tensors() const override { return opt_.skipped_tensors(); }
  void set_storage(const StorageMode& storage) override { opt_.set_storage(storage); }

  void save(std::ostream& out, const std::vector<detail::SchedulePosition>& schedules) const override {
    detail::save(out, opt_, schedules);
  }
  std::vector<long> load(std::istream& in, const LoadOptions& options,
                         const std::vector<detail::SchedulePosition>& schedules) override {
    return detail::load(in, opt_, options, schedules);
  }

 private:
  std::size_t write_hyper(std::size_t from, const NamedValues& settings, std::size_t to) override {
    const auto hyper = typed(from, settings);
    if (to == Any::new_group) return opt_.add_group(hyper);
    opt_.set_hyper(hyper, to);
    return to;
  }
  NamedValues hyper_values(std::size_t group) const override { return opt_.hyper(group).values(); }
  std::size_t add_tensor(P* param, const P* grad, const float* wide_grad, std::size_t size,
                         std::size_t group) override {
    if constexpr (is_16bit<P>) {
      if (wide_grad) return opt_.add_params(param, wide_grad, size, group);
    }
    (void)wide_grad;  // null: the fp32 overload is for 16-bit parameters only
    return opt_.add_params(param, grad, size, group);
  }
  StepOptions step_options() const override { return opt_.step_options(); }
  // Each AnyOptimizer setter changes one option, so a refused one leaves the others as they were.
  void set_step_options(const StepOptions& options) override {
    opt_.set_max_grad_norm(options.max_grad_norm);
    opt_.set_non_finite_policy(options.non_finite_policy);
    opt_.set_thread_settings(options.threading);
    opt_.set_ema_decay(options.ema_decay);
    opt_.set_grad_scale(options.grad_scale);
  }

  // Group `from`'s hyperparameters (or the defaults) with `settings` applied, validated.
  typename Opt::Hyper typed(std::size_t from, const NamedValues& settings) const {
    typename Opt::Hyper hyper = from == Any::defaults ? typename Opt::Hyper() : opt_.hyper(from);
    hyper.set_all(settings);
    return hyper;
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
