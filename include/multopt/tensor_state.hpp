// What Optimizer holds of each tensor (where its arrays are, its step count and state), and the
// state arrays a step makes before it changes anything, held until the step has succeeded.
#pragma once

#include <array>
#include <cstddef>
#include <utility>
#include <vector>

#include "contract.hpp"
#include "state_array.hpp"
#include "storage.hpp"
#include "tensor_refs.hpp"

namespace multopt {

template <class P, class Base>
struct TensorState {
  P* param;
  GradientPointer<P> grad;
  std::size_t size;
  std::size_t group;
  long steps = 0;
  std::array<StateArray<Arithmetic<P>>, Base::slot_count> slots{};
  StateArray<Arithmetic<P>> master{};  // 16-bit P under Rounding::master: the fp32 weights, from the first step
  unsigned new_state_arrays = 0;  // bit k: state array k was made since the tensor's last step
  contract::Scalars<Base> scalars = contract::initial_scalars<Base>();  // per-tensor scalar state, if any
};

// The arrays made for one step, until it succeeds: then each goes to its tensor if the tensor was
// stepped, and is freed otherwise.
template <class P, class Base>
class NewStateArrays {
 public:
  using S = Arithmetic<P>;

  // Holds `values`, the new array `slot` (master_slot: the master weights) of a tensor; where
  // they are.
  S* hold(std::size_t tensor, int slot, StateArray<S> values) {
    arrays_.push_back({tensor, slot, std::move(values)});
    return arrays_.back().values.data();
  }

  void give_to(std::vector<TensorState<P, Base>>& tensors, const std::vector<char>& stepped) noexcept {
    for (NewArray& array : arrays_) {
      if (!stepped[array.tensor]) continue;
      TensorState<P, Base>& t = tensors[array.tensor];
      (array.slot == master_slot ? t.master : t.slots[std::size_t(array.slot)]).swap(array.values);
    }
    arrays_.clear();
  }

  // Frees what a step that threw had made.
  void drop() noexcept { arrays_.clear(); }

 private:
  struct NewArray {
    std::size_t tensor;
    int slot;
    StateArray<S> values;
  };
  std::vector<NewArray> arrays_;
};

}  // namespace multopt
