// multopt inside libtorch (docs/pytorch.md): TorchOptimizer, a torch::optim::Optimizer of any
// base and rule, over TorchSteps. Only includers of this header need libtorch; the core knows
// nothing of it.
#pragma once

#include <ATen/Parallel.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/archive.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "torch_steps.hpp"

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
  void serialize(torch::serialize::InputArchive& archive) override {
    c10::IValue value;
    archive.read("lr", value);
    lr_ = value.toDouble();
    archive.read("initial_lr", value);
    initial_lr_ = value.toDouble();
    for (auto& [name, setting] : settings_) {
      archive.read("setting/" + name, value);
      setting = value.toDouble();
    }
  }

 private:
  NamedValues settings_;
  double lr_ = 0.0, initial_lr_ = 0.0;
};

// A torch::optim::Optimizer of any multopt base and rule: TorchOptimizer(model->parameters(),
// "adam", "multiplicative", {{"lr_out", 1e-3}}). A group made with options of its own
// (TorchOptions) has those; otherwise the defaults. `storage`: how bf16 and fp16 parameters
// are stored, {{"rounding", "stochastic"}, {"rounding_seed", "7"}} (TorchSteps; unset: master
// weights); the optimizer's own, not a group's, and not saved with its state.
class TorchOptimizer : public torch::optim::Optimizer {
 public:
  TorchOptimizer(std::vector<torch::optim::OptimizerParamGroup> groups, const std::string& base,
                 const std::string& rule, NamedValues defaults = {}, Settings storage = {})
      : torch::optim::Optimizer(std::move(groups), std::make_unique<TorchOptions>(std::move(defaults))),
        steps_(base, rule, std::move(storage)) {
    steps_.check(torch_groups());
  }
  TorchOptimizer(std::vector<at::Tensor> params, const std::string& base, const std::string& rule,
                 NamedValues defaults = {}, Settings storage = {})
      : TorchOptimizer(std::vector<torch::optim::OptimizerParamGroup>{torch::optim::OptimizerParamGroup(std::move(params))},
                       base, rule, std::move(defaults), std::move(storage)) {}

  at::Tensor step(LossClosure closure = nullptr) override {
    at::Tensor loss;
    if (closure) {
      at::AutoGradMode grad_mode(true);
      loss = closure();
    }
    steps_.step(torch_groups(), at::get_num_threads());
    return loss;
  }

  TorchSteps& steps() { return steps_; }

  // The groups' options and every parameter's state, by position.
  void save(torch::serialize::OutputArchive& archive) const override {
    for (std::size_t g = 0; g < param_groups_.size(); ++g) {
      torch::serialize::OutputArchive group(archive.compilation_unit());
      param_groups_[g].options().serialize(group);
      archive.write("group/" + std::to_string(g), group);
    }
    const auto& params = parameters_in_order();
    for (std::size_t k = 0; k < params.size(); ++k) {
      const auto state = steps_.state_of(params[k]);
      if (!state) continue;
      const std::string prefix = "state/" + std::to_string(k) + "/";
      archive.write(prefix + "step", c10::IValue(int64_t(state->steps)));
      for (const auto& [name, array] : state->arrays) archive.write(prefix + name, array, true);
      for (const auto& [name, value] : state->scalars) archive.write(prefix + name, c10::IValue(value));
      if (state->master_weights.defined()) archive.write(prefix + "master_weights", state->master_weights, true);
    }
  }
  void load(torch::serialize::InputArchive& archive) override {
    for (std::size_t g = 0; g < param_groups_.size(); ++g) {
      torch::serialize::InputArchive group;
      archive.read("group/" + std::to_string(g), group);
      param_groups_[g].options().serialize(group);
    }
    std::vector<std::pair<at::Tensor, TorchTensorState>> states;
    const auto params = parameters_in_order();
    for (std::size_t k = 0; k < params.size(); ++k) {
      const std::string prefix = "state/" + std::to_string(k) + "/";
      c10::IValue value;
      if (!archive.try_read(prefix + "step", value)) continue;
      TorchTensorState state;
      state.steps = long(value.toInt());
      const auto& scalars = steps_.scalar_state_names();
      for (const auto& name : steps_.state_names()) {
        at::Tensor array;
        if (std::find(scalars.begin(), scalars.end(), name) != scalars.end()) {
          if (archive.try_read(prefix + name, value)) state.scalars.emplace_back(name, value.toDouble());
        } else if (archive.try_read(prefix + name, array, true)) {
          state.arrays.emplace_back(name, array);
        }
      }
      archive.try_read(prefix + "master_weights", state.master_weights, true);
      states.emplace_back(params[k], std::move(state));
    }
    steps_.replace_states(std::move(states));
  }

 private:
  std::vector<at::Tensor> parameters_in_order() const {
    std::vector<at::Tensor> all;
    for (const auto& group : param_groups_) all.insert(all.end(), group.params().begin(), group.params().end());
    return all;
  }
  std::vector<TorchGroup> torch_groups() const {
    std::vector<TorchGroup> groups;
    for (const auto& group : param_groups_)
      groups.push_back({group.params(), static_cast<const TorchOptions&>(group.options()).torch_values()});
    return groups;
  }

  TorchSteps steps_;
};

}  // namespace multopt::adapters
