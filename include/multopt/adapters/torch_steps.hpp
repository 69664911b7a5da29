// TorchSteps (docs/pytorch.md): groups of torch tensors stepped in place, each with its .grad,
// through multopt's fused step, and their state by torch.optim's names. TorchOptimizer
// (torch.hpp) and the Python module (python/) are built on it. Only includers need libtorch.
#pragma once

#include <ATen/ATen.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "../multopt.hpp"
#include "torch_checks.hpp"
#include "torch_types.hpp"

namespace multopt::adapters {

class TorchSteps {
 public:
  // The optimizer of that base and rule (names as make_optimizer's: "adam", "hybrid"). `storage`:
  // how bf16 and fp16 parameters are stored, in make_optimizer's settings "rounding" and
  // "rounding_seed" (storage.hpp; unset: master weights).
  TorchSteps(std::string base, std::string rule, Settings storage = {})
      : base_(std::move(base)), rule_(std::move(rule)), storage_(std::move(storage)) {
    for (const auto& setting : storage_)
      if (setting.first != "rounding" && setting.first != "rounding_seed")
        throw std::invalid_argument("multopt: '" + setting.first + "' is no storage setting; they are rounding and rounding_seed");
    make_optimizer<Eigen::bfloat16>(base_, rule_, storage_);  // refuses a bad mode or seed
    auto probe = make_optimizer<double>(base_, rule_);
    double x = 0.0, g = 0.0;
    probe->add_params(&x, &g, 1);
    scalar_names_ = probe->state_names(0);  // a tensor that has not stepped holds only its scalars
    state_names_ = probe->state_names();
    hyperparameter_names_ = probe->hyperparameter_names();
  }

  const std::string& base() const { return base_; }
  const std::string& rule() const { return rule_; }
  const std::vector<std::string>& hyperparameter_names() const { return hyperparameter_names_; }
  const std::vector<std::string>& state_names() const { return state_names_; }
  const std::vector<std::string>& scalar_state_names() const { return scalar_names_; }

  // Steps every parameter that has a gradient, in place, on `threads` threads, as
  // torch.optim does (a parameter without a gradient is left alone and its state kept). Every
  // tensor and setting is checked first: on an error nothing has changed.
  void step(const std::vector<TorchGroup>& groups, int threads) {
    const auto settings = settings_of(groups);
    decltype(over_storage_types<Bindings>(TorchStorageTypes{})) bindings;
    for (std::size_t g = 0; g < groups.size(); ++g) {
      for (std::size_t k = 0; k < groups[g].params.size(); ++k) {
        const at::Tensor& param = groups[g].params[k];
        if (!param.grad().defined()) continue;
        detail::check_pair(param, param.grad(), g, k);
        with_storage_type(param.scalar_type(), [&](auto tag) {
          using S = typename decltype(tag)::type;
          const bool fp32_grad = param.grad().scalar_type() != param.scalar_type();  // check_pair allowed it
          std::get<Bindings<S>>(bindings).push_back(
              {param.unsafeGetTensorImpl(), param, data_as<S>(param),
               fp32_grad ? static_cast<const void*>(param.grad().data_ptr<float>()) : data_as<S>(param.grad()),
               fp32_grad, g});
        });
      }
    }
    for_each_lane([&](auto& lane) { check_settings(lane, settings, bindings); });
    for_each_lane([&](auto& lane) {
      using S = typename std::decay_t<decltype(lane)>::Scalar;
      auto& bound = std::get<Bindings<S>>(bindings);
      if (bound.empty()) return;
      if (!lane.opt || bound != lane.bound || lane.opt->group_count() != groups.size()) rebind(lane, bound, settings);
      for (std::size_t g = 0; g < settings.size(); ++g) lane.opt->set_all(settings[g], g);
      ThreadSettings threading = lane.opt->thread_settings();
      threading.threads = threads;
      lane.opt->set_thread_settings(threading);
      lane.opt->step();
      for (auto& b : lane.bound) torch::autograd::impl::bump_version(b.param);
    });
  }

