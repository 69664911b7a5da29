// The step kernels of parameter type Eigen::bfloat16 for multopt_make_optimizer_bf16, compiled once per
// instruction set (CMakeLists.txt, multopt_dispatch in cmake/multoptDispatch.cmake).
#include <multopt/multopt.hpp>

MULTOPT_KERNELS(Eigen::bfloat16, multopt::AllBases, multopt::AllRules)
