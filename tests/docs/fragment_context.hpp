// What a ```cpp fragment or ```cpp declarations block of the docs may use without declaring it
// (tests/docs/compile_blocks.cmake): multopt, the standard headers the docs use, and a
// framework's buffers. The docs say so where they first use them: `weights` and `grads` are a
// framework's float* buffers of `n` elements, and framework_backward() writes `grads`.
#pragma once

#include <multopt/multopt.hpp>
#ifdef MULTOPT_DOCS_MPI
#include <multopt/distributed/mpi.hpp>
#endif

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace docs_context {
inline std::vector<float> weight_values(64, 0.5f), grad_values(64, 0.0f);
inline std::vector<float> bias_values(8, 0.0f), bias_grad_values(8, 0.0f);
}  // namespace docs_context

// A framework's parameter and gradient buffers.
inline float* weights = docs_context::weight_values.data();
inline float* grads = docs_context::grad_values.data();
inline std::size_t n = docs_context::weight_values.size();
inline float* biases = docs_context::bias_values.data();
inline float* bias_grads = docs_context::bias_grad_values.data();
inline std::size_t n_biases = docs_context::bias_values.size();
inline int steps = 20;
inline int epochs = 3;
inline int batches = 5;

// The framework's backward pass: writes the gradients in place (here of ½‖w − 1‖²).
inline void framework_backward(float* into) {
  for (std::size_t k = 0; k < n; ++k) into[k] = weights[k] - 1.0f;
}
inline void framework_backward() {
  framework_backward(grads);
  for (std::size_t k = 0; k < n_biases; ++k) bias_grads[k] = biases[k] - 0.5f;
}
