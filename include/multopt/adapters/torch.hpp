// multopt inside libtorch (docs/pytorch.md): TorchOptimizer, a torch::optim::Optimizer of any
// base and rule whose state lives in torch::optim's per-parameter state, stepped by
// step_torch_params (torch_step.hpp). Only includers of this header need libtorch; the core
// knows nothing of it.
#pragma once

#include <ATen/Parallel.h>
#include <torch/optim/optimizer.h>
#include <torch/optim/serialize.h>
#include <torch/serialize/archive.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "torch_step.hpp"

namespace multopt::adapters {

// Options of a TorchOptimizer group: multopt's settings by name (docs/api.md's vocabulary, "g"
// for g_mix), and lr, which torch's schedulers read and write through get_lr and set_lr.
class TorchOptions : public torch::optim::OptimizerCloneableOptions<TorchOptions> {
 public:
  TorchOptions() = default;
  explicit TorchOptions(NamedValues settings) : settings_(std::move(settings)) {
    NamedHyper given(settings_);
    lr_ = given.has("lr") ? given.get("lr") : given.has("lr_out") ? given.get("lr_out") : 0.0;
    initial_lr_ = lr_;
  }
  explicit TorchOptions(double lr) : lr_(lr), initial_lr_(lr) {}  // as torch's serialization makes options to load
  const NamedValues& settings() const { return settings_; }
  NamedValues& settings() { return settings_; }
  double get_lr() const override { return lr_; }
  void set_lr(const double lr) override { lr_ = lr; }
  // The settings with lr and initial_lr, as torch_settings takes them.
  NamedValues torch_values() const {
    NamedValues values;
    for (const auto& value : settings_)
      if (value.first != "lr") values.push_back(value);
    values.emplace_back("lr", lr_);
    values.emplace_back("initial_lr", initial_lr_);
    return values;
  }
  void serialize(torch::serialize::OutputArchive& archive) const override {
    archive.write("lr", c10::IValue(lr_));
    archive.write("initial_lr", c10::IValue(initial_lr_));
    for (const auto& [name, value] : settings_) archive.write("setting/" + name, c10::IValue(value));
  }
  // Every setting the archive holds.
  void serialize(torch::serialize::InputArchive& archive) override {
    c10::IValue value;
    archive.read("lr", value);
    lr_ = value.toDouble();
    archive.read("initial_lr", value);
    initial_lr_ = value.toDouble();
    settings_.clear();
    const std::string prefix = "setting/";
    for (const std::string& key : archive.keys()) {
      if (key.compare(0, prefix.size(), prefix) != 0) continue;
      archive.read(key, value);
      settings_.emplace_back(key.substr(prefix.size()), value.toDouble());
    }
  }

 private:
  NamedValues settings_;
  double lr_ = 0.0, initial_lr_ = 0.0;
};

// A parameter's state in torch::optim's per-parameter state: tensors by torch.optim's names
// ("step", "exp_avg", ..., "mu_product", "master_weights", "ema").
class TorchParamState : public torch::optim::OptimizerCloneableParamState<TorchParamState> {
 public:
  std::map<std::string, at::Tensor> entries;

