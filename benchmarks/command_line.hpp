// The command line of multopt_bench: the thread count (--threads, MULTOPT_THREADS), the Google
// Benchmark defaults added before the flags given, and the display reporter the flags ask for.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

namespace multopt_bench {

struct CommandLine {
  int threads = 1;
  // For benchmark::Initialize: the program's name, the defaults, then every flag given but --threads.
  std::vector<std::string> args;
};

// Reads argv and the environment into line; on an error prints it and returns false.
bool parse_command_line(int argc, char** argv, CommandLine& line);

// --help: Google Benchmark's flags and ours.
void print_help();

// The reporter that prints the results as --benchmark_format, --benchmark_color and
// --benchmark_counters_tabular among args ask; null for csv (deprecated: no summary then).
std::unique_ptr<benchmark::BenchmarkReporter> display_reporter(const std::vector<std::string>& args);

// Whether the display goes to the console (the summary follows it on stdout, else on stderr).
bool console_format(const std::vector<std::string>& args);

}  // namespace multopt_bench
