// The ratio summary of multopt_bench: which pairs of benchmarks it compares, against which
// targets, from the medians a SummaryReporter kept during the run.
#include "ratio_summary.hpp"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "names.hpp"

namespace multopt_bench {

SummaryReporter::SummaryReporter(std::unique_ptr<benchmark::BenchmarkReporter> display)
    : display_(std::move(display)) {}

bool SummaryReporter::ReportContext(const Context& context) { return display_->ReportContext(context); }

void SummaryReporter::ReportRuns(const std::vector<Run>& runs) {
  for (const Run& run : runs) {
    if (run.error_occurred) continue;
    const auto counter = run.counters.find("ns_per_elem");
    if (counter == run.counters.end()) continue;
    const std::string& name = run.run_name.function_name;
    if (run.run_type == Run::RT_Aggregate) {
      if (run.aggregate_name == "median") medians_[name] = counter->second.value;
    } else {
      samples_[name].push_back(counter->second.value);
    }
  }
  display_->ReportRuns(runs);
}

void SummaryReporter::Finalize() { display_->Finalize(); }

Results SummaryReporter::results() const {
  Results out = medians_;
  for (auto [name, values] : samples_) {
    if (out.count(name) || values.empty()) continue;
    std::sort(values.begin(), values.end());
    const std::size_t k = values.size();
    out[name] = k % 2 ? values[k / 2] : 0.5 * (values[k / 2 - 1] + values[k / 2]);
  }
  return out;
}

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts(1);
  for (char c : s) {
    if (c == sep) parts.emplace_back();
    else parts.back() += c;
  }
  return parts;
}

class Summary {
 public:
  Summary(const Results& results, std::ostream& out) : results_(results), out_(out) {}

  // A section's title and column header are printed with its first line, if any.
  void section(const std::string& title) {
    char header[256];
    std::snprintf(header, sizeof header, "  %-56s %-56s %8s  %-8s  %s\n", "benchmark", "compared with",
                  "ratio", "target", "status");
    pending_ = "\n" + title + "\n" + header;
  }

  // ratio = numerator / denominator of time per element, passing at most limit;
  // limit 0: shown for information only.
  void line(const std::string& num, const std::string& den, double limit) {
    const auto a = results_.find(num), b = results_.find(den);
    if (a == results_.end() || b == results_.end() || !(a->second > 0) || !(b->second > 0)) return;
    const double ratio = a->second / b->second;
    char text[320];
    if (limit > 0) {
      const bool pass = ratio <= limit;
      (pass ? passed_ : missed_) += 1;
      std::snprintf(text, sizeof text, "  %-56s %-56s %8.3f  <= %5.2f  %s\n", num.c_str(), den.c_str(),
                    ratio, limit, pass ? "PASS" : "MISS");
    } else {
      std::snprintf(text, sizeof text, "  %-56s %-56s %8.3f  %-8s  info\n", num.c_str(), den.c_str(), ratio, "");
    }
    out_ << pending_ << text;
    pending_.clear();
  }

