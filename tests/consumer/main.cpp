// Steps an MAdam<float> through the typed and the run-time API and checks the result against
// the closed form: with a constant gradient Adam's moments are m = (1 − β1^t)·g and
// v = (1 − β2^t)·g², so d = m/(√v/√(1 − β2^t) + eps) = (1 − β1^t)·g/(|g| + eps), and each step
// multiplies θ by 1 − s·lr_out·sign(θ)·tanh(lr_in·d) with s = 1/(1 − β1^t).
#include <cmath>
#include <cstdio>
#include <vector>

#include <multopt/multopt.hpp>

int main() {
  const double lr_in = 1.0, lr_out = 0.01, beta1 = 0.9, eps = 1e-8;
  const std::vector<float> init = {1.5f, -0.5f, 0.0f, 2.0f, -3.0f};
  const std::vector<float> grad = {1.0f, -2.0f, 0.5f, -0.25f, 0.75f};
  const int steps = 5;

  std::vector<double> expected(init.begin(), init.end());
  for (int t = 1; t <= steps; ++t) {
    const double s = 1.0 / (1.0 - std::pow(beta1, t));
    for (std::size_t i = 0; i < expected.size(); ++i) {
      const double d = (1.0 - std::pow(beta1, t)) * grad[i] / (std::fabs(grad[i]) + eps);
      expected[i] -= s * lr_out * std::fabs(expected[i]) * std::tanh(lr_in * d);
    }
  }

  multopt::rules::Multiplicative::Params rule;
  rule.lr_in = lr_in;
  rule.lr_out = lr_out;
  multopt::MAdam<float> typed(rule);
  // The run-time API by name over one-entry lists: make_optimizer's every combination would
  // cost this test a minute of compiling.
  auto erased = multopt::make_optimizer_from<float>(multopt::TypeList<multopt::bases::Adam>{},
                                                    multopt::TypeList<multopt::rules::Multiplicative>{}, "adam",
                                                    "multiplicative", {{"lr_out", "0.01"}});
  std::vector<float> typed_param = init, erased_param = init;
  typed.add_params(typed_param.data(), grad.data(), init.size());
  erased->add_params(erased_param.data(), grad.data(), init.size());
  for (int t = 0; t < steps; ++t) {
    typed.step();
    erased->step();
  }

  int wrong = 0;
  for (std::size_t i = 0; i < init.size(); ++i) {
    for (const float got : {typed_param[i], erased_param[i]}) {
      if (std::fabs(got - expected[i]) > 1e-5 * std::fabs(expected[i])) {
        std::printf("theta[%zu] = %.9g, expected %.9g\n", i, double(got), expected[i]);
        ++wrong;
      }
    }
  }
  if (typed.step_count(0) != steps || erased->step_count(0) != steps) ++wrong;
  std::printf("%s: %d wrong\n", wrong ? "FAIL" : "PASS", wrong);
  return wrong == 0 ? 0 : 1;
}
