// What Optimizer holds of each tensor, read and written by tensor and name: its size, group
// and step count, the base's state arrays (as stored: StoredArray) and scalars, the master
// weights of 16-bit parameters and the moving average of the weights. Optimizer derives from it
// and adds the settings and the step.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "named_state.hpp"
#include "state_array.hpp"
#include "storage.hpp"
#include "stored_array.hpp"
#include "tensor_state.hpp"
#include "validate.hpp"

namespace multopt {

template <class P, class Base>
class OptimizerState {
  using S = Arithmetic<P>;

 public:
  // A 16-bit tensor's master weights, or null while it has none.
  const S* master(std::size_t tensor) const { return data_or_null(tensors_[checked_tensor(tensor)].master); }
  // Copies `size` values into a 16-bit tensor's master weights, as when a run resumes; the next
  // step under Rounding::master continues from them. On any error nothing changes.
  void set_master(std::size_t tensor, const S* values, std::size_t size) {
    if (!is_16bit<P>) throw std::invalid_argument("multopt: float and double parameters have no master weights");
    detail::copy_into(tensors_[checked_tensor(tensor)].master, tensors_[tensor].size, "master weights", tensor, values,
                      size);
  }

  // A tensor's moving average of its weights (fp32 for 16-bit parameters: the average of the
  // fp32 results), or null while it has none.
  const S* ema(std::size_t tensor) const { return data_or_null(tensors_[checked_tensor(tensor)].ema); }
  // Copies `size` values into it, as when a run resumes; the next step with ema_decay set
  // continues from them. On any error nothing changes.
  void set_ema(std::size_t tensor, const S* values, std::size_t size) {
    detail::copy_into(tensors_[checked_tensor(tensor)].ema, tensors_[tensor].size, "moving average", tensor, values,
                      size);
  }
  // Exchanges every tensor's parameters with its moving average, in place and exactly, so that
  // the model evaluates with the averages; a second call exchanges them back, which must come
  // before the next step. Refused, changing nothing, where a tensor has no average, and for
  // 16-bit parameters, whose fp32 averages a 16-bit parameter cannot hold exactly: read those
  // with ema(k).
  void swap_ema() { detail::swap_in_ema(tensors_); }

  std::size_t tensor_count() const { return tensors_.size(); }
  std::size_t size(std::size_t tensor) const { return tensors_[checked_tensor(tensor)].size; }
  std::size_t group_of(std::size_t tensor) const { return tensors_[checked_tensor(tensor)].group; }
  long step_count(std::size_t tensor) const { return tensors_[checked_tensor(tensor)].steps; }
  // Sets the steps the tensor has taken (Adam's bias correction counts them), as when a run
  // moves in from another framework.
  void set_step_count(std::size_t tensor, long steps) {
    checked_tensor(tensor);
    detail::check_step_count(steps);
    tensors_[tensor].steps = steps;
  }

  // Named state, as torch.optim names it: the base's arrays (array_names: exp_avg,
  // momentum_buffer, ...), then its per-tensor scalars (scalar_names: NAdam's mu_product).
  static std::vector<std::string> state_names() { return detail::state_names_of<Base>(); }
  // The arrays the tensor holds now, then every scalar (always held): a subset of state_names().
  std::vector<std::string> state_names(std::size_t tensor) const {
    return detail::held_state_names<Base>(tensors_[checked_tensor(tensor)].arrays);
  }
  // The tensor's scalar state of that name (mu_product), kept in double whatever S.
  double scalar_state(std::size_t tensor, std::string_view name) const {
    return tensors_[checked_tensor(tensor)].scalars[std::size_t(detail::scalar_of<Base>(name))];
  }
  // Sets it; the next step continues from it. On any error nothing changes.
  void set_scalar_state(std::size_t tensor, std::string_view name, double value) {
    auto& scalar = tensors_[checked_tensor(tensor)].scalars[std::size_t(detail::scalar_of<Base>(name))];
    scalar = detail::finite_state(name, value);
  }
  // The tensor's state array of that name, or null while it has none; refused (std::logic_error)
  // for an array stored in 16 bits: state_values reads any.
  const S* state(std::size_t tensor, std::string_view name) const {
    return state(tensor, detail::array_of<Base>(name));
  }
  // The same by its index in Base::Array (see the base's header).
  const S* state(std::size_t tensor, int index) const {
    const StoredArray<S>& array = stored_state(tensor, index);
    if (array.storage() != StateStorage::compute)
      throw std::logic_error(std::string("multopt: tensor ") + std::to_string(tensor) + "'s " +
                             Base::array_names[index] + " is stored as " + state_storage_name(array.storage()) +
                             "; read it with state_values");
    return array.data();
  }
  // Its values, widened where stored in 16 bits (exactly); empty while it has none.
  StateArray<S> state_values(std::size_t tensor, std::string_view name) const {
    return stored_state(tensor, detail::array_of<Base>(name)).values();
  }
  // Bytes of memory the tensor's state arrays take (master weights and average aside).
  std::size_t state_bytes(std::size_t tensor) const {
    std::size_t bytes = 0;
    for (const StoredArray<S>& array : tensors_[checked_tensor(tensor)].arrays) bytes += array.bytes();
    return bytes;
  }

 protected:
  const StoredArray<S>& stored_state(std::size_t tensor, int index) const {
    return tensors_[checked_tensor(tensor)].arrays[std::size_t(detail::checked_array<Base>(index))];
  }
  std::size_t checked_tensor(std::size_t tensor) const { return checked_index("tensor", tensor, tensors_.size()); }

  std::vector<TensorState<P, Base>> tensors_;
};

}  // namespace multopt