  void print(int threads) {
    const std::string large = std::to_string(kLarge), in_cache = std::to_string(kInCache);
    out_ << "\n=== Ratio summary: medians of ns_per_elem from this run, threads = " << threads << " ===\n";

    section("Step / traffic yardstick (same scalar and n; targets: adam, adagrad, rmsprop at 2^24 float)");
    for_each_step([&](const std::vector<std::string>& p, const std::string& name) {
      const bool target_base = p[1] == "adam" || p[1] == "adagrad" || p[1] == "rmsprop";
      const bool target = target_base && p[3] == "float" && p[4] == large;
      line(name, traffic_name(false, p[3], std::stoul(p[4])), target ? 1.15 : 0);
    });

    section("16-bit step / BM_Traffic16 over the same arrays (same base, storage mode, gradient and n; "
            "target: 2^24 1.15)");
    for_each_step([&](const std::vector<std::string>& p, const std::string& name) {
      const std::size_t dash = p[3].find('-');
      const std::string type = p[3].substr(0, dash);
      if (dash == std::string::npos || (type != "bf16" && type != "fp16")) return;
      line(name, traffic16_name(p[1], p[3].substr(dash + 1), std::stoul(p[4])), p[4] == large ? 1.15 : 0);
    });

    section("Rule / additive rule of the same base (targets: float 2^24 1.10, 2^14 2.0; double 2^24 1.30, 2^14 2.5)");
    for_each_step([&](const std::vector<std::string>& p, const std::string& name) {
      if (p[2] == "additive") return;
      double limit = 0;
      if (p[4] == large && p[3] == "float") limit = 1.10;
      if (p[4] == in_cache && p[3] == "float") limit = 2.0;
      if (p[4] == large && p[3] == "double") limit = 1.30;
      if (p[4] == in_cache && p[3] == "double") limit = 2.5;
      line(name, step_name("BM_Step", p[1], "additive", p[3], std::stoul(p[4])), limit);
    });

    section("Speedup of the step over the naive Eigen port (naive time / step time)");
    for (const char* scalar : {"float", "double"})
      for (std::size_t n : {kInCache, kLarge}) {
        line(step_name("BM_Naive", "adam", "multiplicative", scalar, n),
             step_name("BM_Step", "adam", "multiplicative", scalar, n), 0);
      }

    section("Many tensors / one tensor of the same total size (target 1.3)");
    line(many_tensors_name(), step_name("BM_Step", "adam", "multiplicative", "float", kSingle), 1.3);

    section("Non-finite gradient check / unchecked step (NonFinitePolicy::skip; targets: float 2^14 1.05, 2^24 1.15)");
    for (std::size_t n : {kInCache, kLarge}) {
      line(adam_mult("BM_StepChecked", n), adam_mult("BM_Step", n), n == kLarge ? 1.15 : 1.05);
    }

    section("Clipping by the global norm / unclipped step (max_grad_norm active; with and without the "
            "non-finite check, which shares its pass; target: 2^24 float 1.20)");
    for (std::size_t n : {kInCache, kLarge}) {
      const double limit = n == kLarge ? 1.20 : 0;
      line(adam_mult("BM_StepClipped", n), adam_mult("BM_Step", n), limit);
      line(adam_mult("BM_StepClippedChecked", n), adam_mult("BM_Step", n), limit);
      line(adam_mult("BM_StepClippedChecked", n), adam_mult("BM_StepClipped", n), 0);
    }

    section("Weight EMA: step with ema_decay / the traffic loop that also moves the average (target: 2^24 "
            "1.15), and / the same step without");
    for (std::size_t n : {kInCache, kLarge})
      for (const char* rule : {"additive", "multiplicative"}) {
        const std::string averaged = step_name("BM_StepEma", "adam", rule, "float", n);
        line(averaged, traffic_name(true, "float", n), n == kLarge ? 1.15 : 0);
        line(averaged, step_name("BM_Step", "adam", rule, "float", n), 0);
      }

    section("Loss-scaled gradients (grad_scale 1024) / the same step unscaled (target: 2^24 float 1.05)");
    for (std::size_t n : {kInCache, kLarge}) line(adam_mult("BM_StepScaled", n), adam_mult("BM_Step", n), n == kLarge ? 1.05 : 0);

    section("16-bit state: float step with bf16 state / its traffic loop (target: 2^24 1.15), and / the same "
            "step with fp32 state (target: 2^24 below 1)");
    for (std::size_t n : {kInCache, kLarge})
      for (const char* rule : {"additive", "multiplicative"}) {
        const std::string narrow = step_name("BM_StepState16", "adam", rule, "float", n);
        line(narrow, traffic_state16_name(n), n == kLarge ? 1.15 : 0);
        line(narrow, step_name("BM_Step", "adam", rule, "float", n), n == kLarge ? 0.999 : 0);
      }

    section("Sparse rows: a table's step with a batch of rows / the traffic loop over the same rows (target: 1.3)");
    for (const auto& [name, value] : results_) {
      const std::vector<std::string> p = split(name, '/');
      if (p.size() == 5 && p[0] == "BM_Rows") line(name, row_traffic_name(std::stoul(p[4])), 1.3);
    }

    out_ << "\nTargets: " << passed_ << " PASS, " << missed_ << " MISS (of those measured in this run)\n";
  }

 private:
  static std::string adam_mult(const std::string& family, std::size_t n) {
    return step_name(family, "adam", "multiplicative", "float", n);
  }

  template <class F>
  void for_each_step(F&& f) {
    for (const auto& [name, value] : results_) {
      const std::vector<std::string> p = split(name, '/');
      if (p.size() == 5 && p[0] == "BM_Step") f(p, name);
    }
  }

  const Results& results_;
  std::ostream& out_;
  std::string pending_;
  int passed_ = 0, missed_ = 0;
};

}  // namespace

void print_summary(const Results& results, int threads, std::ostream& out) {
  Summary summary(results, out);
  summary.print(threads);
}

}  // namespace multopt_bench
