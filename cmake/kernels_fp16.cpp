// The step kernels of parameter type Eigen::half for multopt_make_optimizer_fp16, compiled once per
// instruction set (CMakeLists.txt, multopt_dispatch in cmake/multoptDispatch.cmake).
#include <multopt/multopt.hpp>

MULTOPT_KERNELS(Eigen::half, multopt::AllBases, multopt::AllRules)
