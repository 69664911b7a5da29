# multopt_dispatch(target kernel_sources...): run-time dispatch of multopt's step kernels for
# `target` (docs/performance.md, "Portable builds"). Each source holds MULTOPT_KERNELS lines,
#   #include <multopt/multopt.hpp>
#   MULTOPT_KERNELS(float, multopt::AllBases, multopt::AllRules)
# and is compiled once per instruction set of the target architecture, with that set's flags
# (x86-64: the baseline, AVX2 with FMA, AVX-512; AArch64: NEON), into an object library
# <target>_kernels_<set> whose objects the target links; the target and, for a library, whatever
# links it is compiled with MULTOPT_DISPATCH, and then steps through the kernel that the CPU
# runs best (or MULTOPT_KERNEL names). Compile the target itself for the oldest CPU it must run
# on (no -march=native): only the kernels need the newer instructions. The kernel objects' names
# are in the target's property MULTOPT_KERNEL_TARGETS. GCC and Clang.
function(multopt_dispatch target)
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|x64)$")
    set(sets baseline avx2 avx512)
  elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
    set(sets neon)
  else()
    set(sets baseline)
  endif()
  set(flags_avx2 -mavx2 -mfma)
  set(flags_avx512 -mavx512f -mavx512dq -mavx512bw -mavx512vl -mfma)
  get_target_property(type ${target} TYPE)
  get_target_property(pic ${target} POSITION_INDEPENDENT_CODE)
  if(type MATCHES "^(SHARED_LIBRARY|MODULE_LIBRARY)$")
    set(pic ON)
  endif()
  set(objects "")
  foreach(set IN LISTS sets)
    add_library(${target}_kernels_${set} OBJECT ${ARGN})
    target_link_libraries(${target}_kernels_${set} PRIVATE multopt::multopt)
    target_compile_definitions(${target}_kernels_${set} PRIVATE MULTOPT_KERNEL_ISA=${set})
    target_compile_options(${target}_kernels_${set} PRIVATE ${flags_${set}})
    if(pic)
      set_target_properties(${target}_kernels_${set} PROPERTIES POSITION_INDEPENDENT_CODE ON)
    endif()
    target_sources(${target} PRIVATE $<TARGET_OBJECTS:${target}_kernels_${set}>)
    list(APPEND objects ${target}_kernels_${set})
  endforeach()
  if(type STREQUAL "EXECUTABLE" OR type STREQUAL "MODULE_LIBRARY")
    target_compile_definitions(${target} PRIVATE MULTOPT_DISPATCH)
  else()
    target_compile_definitions(${target} PUBLIC MULTOPT_DISPATCH)
  endif()
  set_target_properties(${target} PROPERTIES MULTOPT_KERNEL_TARGETS "${objects}")
endfunction()
