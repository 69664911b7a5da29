// A torch parameter's optimizer state as torch holds it (TorchState: tensors by torch.optim's
// names) and what a step makes of it before it plans anything (prepare): the checks of the
// parameter, its gradient and its state, the arrays made or converted, the step count and scalars
// read. torch_step.hpp steps with it. Only includers need libtorch.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../multopt.hpp"
#include "torch_types.hpp"

namespace multopt::adapters {

// A parameter's state entries by name, as torch holds them: a few, so a flat list. An adapter
// keeps one from call to call for its room: clear() lets go of the tensors and keeps it.
class TorchState {
 public:
  TorchState() = default;
  template <class Entries>
  explicit TorchState(const Entries& entries) {
    for (const auto& [name, value] : entries) set(name, value);
  }
  // The entry of that name, or null where there is none (an undefined tensor is none).
  const at::Tensor* find(std::string_view name) const {
    for (const auto& [held, value] : entries_)
      if (held == name) return value.defined() ? &value : nullptr;
    return nullptr;
  }
  void set(std::string_view name, at::Tensor value) {
    for (auto& [held, old] : entries_)
      if (held == name) return void(old = std::move(value));
    entries_.emplace_back(std::string(name), std::move(value));
  }
  void clear() { entries_.clear(); }
  void reserve(std::size_t entries) { entries_.reserve(entries); }

 private:
  std::vector<std::pair<std::string, at::Tensor>> entries_;
};

// One parameter of a call, with its state as torch holds it: tensors by torch.optim's names
// ("step", "exp_avg", ..., "mu_product", "master_weights", "ema"). After the step, `updates` holds the
// entries to set in that state: what was made or converted for it; the tensors it held are
// changed in place.
struct TorchParamStep {
  at::Tensor param;
  std::size_t group = 0;
  std::size_t index = 0;  // its place in its group, for messages
  TorchState state;
  std::vector<std::pair<std::string, at::Tensor>> updates;
};

namespace detail {

inline std::string which(const TorchParamStep& p) {
  return "parameter " + std::to_string(p.index) + " of group " + std::to_string(p.group);
}
[[noreturn]] inline void refuse(const TorchParamStep& p, const std::string& what) {
  throw std::invalid_argument("multopt: " + which(p) + " " + what + "; nothing was stepped");
}

// The real dtype a parameter's values are computed in (complex ones as their real and imaginary
// parts), and the dtype of its state arrays: its own, or float for bfloat16 and float16.
inline c10::ScalarType real_dtype(c10::ScalarType dtype) {
  return at::isComplexType(dtype) ? c10::toRealValueType(dtype) : dtype;
}
inline c10::ScalarType state_dtype(c10::ScalarType dtype) {
  return dtype == at::kBFloat16 || dtype == at::kHalf ? at::kFloat : dtype;
}
// The dtype of a state array stored as `storage` of a parameter of `dtype`.
inline c10::ScalarType state_dtype(c10::ScalarType dtype, StateStorage storage) {
  if (storage == StateStorage::bfloat16) return at::kBFloat16;
  if (storage == StateStorage::float16) return at::kHalf;
  return state_dtype(dtype);
}

// A one-element tensor's value, read in place where it is a CPU float, double or long (as
// torch's step and mu_product are): item() goes through torch's dispatcher, about a microsecond
// a parameter.
inline double value_of(const at::Tensor& t) {
  if (t.device().is_cpu()) {
    if (t.scalar_type() == at::kFloat) return *t.data_ptr<float>();
    if (t.scalar_type() == at::kDouble) return *t.data_ptr<double>();
    if (t.scalar_type() == at::kLong) return double(*t.data_ptr<int64_t>());
  }
  return t.item<double>();
}
inline void set_value(const at::Tensor& t, double value) {
  if (t.device().is_cpu() && t.scalar_type() == at::kFloat) *t.data_ptr<float>() = float(value);
  else if (t.device().is_cpu() && t.scalar_type() == at::kDouble) *t.data_ptr<double>() = value;
  else t.fill_(value);
}

// The value of a one-element state entry, which must be a finite number.
inline double number_in(const TorchParamStep& p, const std::string& name, const at::Tensor& value) {
  if (value.numel() != 1 || at::isComplexType(value.scalar_type()))
    refuse(p, "has a state '" + name + "' of " + std::to_string(value.numel()) + " elements, not one real number");
  const double number = value_of(value);
  if (!std::isfinite(number)) refuse(p, "has " + name + " = " + std::to_string(number) + " in its state");
  return number;
}

// Values a step works on in place: `target` itself when it can (contiguous, without torch's
// conjugate or negative bit), else a contiguous copy that finish() copies back.
struct Worked {
  at::Tensor target, copy;  // `copy` undefined where the step works on `target`
  static Worked of(const at::Tensor& target) {
    if (target.is_contiguous() && !target.is_conj() && !target.is_neg()) return {target, {}};
    return {target, target.resolve_conj().resolve_neg().contiguous()};
  }
  bool defined() const { return target.defined(); }
  const at::Tensor& work() const { return copy.defined() ? copy : target; }
  // The real values, complex ones as (real, imaginary) pairs.
  at::Tensor real() const { return work().is_complex() ? at::view_as_real(work()) : work(); }
  template <class P>
  P* data() const {
    return work().is_complex() ? data_as<P>(at::view_as_real(work())) : data_as<P>(work());
  }
  void finish() const {
    if (copy.defined()) target.copy_(copy);
  }
};

// What a call makes of one parameter before it plans anything. An adapter keeps these from call
// to call for their room: release() lets go of the tensors and keeps it.
struct PreparedParam {
  Worked param, master, ema;
  std::vector<Worked> arrays;  // in the order of Base::Array; undefined where the settings use none
  at::Tensor grad;             // contiguous and real, read only: the parameter's size, or rows
  at::Tensor rows;             // a sparse gradient's row indices (int64), else undefined
  std::size_t row_width = 0;   // a sparse gradient's values per row
  long steps = 0;
  std::vector<double> scalars;
  const std::vector<std::string>* scalar_names = nullptr;  // the base's, held by the call
  unsigned new_arrays = 0;
  bool new_ema = false;  // `ema` was made for this step, which sets it to the parameter

