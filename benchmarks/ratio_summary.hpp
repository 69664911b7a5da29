// The ratio summary of multopt_bench: a reporter that keeps each benchmark's median while the
// display reporter prints, and the ratios of those medians printed with their targets after the
// run (docs/performance.md, "The ratio summary").
#pragma once

#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

namespace multopt_bench {

using Results = std::map<std::string, double>;  // benchmark name -> median ns per element

// Passes every report to the display reporter and keeps each benchmark's median ns_per_elem
// (the "median" aggregate, or the median of the repetitions when there is no aggregate).
class SummaryReporter final : public benchmark::BenchmarkReporter {
 public:
  explicit SummaryReporter(std::unique_ptr<benchmark::BenchmarkReporter> display);

  bool ReportContext(const Context& context) override;
  void ReportRuns(const std::vector<Run>& runs) override;
  void Finalize() override;

  Results results() const;

 private:
  std::unique_ptr<benchmark::BenchmarkReporter> display_;
  Results medians_;
  std::map<std::string, std::vector<double>> samples_;
};

// Prints the ratios of the pairs of which both sides are in results, with their targets and
// a count of those passed and missed.
void print_summary(const Results& results, int threads, std::ostream& out);

}  // namespace multopt_bench
