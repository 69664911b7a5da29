// The step kernels of parameter type double for multopt_make_optimizer_double, compiled once per
// instruction set (CMakeLists.txt, multopt_dispatch in cmake/multoptDispatch.cmake).
#include <multopt/multopt.hpp>

MULTOPT_KERNELS(double, multopt::AllBases, multopt::AllRules)