  // Refuses settings that a step would refuse (in double: each step checks them again against
  // the storage type of its tensors), and a storage setting without a bf16 or fp16 parameter,
  // as the core refuses one for a float or double optimizer.
  void check(const std::vector<TorchGroup>& groups) const {
    const auto probe = make_optimizer<double>(base_, rule_);
    for (const auto& values : settings_of(groups)) detail::check_settings(*probe, values);
    bool any_narrow = false;
    for (const auto& group : groups)
      any_narrow = any_narrow || std::any_of(group.params.begin(), group.params.end(), detail::is_narrow);
    if (!storage_.empty() && !any_narrow)
      throw std::invalid_argument("multopt: " + storage_.front().first + " = '" + storage_.front().second +
                                  "' is for bfloat16 and float16 parameters, and these have none (float and double "
                                  "parameters are stored as computed)");
  }

  // The parameter's state, or none before its first step.
  std::optional<TorchTensorState> state_of(const at::Tensor& param) const {
    std::optional<TorchTensorState> found;
    for_each_lane([&](const auto& lane) {
      for (std::size_t k = 0; k < lane.bound.size() && !found; ++k)
        if (lane.bound[k].key == param.unsafeGetTensorImpl()) found = copy_out(*lane.opt, k, param);
    });
    if (found) return found;
    const auto parked = parked_.find(param.unsafeGetTensorImpl());
    if (parked != parked_.end()) return parked->second;
    return std::nullopt;
  }

  // Gives the parameter this state (torch's names; arrays of the parameter's shape, cast to the
  // dtype it is computed in: float for bf16 and fp16); its next step continues from it. Checked
  // first: on an error nothing changes.
  void set_state_of(const at::Tensor& param, TorchTensorState state) { give(param, detail::checked_state(param, std::move(state), base_, state_names_, scalar_names_)); }

  // Replaces every parameter's state by these (a loaded state_dict's), all checked first: on an
  // error nothing changes.
  void replace_states(std::vector<std::pair<at::Tensor, TorchTensorState>> states) {
    for (auto& [param, state] : states) state = detail::checked_state(param, std::move(state), base_, state_names_, scalar_names_);
    clear_state();
    for (auto& [param, state] : states) give(param, std::move(state));
  }

  // Forgets every parameter's state.
  void clear_state() {
    for_each_lane([](auto& lane) { lane = {}; });
    parked_.clear();
  }

 private:
  // Gives the parameter a checked state. A bound parameter's lane hands all its state out, so
  // that the next step binds again and takes this state in.
  void give(const at::Tensor& param, TorchTensorState state) {
    for_each_lane([&](auto& lane) {
      if (std::any_of(lane.bound.begin(), lane.bound.end(),
                      [&](const auto& b) { return b.key == param.unsafeGetTensorImpl(); }))
        park(lane);
    });
    parked_[param.unsafeGetTensorImpl()] = std::move(state);
  }

  template <class S>
  struct Binding {
    const c10::TensorImpl* key;
    at::Tensor param;
    S* data;
    const void* grad;  // an S, or for 16-bit S a float when fp32_grad
    bool fp32_grad;
    std::size_t group;
    bool operator==(const Binding& o) const {
      return key == o.key && data == o.data && grad == o.grad && fp32_grad == o.fp32_grad && group == o.group;
    }
  };
  template <class S>
  using Bindings = std::vector<Binding<S>>;
  template <class S>
  struct Lane {
    using Scalar = S;
    std::unique_ptr<AnyOptimizer<S>> opt;
    std::vector<Binding<S>> bound;  // tensor k of opt is bound[k]
  };

  // A tuple of T<S> for every storage type S (declared only: for decltype).
  template <template <class> class T, class... S>
  static std::tuple<T<S>...> over_storage_types(TypeList<S...>);

  template <class F>
  void for_each_lane(F&& f) {
    std::apply([&](auto&... lane) { (f(lane), ...); }, lanes_);
  }
  template <class F>
  void for_each_lane(F&& f) const {
    std::apply([&](const auto&... lane) { (f(lane), ...); }, lanes_);
  }

  std::vector<NamedValues> settings_of(const std::vector<TorchGroup>& groups) const {
    std::vector<NamedValues> settings;
    for (const auto& group : groups) settings.push_back(torch_settings(rule_, group.settings));
    return settings;
  }

