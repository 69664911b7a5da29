// make_named_step<float> for the torch adapters' programs of this repository (CMakeLists.txt,
// multopt_named_step).
#include <multopt/multopt.hpp>

MULTOPT_INSTANTIATE_MAKE_NAMED_STEP(float)
