// The buffers behind an Eigen array, matrix or map that Optimizer::add_params steps in place:
// contiguous, of the same size as their gradient, and not a temporary that would be freed
// while the optimizer still uses it.
#pragma once

#include <stdexcept>
#include <string>
#include <type_traits>

#include <Eigen/Core>

namespace multopt::detail {

template <class D>
void require_contiguous(const char* what, const Eigen::DenseBase<D>& x) {
  const auto& d = x.derived();
  const bool contiguous =
      d.size() <= 1 || (d.innerStride() == 1 && (d.outerSize() <= 1 || d.outerStride() == d.innerSize()));
  if (!contiguous) throw std::invalid_argument(std::string("multopt: ") + what + " is not contiguous in memory");
}

// A: the parameter argument as add_params received it (an lvalue reference, or a map).
template <class A, class G>
void require_eigen_buffers(const std::decay_t<A>& param, const Eigen::DenseBase<G>& grad) {
  using Param = std::decay_t<A>;
  static_assert(std::is_base_of_v<Eigen::DenseBase<Param>, Param>,
                "add_params takes an Eigen object or (pointer, pointer, size)");
  static_assert(std::is_lvalue_reference_v<A> || !std::is_base_of_v<Eigen::PlainObjectBase<Param>, Param>,
                "a temporary Eigen array would be freed while the optimizer still steps it");
  if (param.size() != grad.size()) {
    throw std::invalid_argument("multopt: grad has " + std::to_string(grad.size()) + " elements but param has " +
                                std::to_string(param.size()));
  }
  require_contiguous("param", param);
  require_contiguous("grad", grad.derived());
}

}  // namespace multopt::detail