  // Every group's settings against the storage type that will step with them.
  template <class S, class AllBindings>
  void check_settings(const Lane<S>& lane, const std::vector<NamedValues>& settings, const AllBindings& bindings) const {
    if (std::get<Bindings<S>>(bindings).empty()) return;
    const auto probe = lane.opt ? nullptr : make_optimizer<S>(base_, rule_);
    for (const auto& values : settings) detail::check_settings(lane.opt ? *lane.opt : *probe, values);
  }

  template <class S>
  TorchTensorState copy_out(const AnyOptimizer<S>& opt, std::size_t k, const at::Tensor& param) const {
    using Compute = Arithmetic<S>;
    const auto copy = [&](const Compute* values) {
      at::Tensor array = at::empty(param.sizes(), param.options().dtype(torch_dtype<Compute>()).requires_grad(false));
      std::copy(values, values + opt.size(k), array.template data_ptr<Compute>());
      return array;
    };
    TorchTensorState state;
    state.steps = opt.step_count(k);
    for (const auto& name : opt.state_names(k)) {
      if (detail::is_array_state(state_names_, scalar_names_, name)) state.arrays.emplace_back(name, copy(opt.state(k, name)));
      else state.scalars.emplace_back(name, opt.scalar_state(k, name));
    }
    if (opt.master(k)) state.master_weights = copy(opt.master(k));
    return state;
  }

  // Moves every state of the lane out to parked_ and empties the lane.
  template <class S>
  void park(Lane<S>& lane) {
    for (std::size_t k = 0; k < lane.bound.size(); ++k)
      parked_[lane.bound[k].key] = copy_out(*lane.opt, k, lane.bound[k].param);
    lane = {};
  }

  // A new optimizer over these tensors (torch may have moved a parameter or its gradient, or
  // given gradients to another set of them), continuing from every state it had.
  template <class S>
  void rebind(Lane<S>& lane, const std::vector<Binding<S>>& bound, const std::vector<NamedValues>& settings) {
    auto opt = make_optimizer<S>(base_, rule_, is_16bit<S> ? storage_ : Settings{});
    opt->set_all(settings.front(), 0);
    for (std::size_t g = 1; g < settings.size(); ++g) opt->add_group(settings[g]);
    for (const auto& b : bound) {
      const auto size = std::size_t(b.param.numel());
      if constexpr (is_16bit<S>) {
        if (b.fp32_grad) {
          opt->add_params(b.data, static_cast<const float*>(b.grad), size, b.group);
          continue;
        }
      }
      opt->add_params(b.data, static_cast<const S*>(b.grad), size, b.group);
    }
    if (lane.opt) park(lane);
    for (std::size_t k = 0; k < bound.size(); ++k) {
      const auto parked = parked_.find(bound[k].key);
      if (parked == parked_.end()) continue;
      const TorchTensorState& state = parked->second;
      opt->set_step_count(k, state.steps);
      for (const auto& [name, value] : state.scalars) opt->set_scalar_state(k, name, value);
      const auto size = std::size_t(bound[k].param.numel());
      if constexpr (is_16bit<S>) {
        if (state.master_weights.defined() && state.master_weights.numel() == bound[k].param.numel())
          opt->set_master(k, state.master_weights.template data_ptr<float>(), size);
      }
      for (const auto& [name, array] : state.arrays) {
        if (array.numel() != bound[k].param.numel()) continue;  // torch replaced the parameter's data
        try {
          opt->set_state(k, name, array.template data_ptr<Arithmetic<S>>(), size);
        } catch (const std::invalid_argument&) {
          // The only refusal left: an array the group's settings no longer use (AMSGrad turned
          // off), which torch.optim ignores too.
        }
      }
      parked_.erase(parked);
    }
    lane.opt = std::move(opt);
    lane.bound = bound;
  }

  std::string base_, rule_;
  Settings storage_;
  std::vector<std::string> hyperparameter_names_, state_names_, scalar_names_;
  decltype(over_storage_types<Lane>(TorchStorageTypes{})) lanes_;
  std::map<const c10::TensorImpl*, TorchTensorState> parked_;
};

}  // namespace multopt::adapters
