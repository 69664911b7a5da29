// A base that breaks the contract with the step loop in one way, chosen by -DMISSING_<member>:
// the Optimizer must stop at contract.hpp's static_assert naming that member (tests/CMakeLists.txt
// matches the message). Without any -D it is a complete base and compiles.
#include <multopt/optimizer.hpp>
#include <multopt/rules/additive.hpp>

struct Bad {
  static constexpr const char* name = "bad";
  struct Params {
    constexpr Params() noexcept {}
    template <class Self, class Visit>
    static constexpr void fields(Self&, Visit&&) {}
    void validate() const {}
  };
  static constexpr int array_count = 1;
  static constexpr const char* array_names[array_count] = {"buffer"};
#ifndef MISSING_uses_array
  static bool uses_array(const Params&, int) { return true; }
#endif
#ifndef MISSING_initial_value
  static double initial_value(const Params&, int) { return 0.0; }
#endif
  template <class S>
  struct Coeffs {
#ifndef MISSING_scale
    double scale;
#endif
    S decay;
  };
#ifndef MISSING_coeffs
  template <class S>
  static Coeffs<S> coeffs(const Params&, long, unsigned) { return Coeffs<S>{{}, S(0.5)}; }
#endif
#ifdef MISSING_scalar_names  // declares scalar state but not its names, with a coeffs that takes it
  static constexpr int scalar_count = 1;
  static constexpr double scalar_initial[scalar_count] = {1.0};
#endif
#ifndef MISSING_direction
  template <class V, class Arrays, class S>
  static V direction(const V& g, const Arrays& arrays, const Coeffs<S>& c) {
    const V b = c.decay * arrays.load(0) + g;
    arrays.store(0, b);
    return b;
  }
#endif
};

int main() {
  multopt::Optimizer<Bad, multopt::rules::Additive, float> opt;
  float p = 1, g = 1;
  opt.add_params(&p, &g, 1);
  opt.step();
  return p == 1.0f;
}
