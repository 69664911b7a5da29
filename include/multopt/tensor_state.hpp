// What Optimizer holds of each tensor (where its arrays are, its step count and state), how it
// hands them to step_tensors, and the state arrays a step makes before it changes anything,
// held until the step has succeeded.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "contract.hpp"
#include "named_state.hpp"
#include "state_array.hpp"
#include "storage.hpp"
#include "stored_array.hpp"
#include "tensor_refs.hpp"
#include "validate.hpp"

namespace multopt {

template <class P, class Base>
struct TensorState {
  P* param;
  GradientPointer<P> grad;
  std::size_t size;
  std::size_t group;
  long steps = 0;
  std::array<StoredArray<Arithmetic<P>>, Base::array_count> arrays{};  // StorageMode::state
  StateArray<Arithmetic<P>> master{};  // 16-bit P under Rounding::master: the fp32 weights, from the first step
  StateArray<Arithmetic<P>> ema{};  // the weights' moving average (ema_decay), from the first step with it
  unsigned new_state_arrays = 0;  // bit k: state array k was made since the tensor's last step
  contract::Scalars<Base> scalars = contract::initial_scalars<Base>();  // per-tensor scalar state, if any
};

namespace detail {

// `size` values at `values` for the `what` of tensor `tensor`, one per element of its `elements`.
inline void require_value_count(std::size_t elements, const std::string& what, std::size_t tensor, const void* values,
                                std::size_t size) {
  if (size != elements)
    throw std::invalid_argument("multopt: tensor " + std::to_string(tensor) + " has " + std::to_string(elements) +
                                " elements, not the " + std::to_string(size) + " values given for its " + what);
  require_buffer("values", values, size);
}

// Replaces `array`, the `what` of tensor `tensor` of `elements` elements, by a copy of `size`
// values (one per element). On any error nothing changes.
template <class S>
void copy_into(StateArray<S>& array, std::size_t elements, const std::string& what, std::size_t tensor,
               const S* values, std::size_t size) {
  require_value_count(elements, what, tensor, values, size);
  StateArray<S> copy(values, values + size);
  array.swap(copy);
}

// A step count that a tensor may be set to: one from which it can step.
inline void check_step_count(long steps) {
  if (steps < 0 || steps >= max_step_count)
    reject_long("step count", steps, "in [0, " + std::to_string(max_step_count) + "), so that the tensor can step");
}

// The buffers of a tensor of `size` elements that Optimizer is to add, and a size small enough
// for the base's state arrays to be addressed.
template <class S, class Base>
void require_new_tensor(const void* param, const void* grad_address, std::size_t size) {
  require_tensor_buffers(param, grad_address, size);
  if (size > StateArray<S>().max_size() / Base::array_count) {
    throw std::length_error("multopt: a tensor of " + std::to_string(size) +
                            " elements is too large for its state to be addressed");
  }
}

// Optimizer::set_state: copies `size` values into tensor `tensor`'s state array `name`, which
// `base`, its group's settings, must use, stored as `storage`. On any error nothing changes.
template <class P, class Base>
void set_state_array(TensorState<P, Base>& t, std::size_t tensor, const typename Base::Params& base,
                     std::string_view name, const Arithmetic<P>* values, std::size_t size, StateStorage storage) {
  const int array = array_of<Base>(name);
  if (!Base::uses_array(base, array))
    throw std::invalid_argument("multopt: " + std::string(Base::name) + " state '" + std::string(name) +
                                "' is not used with the hyperparameters of group " + std::to_string(t.group));
  require_value_count(t.size, "state '" + std::string(name) + "'", tensor, values, size);
  StoredArray<Arithmetic<P>> copy(values, size, storage);
  t.arrays[std::size_t(array)].swap(copy);
  t.new_state_arrays &= ~(1u << array);
}

// Optimizer::swap_ema: every tensor's parameters exchanged with its moving average, or a refusal
// that changes nothing.
template <class P, class Base>
void swap_in_ema(std::vector<TensorState<P, Base>>& tensors) {
  if constexpr (is_16bit<P>) {
    throw std::logic_error("multopt: swap_ema is for float and double parameters: a 16-bit parameter cannot hold "
                           "its fp32 moving average exactly; read the averages with ema(tensor)");
  } else {
    for (std::size_t k = 0; k < tensors.size(); ++k)
      if (tensors[k].ema.empty() && tensors[k].size > 0)
        throw std::logic_error("multopt: tensor " + std::to_string(k) +
                               " has no moving average to swap in (one is made by its first step with ema_decay set)");
    for (TensorState<P, Base>& t : tensors) std::swap_ranges(t.param, t.param + t.size, t.ema.begin());
  }
}

}  // namespace detail

// The arrays made for one step (new ones, and a base's arrays stored anew after the storage
// mode changed), until it succeeds: then each goes to its tensor if the tensor was stepped, and
// is freed otherwise.
template <class P, class Base>
class NewStateArrays {
 public:
  using S = Arithmetic<P>;

