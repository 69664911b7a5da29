// Run-time dispatch of the step's kernels by instruction set (docs/performance.md, "Portable
// builds"). Eigen picks its packet type from the compiler's flags, so one binary that is fast on
// every x86-64 holds the kernels (step_chunk of each base × rule × parameter type) compiled
// several times, each in a translation unit of its own with its own flags, and picks one when it
// first steps, from the CPU's features: x86-64's baseline (SSE2), AVX2 with FMA, or AVX-512; on
// AArch64 the one NEON kernel. A program (every one of its files) defines MULTOPT_DISPATCH and
// links the kernels that CMake's multopt_dispatch() compiles from files of MULTOPT_KERNELS lines;
// without MULTOPT_DISPATCH a step runs the kernels compiled with the program's own flags.
//
// One definition each: a kernel translation unit defines MULTOPT_KERNEL_ISA (baseline, avx2,
// ...), which puts every function of the step loop, of simd::Vec and of the storage
// conversions in an inline namespace of that instruction set (simd.hpp), so that no two kernels
// and no kernel and the program share a symbol the linker could merge; the kernels themselves
// are multopt::kernels::<isa>::step_chunk. What else a kernel compiles out of line (Eigen's or
// the standard library's inline functions, which no namespace of ours can hold) is checked by
// the test dispatch.symbols: none in a kernel of AVX2 or AVX-512 (tests/dispatch_symbols.cmake).
#pragma once

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "step_chunk.hpp"

namespace multopt {

template <class... T>
struct TypeList;

// The kernels of this architecture: X(name, floats per packet), the baseline first and the
// widest last.
#if defined(__x86_64__) || defined(_M_X64)
#define MULTOPT_KERNEL_LIST(X) X(baseline, 4) X(avx2, 8) X(avx512, 16)
#elif defined(__aarch64__)
#define MULTOPT_KERNEL_LIST(X) X(neon, 4)
#else
#define MULTOPT_KERNEL_LIST(X) X(baseline, 0)
#endif

// The kernels, each compiled only in the translation units of its instruction set.
namespace kernels {
#define MULTOPT_DECLARE_KERNEL(isa, width)                                              \
  namespace isa {                                                                       \
  inline constexpr int float_width = width; /* 0: whatever this architecture's is */ \
  template <class Base, class Rule, class P>                                            \
  void step_chunk(const void* tensors, const Chunk& chunk, const Chunk* next);          \
  }
MULTOPT_KERNEL_LIST(MULTOPT_DECLARE_KERNEL)
#undef MULTOPT_DECLARE_KERNEL
}  // namespace kernels

// The kernels this architecture has, by name: Kernel::baseline, Kernel::avx2, Kernel::avx512
// on x86-64; Kernel::neon on AArch64.
enum class Kernel {
#define MULTOPT_KERNEL_ENUM(isa, width) isa,
  MULTOPT_KERNEL_LIST(MULTOPT_KERNEL_ENUM)
#undef MULTOPT_KERNEL_ENUM
};

inline const char* kernel_name(Kernel kernel) {
  static constexpr const char* names[] = {
#define MULTOPT_KERNEL_NAME(isa, width) #isa,
      MULTOPT_KERNEL_LIST(MULTOPT_KERNEL_NAME)
#undef MULTOPT_KERNEL_NAME
  };
  return names[int(kernel)];
}

// Whether this CPU runs the kernel (and its operating system saves the registers it uses).
inline bool kernel_supported(Kernel kernel) {
#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
  __builtin_cpu_init();
  switch (kernel) {
    case Kernel::baseline: return true;
    case Kernel::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Kernel::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("fma");
  }
  return false;
#else
  return kernel == Kernel(0);
#endif
}

inline constexpr int kernel_count = 0
#define MULTOPT_KERNEL_ONE(isa, width) +1
    MULTOPT_KERNEL_LIST(MULTOPT_KERNEL_ONE);
#undef MULTOPT_KERNEL_ONE

// The kernel named `name` ("avx2"); throws std::invalid_argument for a name this architecture
// has not, or a kernel this CPU cannot run.
inline Kernel kernel_named(const std::string& name) {
  std::string known;
  for (int k = 0; k < kernel_count; ++k) {
    if (name == kernel_name(Kernel(k))) {
      if (!kernel_supported(Kernel(k))) throw std::invalid_argument("multopt: this CPU cannot run the " + name + " kernel");
      return Kernel(k);
    }
    known += (k ? ", " : "") + std::string(kernel_name(Kernel(k)));
  }
  throw std::invalid_argument("multopt: no kernel is named '" + name + "'; this architecture has " + known);
}

namespace detail {
// The kernel that the steps of a dispatching program run, once chosen; -1 before.
inline std::atomic<int>& chosen_kernel() {
  static std::atomic<int> kernel{-1};
  return kernel;
}
}  // namespace detail

// The kernel that the steps of a program built with MULTOPT_DISPATCH run: the one force_kernel
// chose, else the one the environment variable MULTOPT_KERNEL names, else the widest this CPU
// runs; chosen at the first call (a step's first) and kept. Throws std::invalid_argument where
// MULTOPT_KERNEL names no kernel this CPU runs.
inline Kernel active_kernel() {
  std::atomic<int>& chosen = detail::chosen_kernel();
  const int known = chosen.load();
  if (known >= 0) return Kernel(known);
  Kernel kernel = Kernel(0);
  if (const char* name = std::getenv("MULTOPT_KERNEL"); name != nullptr && *name != 0) {
    kernel = kernel_named(name);
  } else {
    for (int k = kernel_count - 1; k > 0 && kernel == Kernel(0); --k)
      if (kernel_supported(Kernel(k))) kernel = Kernel(k);
  }
  int unset = -1;
  chosen.compare_exchange_strong(unset, int(kernel));
  return Kernel(chosen.load());
}

// Makes the steps planned from now on run `kernel` (for tests and bug reports); throws
// std::invalid_argument where this CPU cannot run it.
inline void force_kernel(Kernel kernel) {
  if (!kernel_supported(kernel))
    throw std::invalid_argument(std::string("multopt: this CPU cannot run the ") + kernel_name(kernel) + " kernel");
  detail::chosen_kernel().store(int(kernel));
}

namespace detail {

// The kernel that steps chunks of Base × Rule × P: the active one among those compiled per
// instruction set where the program dispatches, else the one compiled with the program's flags.
// (Every file of a program defines MULTOPT_DISPATCH, or none does.)
template <class Base, class Rule, class P>
ChunkStep chunk_kernel() {
#if defined(MULTOPT_DISPATCH)
  constexpr ChunkStep table[] = {
#define MULTOPT_KERNEL_ENTRY(isa, width) &kernels::isa::step_chunk<Base, Rule, P>,
      MULTOPT_KERNEL_LIST(MULTOPT_KERNEL_ENTRY)
#undef MULTOPT_KERNEL_ENTRY
  };
  return table[int(active_kernel())];
#else
  return &step_chunk<Base, Rule, P>;
#endif
}

}  // namespace detail

}  // namespace multopt

