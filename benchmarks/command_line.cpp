// The command line of multopt_bench: flags and environment read into a CommandLine, and the
// display reporter they choose.
#include "command_line.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#define MULTOPT_BENCH_ISATTY
#endif

namespace multopt_bench {

namespace {

int all_cores() {
#ifdef _OPENMP
  return omp_get_num_procs();
#else
  return std::max(1, int(std::thread::hardware_concurrency()));
#endif
}

// "N", "all" or "0" (every core); -1 when it is none of these.
int parse_threads(const std::string& text) {
  if (text == "all" || text == "0") return all_cores();
  char* end = nullptr;
  const long value = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || value < 1 || value > 4096) return -1;
  return int(value);
}

// The value of the last --name=value among args, or fallback.
std::string flag(const std::vector<std::string>& args, const std::string& name, const std::string& fallback) {
  std::string value = fallback;
  const std::string prefix = "--" + name + "=";
  for (const std::string& a : args)
    if (a.compare(0, prefix.size(), prefix) == 0) value = a.substr(prefix.size());
  return value;
}

bool truthy(const std::string& s) { return s == "true" || s == "yes" || s == "1" || s == "on"; }

}  // namespace

bool parse_command_line(int argc, char** argv, CommandLine& line) {
  std::string threads_text;
  if (const char* env = std::getenv("MULTOPT_THREADS")) threads_text = env;
  // Defaults, before the flags given (the last occurrence of a flag wins). Repetitions run in
  // random order, so that a drift of the machine's memory bandwidth during the run (other
  // tenants) spreads over every benchmark instead of biasing the ratios of the summary.
  line.args = {argv[0], "--benchmark_repetitions=5", "--benchmark_report_aggregates_only=true",
               "--benchmark_enable_random_interleaving=true"};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.compare(0, 10, "--threads=") == 0) {
      threads_text = a.substr(10);
    } else if (a == "--threads" && i + 1 < argc) {
      threads_text = argv[++i];
    } else {
      line.args.push_back(a);
    }
  }
  line.threads = 1;
  if (!threads_text.empty()) {
    line.threads = parse_threads(threads_text);
    if (line.threads < 0) {
      std::fprintf(stderr, "multopt_bench: threads must be a positive number or 'all', not '%s'\n",
                   threads_text.c_str());
      return false;
    }
  }
#ifndef _OPENMP
  if (line.threads > 1) {
    std::fprintf(stderr, "multopt_bench: built without OpenMP, running on 1 thread\n");
    line.threads = 1;
  }
#endif
  return true;
}

void print_help() {
  benchmark::PrintDefaultHelp();
  std::fprintf(stdout,
               "multopt_bench:\n"
               "  [--threads=N|all]   threads of the step and of the traffic loop (default: the\n"
               "                      environment variable MULTOPT_THREADS, else 1)\n"
               "  defaults added before the flags given: --benchmark_repetitions=5\n"
               "  --benchmark_report_aggregates_only=true --benchmark_enable_random_interleaving=true\n");
}

bool console_format(const std::vector<std::string>& args) {
  return flag(args, "benchmark_format", "console") == "console";
}

std::unique_ptr<benchmark::BenchmarkReporter> display_reporter(const std::vector<std::string>& args) {
  const std::string format = flag(args, "benchmark_format", "console");
  if (format == "json") return std::make_unique<benchmark::JSONReporter>();
  if (format != "console") return nullptr;
  const std::string color = flag(args, "benchmark_color", "auto");
  bool use_color = truthy(color);
#ifdef MULTOPT_BENCH_ISATTY
  if (color == "auto") use_color = isatty(STDOUT_FILENO) != 0;
#endif
  const bool tabular = truthy(flag(args, "benchmark_counters_tabular", "false"));
  using Console = benchmark::ConsoleReporter;
  return std::make_unique<Console>(
      Console::OutputOptions((use_color ? Console::OO_Color : 0) | (tabular ? Console::OO_Tabular : 0)));
}

}  // namespace multopt_bench
