// make_optimizer<Eigen::bfloat16> for every program of this repository (CMakeLists.txt, multopt_make_optimizer).
#include <multopt/multopt.hpp>

MULTOPT_INSTANTIATE_MAKE_OPTIMIZER(Eigen::bfloat16)