// A kernel translation unit: the definition of its instruction set's kernels, and
// MULTOPT_KERNELS(P, Bases, Rules), which compiles the kernel of every base in the TypeList Bases
// with every rule in Rules that supports it, for parameters of type P (MULTOPT_KERNELS(float,
// multopt::AllBases, multopt::AllRules)). Elsewhere MULTOPT_KERNELS is empty.
#if defined(MULTOPT_KERNEL_ISA)
namespace multopt::kernels::MULTOPT_KERNEL_ISA {

static_assert(float_width == 0 || simd::Vec<float>::size == float_width,
              "MULTOPT_KERNEL_ISA names the kernel of other compiler flags than this file's "
              "(CMake's multopt_dispatch sets both)");

template <class Base, class Rule, class P>
void step_chunk(const void* tensors, const Chunk& chunk, const Chunk* next) {
  detail::step_chunk<Base, Rule, P>(tensors, chunk, next);
}

template <class Base, class Rule, class P>
constexpr detail::ChunkStep kernel_if_supported() {
  if constexpr (Rule::template supports<Base>) return &step_chunk<Base, Rule, P>;
  else return nullptr;
}

// Takes the address of each kernel, so that the compiler emits them all.
template <class P, class Base, class... Rules>
void compile_base(detail::ChunkStep*& out) {
  ((*out++ = kernel_if_supported<Base, Rules, P>()), ...);
}
template <class P, class... Bases, class... Rules>
void compile(TypeList<Bases...>, TypeList<Rules...>, detail::ChunkStep* out) {
  (compile_base<P, Bases, Rules...>(out), ...);
}

}  // namespace multopt::kernels::MULTOPT_KERNEL_ISA

#define MULTOPT_KERNELS(P, BASES, RULES) \
  template void ::multopt::kernels::MULTOPT_KERNEL_ISA::compile<P>(BASES, RULES, ::multopt::detail::ChunkStep*);
#else
#define MULTOPT_KERNELS(P, BASES, RULES)
#endif
