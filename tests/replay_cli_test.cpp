// The multopt_replay tool as a user runs it (path from MULTOPT_REPLAY_TOOL): its report lines
// and exit status on golden, tampered and malformed case files; --emit output that replays with
// zero error; and cases the golden set lacks, written from the independent long-double model
// of reference_model.hpp.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "reference_model.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

// A scratch directory of its own for each test case, removed afterwards.
struct Scratch {
  fs::path dir;
  explicit Scratch(const std::string& name)
      : dir(fs::temp_directory_path() / ("multopt_replay_test_" + std::to_string(::getpid()) + "_" + name)) {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~Scratch() { fs::remove_all(dir); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  std::string write(const std::string& file, const std::string& text) const {
    const fs::path path = dir / file;
    std::ofstream(path) << text;
    return path.string();
  }
};

struct Result {
  int status = -1;  // the exit status; -1 if the tool did not exit normally (a crash)
  std::vector<std::string> lines;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Runs the tool with `args` (each quoted), stdout and stderr into one file.
Result replay(const Scratch& scratch, const std::vector<std::string>& args) {
  const std::string out = (scratch.dir / "tool_output.txt").string();
  std::string command = "'" MULTOPT_REPLAY_TOOL "'";
  for (const auto& arg : args) command += " '" + arg + "'";
  command += " > '" + out + "' 2>&1";
  const int raw = std::system(command.c_str());
  Result result;
  if (raw != -1 && WIFEXITED(raw)) result.status = WEXITSTATUS(raw);
  result.lines = split_lines(read_file(out));
  return result;
}

std::string golden(const std::string& name) { return std::string(MULTOPT_TEST_DATA) + "/" + name + ".case"; }

struct Report {
  std::string verdict, name;
  double max_rel_err;
};

// Parses `PASS|FAIL <name> max_rel_err=<x>`; REQUIREs the format.
Report parse_report(const std::string& line) {
  static const std::regex format(R"(^(PASS|FAIL) (\S+) max_rel_err=(\S+)$)");
  std::smatch m;
  INFO("line: " << line);
  REQUIRE(std::regex_match(line, m, format));
  return {m[1], m[2], std::stod(m[3])};
}

std::string summary(int passed, int failed) {
  return std::to_string(passed) + " passed, " + std::to_string(failed) + " failed";
}

std::string format17(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", value);
  return text;
}

// The numbers of a record line ("grad 1 2 3" → {"1", "2", "3"}).
std::vector<std::string> words_after_key(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> words;
  std::string word;
  in >> word;  // the key
  while (in >> word) words.push_back(word);
  return words;
}

std::vector<std::string> lines_with_key(const std::vector<std::string>& lines, const std::string& key) {
  std::vector<std::string> found;
  for (const auto& line : lines)
    if (line.compare(0, key.size() + 1, key + " ") == 0) found.push_back(line);
  return found;
}

}  // namespace

TEST_CASE("replay reports PASS <name> max_rel_err=<x> for each golden case, then the counts", "[replay]") {
  Scratch scratch("golden");
  const std::vector<std::string> names = {"adam_hybrid_1", "sgd_multiplicative_tanhmomentum", "rmsprop_additive_3"};
  std::vector<std::string> files;
  for (const auto& name : names) files.push_back(golden(name));
  for (const bool in_float : {false, true}) {
    auto args = files;
    if (in_float) args.insert(args.begin(), "--float");
    const Result result = replay(scratch, args);
    INFO((in_float ? "float" : "double"));
    REQUIRE(result.lines.size() == names.size() + 1);
    for (std::size_t k = 0; k < names.size(); ++k) {
      const Report report = parse_report(result.lines[k]);
      CHECK(report.verdict == "PASS");
      CHECK(report.name == names[k]);
      CHECK(report.max_rel_err <= (in_float ? 5e-4 : 1e-12));
    }
    CHECK(result.lines.back() == summary(3, 0));
    CHECK(result.status == 0);
  }
}

TEST_CASE("replay fails a case whose param value was changed by 1e-6, reports that error and exits 1", "[replay]") {
  Scratch scratch("tampered");
  auto lines = split_lines(read_file(golden("sgd_multiplicative_1")));
  // Scale the 5th value of the last param line, a value of order 1, by 1 + 1e-6.
  std::size_t last_param = 0;
  for (std::size_t k = 0; k < lines.size(); ++k)
    if (lines[k].compare(0, 6, "param ") == 0) last_param = k;
  auto values = words_after_key(lines[last_param]);
  REQUIRE(std::abs(std::stod(values[4])) > 0.1);
  values[4] = format17(std::stod(values[4]) * (1 + 1e-6));
  lines[last_param] = "param";
  for (const auto& v : values) lines[last_param] += " " + v;
  std::string text;
  for (const auto& line : lines) text += line + "\n";
  const std::string tampered = scratch.write("tampered.case", text);

  const Result result = replay(scratch, {tampered, golden("adagrad_hybrid_1")});
  REQUIRE(result.lines.size() == 3);
  const Report failed = parse_report(result.lines[0]);
  CHECK(failed.verdict == "FAIL");
  CHECK(failed.name == "sgd_multiplicative_1");
  CHECK(failed.max_rel_err == Approx(1e-6).epsilon(0.01));
  CHECK(parse_report(result.lines[1]).verdict == "PASS");
  CHECK(result.lines[2] == summary(1, 1));
  CHECK(result.status == 1);
}

TEST_CASE("multopt_replay --emit writes 17-digit init, grad and param lines that replay with max_rel_err=0", "[replay]") {
  Scratch scratch("emit");
  for (const std::string name : {"adam_exponential_0", "rmsprop_hybrid_3"}) {
    for (const bool in_float : {false, true}) {
      INFO(name << (in_float ? " in float" : " in double"));
      std::vector<std::string> args = {"--emit", golden(name)};
      if (in_float) args.insert(args.begin(), "--float");
      const Result emitted = replay(scratch, args);
      REQUIRE(emitted.status == 0);
      const auto original = split_lines(read_file(golden(name)));

      // Inputs are copied through unchanged (the golden files are written with %.17g too).
      CHECK(lines_with_key(emitted.lines, "init") == lines_with_key(original, "init"));
      CHECK(lines_with_key(emitted.lines, "grad") == lines_with_key(original, "grad"));
      const auto params = lines_with_key(emitted.lines, "param");
      REQUIRE(params.size() == lines_with_key(original, "param").size());
      // Every computed value in its shortest %.17g form: 17 significant digits, exact round trip.
      std::size_t not_17_digits = 0;
      for (const auto& line : params)
        for (const auto& word : words_after_key(line)) not_17_digits += format17(std::stod(word)) != word;
      CHECK(not_17_digits == 0);

      const std::string file = scratch.write(name + ".case", [&] {
        std::string text;
        for (const auto& line : emitted.lines) text += line + "\n";
        return text;
      }());
      auto again_args = std::vector<std::string>{file};
      if (in_float) again_args.insert(again_args.begin(), "--float");
      const Result again = replay(scratch, again_args);
      REQUIRE(again.lines.size() == 2);
      const Report report = parse_report(again.lines[0]);
      CHECK(report.verdict == "PASS");
      CHECK(report.name == name);
      CHECK(again.lines[0] == "PASS " + name + " max_rel_err=0");
      CHECK(again.status == 0);
    }
  }
}

namespace {

struct UnseenCase {
  std::string name, base, rule;
  reference::Settings settings;
  std::size_t n;
  int steps;
};

// A case file whose param lines come from the independent model, not from multopt.
std::string model_case(const UnseenCase& c, unsigned seed) {
  std::mt19937 rng(seed);
  auto init = test::uniform<double>(rng, c.n, -2.0, 2.0);
  if (c.n > 3) init[2] = 0.0;  // a zero, which multiplicative rules keep
  auto row = [](const char* key, const std::vector<double>& values) {
    std::string line = key;
    for (const double v : values) line += " " + format17(v);
    return line + "\n";
  };
  std::string text = "# written by replay_cli_test from reference_model.hpp\nname " + c.name + "\nbase " + c.base +
                     "\nrule " + c.rule + "\n";
  for (const auto& [name, value] : c.settings) text += "hyper " + name + " " + value + "\n";
  text += "n " + std::to_string(c.n) + "\nsteps " + std::to_string(c.steps) + "\n" + row("init", init);
  reference::Model model(c.base, c.rule, c.settings, init);
  for (int t = 1; t <= c.steps; ++t) {
    const auto grad = test::uniform<double>(rng, c.n, -1.0, 1.0);
    model.step(grad);
    text += "step " + std::to_string(t) + "\n" + row("grad", grad) + row("param", model.theta_as_double());
  }
  return text;
}

}  // namespace

TEST_CASE("replay passes cases the golden set lacks, computed by the independent long-double model", "[replay]") {
  Scratch scratch("unseen");
  const std::vector<UnseenCase> cases = {
      {"adagrad_exponential_n1_steps1", "adagrad", "exponential",
       {{"lr_decay", "0.1"}, {"initial_accumulator_value", "0.2"}, {"weight_decay", "0.05"}, {"lr_in", "2"},
        {"lr_out", "0.02"}},
       1, 1},
      {"rmsprop_exponential_n100_steps50", "rmsprop", "exponential",
       {{"alpha", "0.9"}, {"eps", "1e-6"}, {"lr_in", "0.5"}, {"lr_out", "0.01"}}, 100, 50},
      {"sgd_multiplicative_nesterov_decay_n100_steps1", "sgd", "multiplicative",
       {{"momentum", "0.9"}, {"nesterov", "1"}, {"weight_decay", "0.03"}, {"lr_in", "1.5"}, {"lr_out", "0.02"}},
       100, 1},
      {"sgd_multiplicative_nesterov_decay_n37_steps50", "sgd", "multiplicative",
       {{"momentum", "0.9"}, {"nesterov", "1"}, {"weight_decay", "0.03"}, {"lr_in", "1.5"}, {"lr_out", "0.02"}},
       37, 50},
      {"rmsprop_hybrid_centered_momentum_n1_steps50", "rmsprop", "hybrid",
       {{"alpha", "0.95"}, {"centered", "1"}, {"momentum", "0.6"}, {"lr_in", "1"}, {"lr_out", "0.01"},
        {"lr", "0.005"}, {"g", "0.3"}},
       1, 50},
      {"rmsprop_hybrid_centered_momentum_n100_steps50", "rmsprop", "hybrid",
       {{"alpha", "0.95"}, {"centered", "1"}, {"momentum", "0.6"}, {"weight_decay", "0.01"}, {"lr_in", "1"},
        {"lr_out", "0.01"}, {"lr", "0.005"}, {"g", "0.3"}},
       100, 50},
      {"adam_hybrid_amsgrad_n19_steps50", "adam", "hybrid",
       {{"beta1", "0.85"}, {"beta2", "0.995"}, {"amsgrad", "1"}, {"lr_in", "1"}, {"lr_out", "0.01"},
        {"lr", "0.01"}, {"g", "0.7"}},
       19, 50},
      {"sgd_tanh_momentum_dampened_n19_steps50", "sgd", "multiplicative",
       {{"momentum_type", "tanh"}, {"momentum", "0.8"}, {"dampening", "0.2"}, {"lr_in", "1"}, {"lr_out", "0.01"}},
       19, 50},
      {"sgd_clip_n100_steps50", "sgd", "nonnegative_clip", {{"lr", "0.05"}, {"momentum", "0.5"}}, 100, 50},
  };
  std::vector<std::string> files;
  for (std::size_t k = 0; k < cases.size(); ++k)
    files.push_back(scratch.write(cases[k].name + ".case", model_case(cases[k], unsigned(k) + 100)));

  const Result result = replay(scratch, files);
  REQUIRE(result.lines.size() == cases.size() + 1);
  for (std::size_t k = 0; k < cases.size(); ++k) {
    const Report report = parse_report(result.lines[k]);
    INFO(result.lines[k]);
    CHECK(report.verdict == "PASS");
    CHECK(report.name == cases[k].name);
  }
  CHECK(result.lines.back() == summary(int(cases.size()), 0));
  CHECK(result.status == 0);
}

TEST_CASE("malformed case files give FAIL with a message naming the line, and exit 1, never a crash", "[replay]") {
  Scratch scratch("malformed");
  const std::vector<std::string> valid = {
      "name tiny", "base sgd", "rule additive", "hyper lr 0.1", "n 3", "steps 2", "init 1 2 3",
      "step 1",    "grad 1 1 1", "param 0.9 1.9 2.9", "step 2", "grad 1 1 1", "param 0.8 1.8 2.8"};
  struct Damage {
    std::string what;
    std::size_t line;         // 0-based index of the line changed, or of the line that reveals it
    std::string replacement;  // empty: delete the line
    std::string expected;     // in the message, beside "line <line + 1>"
  };
  const std::vector<Damage> damages = {
      {"missing n", 4, "", "n and steps"},  // the init line, now line 6, reveals it
      {"too few numbers", 8, "grad 1 1", "2 numbers, n is 3"},
      {"too many numbers", 6, "init 1 2 3 4", "4 numbers, n is 3"},
      {"a word for a number", 9, "param 0.9 abc 2.9", "'abc'"},
      {"a word for n", 4, "n three", "'three'"},
      {"an unknown record", 10, "bogus 1 2", "unknown record 'bogus'"},
      {"steps out of order", 10, "step 3", "numbered"},
      {"a fractional step count", 5, "steps 1.5", "whole number"},
      {"n given a second time", 7, "n 3", "n is given a second time (line 5 gave it)"},
      {"steps given a second time", 10, "steps 2", "steps is given a second time (line 6 gave it)"},
  };
  std::vector<std::string> files;
  std::vector<std::string> expected_line;
  for (const auto& damage : damages) {
    auto lines = valid;
    std::size_t reported = damage.line;
    if (damage.replacement.empty()) {
      lines.erase(lines.begin() + long(damage.line));
      reported = 5;  // "init", which comes before n
    } else {
      lines[damage.line] = damage.replacement;
    }
    std::string text;
    for (const auto& line : lines) text += line + "\n";
    files.push_back(scratch.write("damaged_" + std::to_string(files.size()) + ".case", text));
    expected_line.push_back("line " + std::to_string(reported + 1));
  }
  // Failures found only at the end of the file name no line; they must still fail cleanly.
  const std::vector<std::pair<std::string, std::string>> whole_files = {
      {"an empty file", ""},
      {"a missing last step", "name t\nbase sgd\nrule additive\nhyper lr 0.1\nn 1\nsteps 2\ninit 1\nstep 1\ngrad 1\n"
                              "param 0.9\n"},
      {"a grad line without its param line",
       "name t\nbase sgd\nrule additive\nhyper lr 0.1\nn 1\nsteps 1\ninit 1\nstep 1\ngrad 1\nparam 0.9\ngrad 1\n"},
      {"an invalid hyperparameter", "name t\nbase sgd\nrule additive\nhyper lr -1\nn 1\nsteps 0\ninit 1\n"},
      {"a binary file", std::string("\x7f" "ELF\x01\x00\xff\xfe garbage", 16)},
  };
  for (const auto& whole : whole_files)
    files.push_back(scratch.write("whole_" + std::to_string(files.size()) + ".case", whole.second));
  files.push_back((scratch.dir / "does_not_exist.case").string());

  const Result result = replay(scratch, files);
  REQUIRE(result.lines.size() == files.size() + 1);
  for (std::size_t k = 0; k < files.size(); ++k) {
    const std::size_t whole = k - damages.size();
    INFO((k < damages.size() ? damages[k].what
                             : whole < whole_files.size() ? whole_files[whole].first : "a missing file")
         << ": " << result.lines[k]);
    CHECK_THAT(result.lines[k], StartsWith("FAIL " + files[k] + " error: "));
    if (k < damages.size())
      CHECK_THAT(result.lines[k], Contains(expected_line[k] + ":") && Contains(damages[k].expected));
  }
  CHECK_THAT(result.lines[files.size() - 1], Contains("cannot open"));
  CHECK(result.lines.back() == summary(0, int(files.size())));
  CHECK(result.status == 1);
  // Each file alone fails the same way.
  for (const auto& file : files) {
    const Result alone = replay(scratch, {file});
    INFO(file);
    CHECK(alone.status == 1);
    CHECK(alone.lines.back() == summary(0, 1));
  }
}

TEST_CASE("replay without case files or with an unknown option prints its usage and exits 2", "[replay]") {
  Scratch scratch("usage");
  for (const auto& args : {std::vector<std::string>{}, std::vector<std::string>{"--bogus", golden("sgd_additive_0")}}) {
    const Result result = replay(scratch, args);
    CHECK(result.status == 2);
    REQUIRE_FALSE(result.lines.empty());
    CHECK_THAT(result.lines.front(), StartsWith("usage: multopt_replay"));
  }
}

TEST_CASE("replay refuses a case file that changes n between its records, before replaying it", "[replay]") {
  Scratch scratch("n_changed");
  // Rows checked against n 5, then n 3 again for the final check of init: before the fix the
  // replay copied the 5-element grad row into its 3-element buffer.
  const std::string file = scratch.write(
      "n_changed.case", "name n_changed\nbase sgd\nrule additive\nhyper lr 0.1\nn 3\nsteps 1\ninit 1 2 3\nstep 1\n"
                        "n 5\ngrad 1 1 1 1 1\nparam 0.9 1.9 2.9 -0.1 -0.1\nn 3\n");
  const Result result = replay(scratch, {file});
  REQUIRE(result.lines.size() == 2);
  CHECK(result.lines[0] ==
        "FAIL " + file + " error: case file line 9: n is given a second time (line 5 gave it)");
  CHECK(result.lines[1] == summary(0, 1));
  CHECK(result.status == 1);
}

TEST_CASE("replay fails a case whose computed trajectory has a NaN where the reference is finite", "[replay]") {
  Scratch scratch("nan");
  // A NaN gradient element makes that parameter NaN from step 1 on; the other elements match.
  const std::string file = scratch.write(
      "nan.case", "name nan_grad\nbase sgd\nrule additive\nhyper lr 0.1\nn 3\nsteps 2\ninit 1 2 3\n"
                  "step 1\ngrad nan 1 1\nparam 0.9 1.9 2.9\nstep 2\ngrad 1 1 1\nparam 0.8 1.8 2.8\n");
  for (const bool in_float : {false, true}) {
    INFO((in_float ? "float" : "double"));
    std::vector<std::string> args{file};
    if (in_float) args.insert(args.begin(), "--float");
    const Result result = replay(scratch, args);
    REQUIRE(result.lines.size() == 2);
    CHECK(result.lines[0] == "FAIL nan_grad max_rel_err=nan");
    CHECK(result.lines[1] == summary(0, 1));
    CHECK(result.status == 1);
  }
}

TEST_CASE("multopt_replay --emit writes a version-2 case with its set lines, which replays with max_rel_err=0",
          "[replay]") {
  Scratch scratch("emit_v2");
  const std::string name = "sgd_multiplicative_changes";
  const Result emitted = replay(scratch, {"--emit", golden("v2/" + name)});
  REQUIRE(emitted.status == 0);
  REQUIRE_FALSE(emitted.lines.empty());
  CHECK(emitted.lines.front() == "# multopt golden case v2");
  const auto original = split_lines(read_file(golden("v2/" + name)));
  const auto sets = lines_with_key(emitted.lines, "set"), original_sets = lines_with_key(original, "set");
  REQUIRE(sets.size() == original_sets.size());
  REQUIRE_FALSE(sets.empty());
  for (std::size_t k = 0; k < sets.size(); ++k) {
    INFO(sets[k] << " for " << original_sets[k]);
    std::istringstream a(sets[k]), b(original_sets[k]);
    std::string key_a, name_a, value_a, key_b, name_b, value_b;
    a >> key_a >> name_a >> value_a;
    b >> key_b >> name_b >> value_b;
    CHECK(name_a == name_b);
    CHECK(std::stod(value_a) == std::stod(value_b));
  }
  std::string text;
  for (const auto& line : emitted.lines) text += line + "\n";
  const Result again = replay(scratch, {scratch.write(name + ".case", text)});
  REQUIRE(again.lines.size() == 2);
  CHECK(again.lines[0] == "PASS " + name + " max_rel_err=0");
}
