// The benchmarks' sizes and names, shared by their registration (multopt_bench.cpp) and the
// ratio summary (ratio_summary.cpp), so that the pairs the summary compares are the ones run.
#pragma once

#include <cstddef>
#include <string>

namespace multopt_bench {

constexpr std::size_t kInCache = std::size_t(1) << 14;  // 7 float arrays: 448 KiB
constexpr std::size_t kLarge = std::size_t(1) << 24;    // 7 float arrays: 448 MiB
constexpr std::size_t kHuge = std::size_t(1) << 26;     // 7 double arrays: 3.5 GiB, beyond any L3
constexpr std::size_t kSingle = 1000000;                // BM_ManyTensors' single-tensor twin
constexpr std::size_t kManyCount = 1000, kManySize = 1000;

// "BM_Step/adam/multiplicative/float/16384" and the like: family/base/rule/scalar/n.
inline std::string step_name(const std::string& family, const std::string& base, const std::string& rule,
                             const std::string& scalar, std::size_t n) {
  return family + "/" + base + "/" + rule + "/" + scalar + "/" + std::to_string(n);
}

// The traffic yardstick: "BM_Traffic/float/16777216"; with `ema`, one more array,
// "BM_TrafficEma/float/16777216".
inline std::string traffic_name(bool ema, const std::string& scalar, std::size_t n) {
  return (ema ? "BM_TrafficEma/" : "BM_Traffic/") + scalar + "/" + std::to_string(n);
}
// The yardstick of a float step with bf16 state: "BM_TrafficState16/float/16777216".
inline std::string traffic_state16_name(std::size_t n) { return "BM_TrafficState16/float/" + std::to_string(n); }

// A 16-bit step's storage and gradient, for the scalar part of its name: "master-g32" (fp32
// gradients into master weights), "nearest-g16", ...; "bf16-master-g32" with the type.
inline std::string storage16_mode(const std::string& rounding, std::size_t gradient_bytes) {
  return rounding + "-g" + std::to_string(8 * gradient_bytes);
}
// The yardstick of base's 16-bit steps in that mode: "BM_Traffic16/adam/master-g32/16777216".
inline std::string traffic16_name(const std::string& base, const std::string& mode, std::size_t n) {
  return "BM_Traffic16/" + base + "/" + mode + "/" + std::to_string(n);
}

// A step of a table with a batch of rows, and its yardstick: "BM_Rows/adagrad/additive/float/16384"
// (the batch's row count), "BM_RowTraffic/float/16384".
inline std::string rows_name(const std::string& base, const std::string& rule, std::size_t batch) {
  return step_name("BM_Rows", base, rule, "float", batch);
}
inline std::string row_traffic_name(std::size_t batch) { return "BM_RowTraffic/float/" + std::to_string(batch); }

inline std::string many_tensors_name() {
  return "BM_ManyTensors/adam/multiplicative/float/" + std::to_string(kManyCount) + "x" +
         std::to_string(kManySize);
}

}  // namespace multopt_bench