  void serialize(torch::serialize::OutputArchive& archive) const override {
    for (const auto& [name, tensor] : entries) archive.write(name, tensor, /*is_buffer=*/true);
  }
  void serialize(torch::serialize::InputArchive& archive) override {
    entries.clear();
    for (const std::string& name : archive.keys()) archive.read(name, entries[name], /*is_buffer=*/true);
  }
};

// The step options of a TorchOptimizer's own settings, as text: ema_decay (a moving average of
// the weights, "ema" in each parameter's state) and the storage mode: of bf16 and fp16
// parameters (rounding, rounding_seed), and of the state (state_storage).
inline StepOptions torch_step_options(const Settings& own) {
  StepOptions options;
  Settings storage;
  for (const auto& [name, text] : own) {
    if (name == "ema_decay") options.ema_decay = multopt::detail::parse_number(name, text);
    else if (name == "rounding" || name == "rounding_seed" || name == "state_storage") storage.emplace_back(name, text);
    else throw std::invalid_argument("multopt: '" + name + "' is none of TorchOptimizer's own settings: ema_decay, "
                                     "rounding, rounding_seed, state_storage");
  }
  options.storage = storage_mode(storage);
  return options;
}

// A torch::optim::Optimizer of any multopt base and rule: TorchOptimizer(model->parameters(),
// "adam", "multiplicative", {{"lr_out", 1e-3}}). A group made with options of its own
// (TorchOptions) has those; otherwise the defaults. `own`: the optimizer's own settings, not a
// group's, and not saved with its state: ema_decay, {{"ema_decay", "0.999"}} (unset: no
// average), and how bf16 and fp16 parameters are stored, {{"rounding", "stochastic"},
// {"rounding_seed", "7"}} (unset: master weights). Each parameter's state is a TorchParamState
// in state(), saved and loaded by torch::save and torch::load.
class TorchOptimizer : public torch::optim::Optimizer {
 public:
  TorchOptimizer(std::vector<torch::optim::OptimizerParamGroup> groups, const std::string& base,
                 const std::string& rule, NamedValues defaults = {}, Settings own = {})
      : torch::optim::Optimizer(std::move(groups), std::make_unique<TorchOptions>(std::move(defaults))),
        base_(base),
        rule_(rule),
        options_(torch_step_options(own)) {
    check_torch_settings(base_, rule_, options_, group_settings());
    bool any_narrow = false;
    for (const auto& group : param_groups_)
      for (const auto& param : group.params())
        any_narrow = any_narrow || param.scalar_type() == at::kBFloat16 || param.scalar_type() == at::kHalf;
    const auto rounding = std::find_if(own.begin(), own.end(), [](const auto& one) {
      return one.first == "rounding" || one.first == "rounding_seed";
    });
    if (rounding != own.end() && !any_narrow)
      throw std::invalid_argument("multopt: " + rounding->first + " = '" + rounding->second +
                                  "' is for bfloat16 and float16 parameters, and these have none (float and double "
                                  "parameters are stored as computed)");
  }
  TorchOptimizer(std::vector<at::Tensor> params, const std::string& base, const std::string& rule,
                 NamedValues defaults = {}, Settings own = {})
      : TorchOptimizer(std::vector<torch::optim::OptimizerParamGroup>{torch::optim::OptimizerParamGroup(std::move(params))},
                       base, rule, std::move(defaults), std::move(own)) {}

  // Loss scaling (docs/mixed-precision.md): the factor the loss was multiplied by, which the
  // steps divide the gradients by as they read them; while it is set, a non-finite gradient
  // skips the whole step (skipped()). Unset (nullopt, the default): gradients are read as they
  // are. Checked first: a refused scale changes nothing.
  void set_grad_scale(std::optional<double> scale) {
    StepOptions options = options_;
    options.grad_scale = scale.value_or(1.0);
    check_torch_settings(base_, rule_, options, {});
    options_.grad_scale = options.grad_scale;
    options_.non_finite_policy = scale ? NonFinitePolicy::skip_all : NonFinitePolicy::propagate;
  }
  // Whether the last step() left everything as it was, for a non-finite gradient under a grad_scale.
  bool skipped() const { return skipped_; }

  // Steps every parameter that has a gradient; checked first: on an error nothing has changed.
  at::Tensor step(LossClosure closure = nullptr) override {
    at::Tensor loss;
    if (closure) {
      at::AutoGradMode grad_mode(true);
      loss = closure();
    }
    std::vector<TorchParamStep> params;
    for (std::size_t g = 0; g < param_groups_.size(); ++g) {
      const auto& group = param_groups_[g].params();
      for (std::size_t k = 0; k < group.size(); ++k) {
        if (!group[k].grad().defined()) continue;
        const auto held = state_.find(key_of(group[k]));
        params.push_back({group[k], g, k, {}, {}});
        if (held != state_.end()) params.back().state = TorchState(static_cast<const TorchParamState&>(*held->second).entries);
      }
    }
    StepOptions options = options_;
    options.threading.threads = at::get_num_threads();
    skipped_ = step_torch_params(base_, rule_, options, group_settings(), params);
    for (const TorchParamStep& p : params) {
      auto& held = state_[key_of(p.param)];
      if (!held) held = std::make_unique<TorchParamState>();
      for (const auto& [name, tensor] : p.updates) static_cast<TorchParamState&>(*held).entries[name] = tensor;
    }
    return loss;
  }

