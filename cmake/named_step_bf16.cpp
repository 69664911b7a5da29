// make_named_step<Eigen::bfloat16> for the torch adapters' programs of this repository (CMakeLists.txt,
// multopt_named_step).
#include <multopt/multopt.hpp>

MULTOPT_INSTANTIATE_MAKE_NAMED_STEP(Eigen::bfloat16)
