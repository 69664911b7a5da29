// Statistics of the study's tables: mean and sample standard deviation over seeds, and the
// 95% confidence interval of a mean of paired differences with Student's t.
#pragma once

#include <cmath>
#include <cstddef>
#include <numeric>
#include <stdexcept>
#include <vector>

namespace demo {

inline double mean(const std::vector<double>& values) {
  return std::accumulate(values.begin(), values.end(), 0.0) / double(values.size());
}

// With n − 1 in the denominator; zero for a single value.
inline double standard_deviation(const std::vector<double>& values) {
  if (values.size() < 2) return 0.0;
  const double centre = mean(values);
  double squares = 0.0;
  for (double value : values) squares += (value - centre) * (value - centre);
  return std::sqrt(squares / double(values.size() - 1));
}

// The 0.975 quantile of Student's t with `df` degrees of freedom: a two-sided 95% interval.
// Up to 30 from the usual table (to three decimals); beyond, the Cornish–Fisher expansion
// around the normal quantile, within 1e-4 of the exact value there.
inline double t_quantile_975(std::size_t df) {
  static const double table[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                 2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                 2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  if (df == 0) throw std::invalid_argument("a t quantile needs at least one degree of freedom");
  if (df <= 30) return table[df - 1];
  const double z = 1.959964, n = double(df);
  return z + (z * z * z + z) / (4.0 * n) + (5.0 * std::pow(z, 5) + 16.0 * z * z * z + 3.0 * z) / (96.0 * n * n);
}

struct Interval {
  double centre;
  double half_width;  // the interval is centre ± half_width
};

// Mean of a[k] − b[k] over the pairs, with the t interval of n − 1 degrees of freedom.
inline Interval paired_difference(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size() || a.size() < 2) throw std::invalid_argument("a paired difference needs two or more pairs");
  std::vector<double> differences;
  for (std::size_t k = 0; k < a.size(); ++k) differences.push_back(a[k] - b[k]);
  return {mean(differences),
          t_quantile_975(a.size() - 1) * standard_deviation(differences) / std::sqrt(double(a.size()))};
}

}  // namespace demo
