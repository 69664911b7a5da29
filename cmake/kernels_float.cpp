// The step kernels of parameter type float for multopt_make_optimizer_float, compiled once per
// instruction set (CMakeLists.txt, multopt_dispatch in cmake/multoptDispatch.cmake).
#include <multopt/multopt.hpp>

MULTOPT_KERNELS(float, multopt::AllBases, multopt::AllRules)
