// The kernels of tests/dispatch: a few combinations, compiled per instruction set by
// multopt_dispatch, as a header-only user would for the optimizers of their program.
#include <multopt/multopt.hpp>

using TestedBases = multopt::TypeList<multopt::bases::Sgd, multopt::bases::Adam>;
using TestedRules = multopt::TypeList<multopt::rules::Additive, multopt::rules::Multiplicative, multopt::rules::Hybrid>;
MULTOPT_KERNELS(float, TestedBases, TestedRules)
MULTOPT_KERNELS(double, TestedBases, TestedRules)
MULTOPT_KERNELS(Eigen::bfloat16, TestedBases, TestedRules)