  void release() {
    param = {};
    master = {};
    ema = {};
    arrays.clear();
    grad.reset();
    rows.reset();
  }
};

// How a group steps sparse gradients, as its torch.optim class does: the rows they touch (SGD,
// Adagrad, SparseAdam), as the dense gradient (SGD with momentum, whose buffer then steps every
// row it holds), or not at all.
enum class SparseSteps { refused, rows, dense };
inline SparseSteps sparse_steps(const std::string& base, const NamedValues& settings) {
  if (base == "adagrad" || base == "sparse_adam") return SparseSteps::rows;
  if (base != "sgd") return SparseSteps::refused;
  const NamedHyper given(settings);
  return given.has("momentum") && given.get("momentum") != 0.0 ? SparseSteps::dense : SparseSteps::rows;
}

// Reads the parameter's gradient into `prepared`, if the step can read it: dense, contiguous and
// real, or a sparse COO gradient as rows (a table's rows: the places of its sparse dimensions,
// each of the values of its dense dimensions) where the group steps rows and no moving average
// of the weights (options.ema_decay) would move every row.
inline void read_gradient(const TorchParamStep& p, const std::string& base, const NamedValues& settings,
                          const StepOptions& options, PreparedParam& prepared) {
  const at::Tensor& param = p.param;
  const at::Tensor& grad = param.grad();
  if (!grad.device().is_cpu()) refuse(p, "has its gradient on " + grad.device().str());
  const bool narrow = param.scalar_type() == at::kBFloat16 || param.scalar_type() == at::kHalf;
  if (grad.scalar_type() != param.scalar_type() && !(narrow && grad.scalar_type() == at::kFloat))
    refuse(p, std::string("has a ") + c10::toString(grad.scalar_type()) + " gradient but is " +
                  c10::toString(param.scalar_type()) + (narrow ? " (its gradient may be that or Float)" : ""));
  if (grad.sizes() != param.sizes())
    refuse(p, "has a gradient of shape " + c10::str(grad.sizes()) + " but is of shape " + c10::str(param.sizes()));
  if (grad.layout() == at::kStrided) {
    if (base == "sparse_adam")
      refuse(p, "has a dense gradient, which sparse_adam does not step (as torch.optim.SparseAdam: consider Adam)");
    prepared.grad = Worked::of(grad).real();
    return;
  }
  if (!grad.is_sparse())
    refuse(p, "has a gradient of layout " + c10::str(grad.layout()) + ", which multopt does not step");
  const SparseSteps steps = sparse_steps(base, settings);
  if (steps == SparseSteps::refused)
    refuse(p, "has a sparse gradient, which " + base + " does not step (SGD, Adagrad and SparseAdam do, as in torch.optim)");
  if (options.ema_decay)
    refuse(p, "has a sparse gradient, and ema_decay = " + std::to_string(*options.ema_decay) +
                  " would move the average of every row, which a step of rows leaves alone");
  const NamedHyper given(settings);
  for (const char* decay : {"weight_decay", "decoupled_weight_decay"})
    if (given.has(decay) && given.get(decay) != 0.0)
      refuse(p, "has a sparse gradient, and " + std::string(decay) + " = " + std::to_string(given.get(decay)) +
                    " is not stepped with sparse gradients (as in torch.optim)");
  if (steps == SparseSteps::dense) {
    prepared.grad = Worked::of(grad.to_dense()).real();
    return;
  }
  const at::Tensor indices = grad._indices();
  at::Tensor rows = indices.select(0, 0);
  for (std::int64_t d = 1; d < grad.sparse_dim(); ++d) rows = rows * param.size(d) + indices.select(0, d);
  prepared.rows = rows.contiguous();
  prepared.grad = Worked::of(grad._values()).real();
  prepared.row_width =
      std::size_t(c10::multiply_integers(param.sizes().slice(std::size_t(grad.sparse_dim())))) * (param.is_complex() ? 2 : 1);
}

// A state array the parameter holds, in `dtype`: another floating dtype is converted, and the
// conversion goes to `updates`.
inline at::Tensor held_array(TorchParamStep& p, const std::string& name, at::Tensor array, c10::ScalarType dtype) {
  if (!array.device().is_cpu()) refuse(p, "has its state '" + name + "' on " + array.device().str());
  if (array.numel() != p.param.numel())
    refuse(p, "has " + std::to_string(p.param.numel()) + " elements but its state '" + name + "' has " +
                  std::to_string(array.numel()) + " (was its .data replaced?)");
  if (array.scalar_type() == dtype) return array;
  if (!at::isFloatingType(array.scalar_type()) && !at::isComplexType(array.scalar_type()))
    refuse(p, std::string("has its state '") + name + "' of dtype " + c10::toString(array.scalar_type()));
  array = array.to(dtype);
  p.updates.emplace_back(name, array);
  return array;
}

// Reads, checks and completes a parameter's state into `prepared` (released before): the arrays
// its settings need, made where missing (their initial values, as torch makes them at a first
// step) or converted to the dtype they are stored in where they are of another (the state
// follows the parameter, as after model.double(), and the storage mode: StateArrayInfo::storage);
// `updates` gets each array made or converted.
// Without `making`, it only checks what the parameter holds.
inline void prepare(TorchParamStep& p, const std::vector<StateArrayInfo>& arrays, int array_count,
                    const std::vector<std::string>& scalar_names, const std::vector<double>& initial_scalars,
                    bool making, PreparedParam& prepared) {
  const at::Tensor& param = p.param;
  const bool narrow = param.scalar_type() == at::kBFloat16 || param.scalar_type() == at::kHalf;
  if (!narrow && p.state.find("master_weights"))
    refuse(p, std::string("has master weights in its state, which are for bfloat16 and float16 parameters, not ") +
                  c10::toString(param.scalar_type()));
  prepared.new_arrays = 0;
  prepared.new_ema = false;
  prepared.steps = 0;
  prepared.param = Worked::of(param);
  for (const StateArrayInfo& info : arrays) {
    const bool master = info.index == master_array;
    const c10::ScalarType dtype = state_dtype(param.scalar_type(), info.storage);
    const at::Tensor* held = p.state.find(info.name);
    Worked array;
    if (!held) {
      if (!making) continue;
      const at::Tensor made = master ? param.to(at::kFloat).contiguous()
                                     : at::full(param.sizes(), info.initial, param.options().dtype(dtype).requires_grad(false));
      p.updates.emplace_back(info.name, made);
      array = {made, {}};
      if (info.index >= 0) prepared.new_arrays |= 1u << info.index;
      if (info.index == ema_array) prepared.new_ema = true;
    } else {
      array = Worked::of(held_array(p, info.name, *held, dtype));
    }
    if (master || info.index == ema_array) {
      (master ? prepared.master : prepared.ema) = array;
      continue;
    }
    if (prepared.arrays.empty()) prepared.arrays.resize(std::size_t(array_count));
    prepared.arrays[std::size_t(info.index)] = std::move(array);
  }
  if (const at::Tensor* step_entry = p.state.find("step")) {
    const double count = number_in(p, "step", *step_entry);
    if (count < 0 || count != std::floor(count) || !(count < double(max_step_count)))
      refuse(p, "has step = " + std::to_string(count) + " in its state; a step needs a whole number in [0, " +
                    std::to_string(max_step_count) + ")");
    prepared.steps = long(count);
  }
  prepared.scalars = initial_scalars;
  prepared.scalar_names = &scalar_names;
  for (std::size_t s = 0; s < scalar_names.size(); ++s) {
    if (const at::Tensor* held = p.state.find(scalar_names[s])) prepared.scalars[s] = number_in(p, scalar_names[s], *held);
  }
}

}  // namespace detail
}  // namespace multopt::adapters