  // A parameter's state, or null before its first step.
  const TorchParamState* state_of(const at::Tensor& param) const {
    const auto held = state_.find(key_of(param));
    return held == state_.end() ? nullptr : static_cast<const TorchParamState*>(held->second.get());
  }

  // As torch::optim::Adam's save.
  void save(torch::serialize::OutputArchive& archive) const override {
    torch::optim::serialize<TorchParamState, TorchOptions>(archive, *this);
  }
  // As torch::optim::Adam's load, and the groups' options too; the archive's settings and state
  // are checked first: on an error nothing has changed.
  void load(torch::serialize::InputArchive& archive) override {
    torch::serialize::InputArchive state_archive, groups_archive;
    archive.read("state", state_archive);
    archive.read("param_groups", groups_archive);
    ska::flat_hash_map<std::string, std::unique_ptr<torch::optim::OptimizerParamState>> saved_state;
    torch::optim::detail::serialize<TorchParamState>(state_archive, saved_state);
    std::vector<std::pair<std::vector<std::string>, std::unique_ptr<torch::optim::OptimizerOptions>>> saved_groups;
    torch::optim::detail::serialize<TorchOptions>(groups_archive, saved_groups);
    if (saved_groups.size() != param_groups_.size())
      throw std::invalid_argument("multopt: the archive has " + std::to_string(saved_groups.size()) +
                                  " parameter groups, the optimizer " + std::to_string(param_groups_.size()));
    std::vector<NamedValues> settings;
    std::vector<TorchParamStep> params;
    std::vector<std::pair<std::string, std::unique_ptr<torch::optim::OptimizerParamState>>> states;
    for (std::size_t g = 0; g < saved_groups.size(); ++g) {
      const auto& keys = saved_groups[g].first;
      const auto& group = param_groups_[g].params();
      if (keys.size() != group.size())
        throw std::invalid_argument("multopt: the archive's group " + std::to_string(g) + " has " +
                                    std::to_string(keys.size()) + " parameters, the optimizer's " +
                                    std::to_string(group.size()));
      settings.push_back(torch_settings(rule_, static_cast<const TorchOptions&>(*saved_groups[g].second).torch_values()));
      for (std::size_t k = 0; k < keys.size(); ++k) {
        const auto saved = saved_state.find(keys[k]);
        if (saved == saved_state.end()) continue;
        params.push_back({group[k], g, k, TorchState(static_cast<const TorchParamState&>(*saved->second).entries), {}});
        states.emplace_back(key_of(group[k]), saved->second->clone());
      }
    }
    check_torch_settings(base_, rule_, options_, settings);
    check_torch_states(base_, rule_, options_, settings, params);
    for (std::size_t g = 0; g < saved_groups.size(); ++g) param_groups_[g].set_options(std::move(saved_groups[g].second));
    state_.clear();
    for (auto& [key, state] : states) state_[key] = std::move(state);
  }

 private:
  static std::string key_of(const at::Tensor& param) { return c10::guts::to_string(param.unsafeGetTensorImpl()); }

  std::vector<NamedValues> group_settings() const {
    std::vector<NamedValues> settings;
    for (const auto& group : param_groups_)
      settings.push_back(torch_settings(rule_, static_cast<const TorchOptions&>(group.options()).torch_values()));
    return settings;
  }

  std::string base_, rule_;
  StepOptions options_;  // of the optimizer's own settings and grad_scale
  bool skipped_ = false;
};

}  // namespace multopt::adapters