  // Holds `values`, the new master weights (master_array) or moving average (ema_array) of a
  // tensor; where they are.
  S* hold(std::size_t tensor, int index, StateArray<S> values) {
    arrays_.push_back({tensor, index, StoredArray<S>(std::move(values))});
    return arrays_.back().values.data();
  }
  // The same for the base's state array `index`.
  StatePointer<S> hold(std::size_t tensor, int index, StoredArray<S> values) {
    arrays_.push_back({tensor, index, std::move(values)});
    return arrays_.back().values.pointer();
  }

  void give_to(std::vector<TensorState<P, Base>>& tensors, const std::vector<char>& stepped) noexcept {
    for (NewArray& array : arrays_) {
      if (!stepped[array.tensor]) continue;
      TensorState<P, Base>& t = tensors[array.tensor];
      if (array.index >= 0) {
        t.arrays[std::size_t(array.index)].swap(array.values);
      } else {
        StateArray<S> values = array.values.take_computed();
        (array.index == master_array ? t.master : t.ema).swap(values);
      }
    }
    arrays_.clear();
  }

  // Frees what a step that threw had made.
  void drop() noexcept { arrays_.clear(); }

 private:
  struct NewArray {
    std::size_t tensor;
    int index;  // in the base's enum Array, or master_array or ema_array
    StoredArray<S> values;
  };
  std::vector<NewArray> arrays_;
};

// Tensor k as step_tensors() takes it, with the settings `base` of its group: its arrays, and the
// new ones those settings need (and the master weights of a 16-bit tensor under
// Rounding::master, and with `ema` its moving average), made now and held in `made` until the
// step has succeeded.
template <class P, class Base>
TensorRefs<Base, P> refs_of(TensorState<P, Base>& t, std::size_t k, const typename Base::Params& base,
                            const StorageMode& storage, bool ema, NewStateArrays<P, Base>& made) {
  using S = Arithmetic<P>;
  TensorRefs<Base, P> refs;
  refs.param = t.param;
  refs.grad = t.grad;
  refs.size = t.size;
  refs.steps = &t.steps;
  if constexpr (contract::scalar_count<Base> > 0) refs.scalars = t.scalars.data();
  refs.new_arrays = t.new_state_arrays;
  refs.group = t.group;
  for (int index = 0; index < Base::array_count; ++index) {
    StoredArray<S>& array = t.arrays[std::size_t(index)];
    if (!Base::uses_array(base, index)) continue;
    if (array.empty() && t.size > 0) {
      refs.state[std::size_t(index)] =
          made.hold(k, index, StoredArray<S>(t.size, S(Base::initial_value(base, index)), storage.state));
      refs.new_arrays |= 1u << index;
    } else if (array.storage() != storage.state) {  // the mode changed: stored anew
      refs.state[std::size_t(index)] = made.hold(k, index, array.stored_as(storage.state));
    } else {
      refs.state[std::size_t(index)] = array.pointer();
    }
  }
  if (is_16bit<P> && storage.rounding == Rounding::master) {
    refs.master = t.master.empty() && t.size > 0 ? made.hold(k, master_array, StateArray<S>(t.param, t.param + t.size))
                                                 : data_or_null(t.master);
  }
  if (ema) {
    // A new average takes θ in the step (TensorRefs::new_ema): the zeros it is made with go unused.
    refs.new_ema = t.ema.empty() && t.size > 0;
    refs.ema = refs.new_ema ? made.hold(k, ema_array, StateArray<S>(t.size)) : data_or_null(t.ema);
  }
  return refs;
}

// After a step that stepped the tensor with `refs`: it keeps the arrays it was stepped with and
// frees the others (an AMSGrad maximum after amsgrad went off, master weights after another
// rounding, the moving average after ema_decay went off); none of them is new any more.
template <class P, class Base>
void keep_arrays_used(TensorState<P, Base>& t, const TensorRefs<Base, P>& refs) noexcept {
  for (int array = 0; array < Base::array_count; ++array)
    if (!refs.state[std::size_t(array)]) StoredArray<Arithmetic<P>>().swap(t.arrays[std::size_t(array)]);
  if (!refs.master) StateArray<Arithmetic<P>>().swap(t.master);
  if (!refs.ema) StateArray<Arithmetic<P>>().swap(t.ema);
  t.new_state_arrays = 0;
}

// After a step: each tensor stepped takes the arrays it was stepped with, and no others; one
// skipped keeps all it had, as if found non-finite up front.
template <class P, class Base>
void keep_state(std::vector<TensorState<P, Base>>& tensors, const std::vector<TensorRefs<Base, P>>& refs,
                NewStateArrays<P, Base>& made, std::vector<char>& stepped,
                const std::vector<std::size_t>& skipped) noexcept {
  stepped.assign(tensors.size(), 1);  // within the capacity Optimizer::add_tensor reserved
  for (std::size_t k : skipped) stepped[k] = 0;
  made.give_to(tensors, stepped);
  for (std::size_t k = 0; k < tensors.size(); ++k)
    if (stepped[k]) keep_arrays_used(tensors[k], refs[k]);
}

}  // namespace multopt
