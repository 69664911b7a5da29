// The golden case files of tools/case_file.hpp on inputs written here: records that the format
// allows once, NaN in a computed trajectory, what the case-file fuzzer checks
// (fuzz/case_file_check.hpp) on its seeds and on inputs it must flag or pass, and the set lines
// of version 2.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "case_file.hpp"
#include "case_file_check.hpp"

namespace {

multopt::golden::Case read(const std::string& text) {
  std::istringstream in(text);
  return multopt::golden::read_case(in);
}

const std::string header = "name tiny\nbase sgd\nrule additive\nhyper lr 0.1\n";

// n 5 between the records would let a 5-element grad line into a replay sized by the 3-element
// init line (a heap overflow before the fix); the last n 3 would pass the final check.
const std::string n_again =
    header + "n 3\nsteps 1\ninit 1 2 3\nstep 1\nn 5\ngrad 1 1 1 1 1\nparam 1 1 1 1 1\nn 3\n";

std::string contents(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("a case file that gives n or steps a second time is refused, naming both lines", "[case_file]") {
  using Catch::Matchers::Contains;
  CHECK_THROWS_AS(read(n_again), std::runtime_error);
  CHECK_THROWS_WITH(read(n_again), Contains("case file line 9: n is given a second time (line 5 gave it)"));

  const std::string steps_again = header + "n 1\nsteps 1\ninit 1\nsteps 2\nstep 1\ngrad 1\nparam 0.9\n";
  CHECK_THROWS_WITH(read(steps_again), Contains("case file line 8: steps is given a second time (line 6 gave it)"));

  // The same value again is refused too: the format gives each once.
  CHECK_THROWS_WITH(read(header + "n 1\nn 1\nsteps 0\ninit 1\n"),
                    Contains("case file line 6: n is given a second time (line 5 gave it)"));
  // Given once each, anywhere before the rows, they are read.
  const auto c = read(header + "steps 1\nn 2\ninit 1 2\nstep 1\ngrad 1 1\nparam 0.9 1.9\n");
  CHECK(c.init == std::vector<double>{1, 2});
  CHECK(c.grads == std::vector<std::vector<double>>{{1, 1}});
}

TEST_CASE("max_relative_error is NaN when any computed value is NaN, wherever it is", "[case_file]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<std::vector<double>> reference{{1.0, 2.0, 3.0}, {0.5, 1.5, 2.5}};
  CHECK(multopt::golden::max_relative_error(reference, reference) == 0.0);
  for (std::size_t t = 0; t < 2; ++t) {
    for (std::size_t i = 0; i < 3; ++i) {
      auto computed = reference;
      computed[t][i] = nan;
      INFO("NaN at step " << t << " element " << i);
      CHECK(std::isnan(multopt::golden::max_relative_error(computed, reference)));
    }
  }
  const std::vector<std::vector<double>> all_nan(2, std::vector<double>(3, nan));
  CHECK(std::isnan(multopt::golden::max_relative_error(all_nan, reference)));
  // Finite errors: the largest, |x − ref| / max(|ref|, 1e-3).
  const std::vector<std::vector<double>> off{{1.0, 2.2, 3.0}, {0.5, 1.5, 2.5}};
  CHECK(multopt::golden::max_relative_error(off, reference) == Approx(0.1).epsilon(1e-12));
  const std::vector<std::vector<double>> tiny_ref{{0.0}}, tiny{{1e-4}};
  CHECK(multopt::golden::max_relative_error(tiny, tiny_ref) == Approx(0.1).epsilon(1e-12));
}

TEST_CASE("the case-file fuzzer's check passes its seeds and well-formed cases, and flags none it should not",
          "[case_file][fuzz]") {
  for (const char* seed : {"adagrad_hybrid_0", "adam_exponential_0", "rmsprop_multiplicative_0", "sgd_multiplicative_0",
                           "sgd_multiplicative_changes"}) {
    const std::string bytes = contents(std::string(MULTOPT_TEST_DATA "/../../fuzz/corpus/case_file/") + seed + ".case");
    INFO(seed);
    REQUIRE(bytes.size() > 1000);
    CHECK(multopt::fuzz::case_file_problem(bytes) == "");
  }
  // Refused by read_case (before the fix: accepted with a grad row longer than init, the
  // check's first finding).
  CHECK(multopt::fuzz::case_file_problem(n_again) == "");
  // No name line: written back without one (before the fix: "name" alone, which read_case refuses).
  CHECK(multopt::fuzz::case_file_problem("base sgd\nrule additive\nn 1\nsteps 1\ninit 1\nstep 1\ngrad 1\nparam 0\n") ==
        "");
  // Non-finite values, an empty tensor, a refused setting.
  CHECK(multopt::fuzz::case_file_problem(header + "n 2\nsteps 1\ninit inf -0\nstep 1\ngrad nan 1\nparam 0 0\n") == "");
  CHECK(multopt::fuzz::case_file_problem(header + "n 0\nsteps 2\ninit\nstep 1\ngrad\nparam\nstep 2\ngrad\nparam\n") ==
        "");
  CHECK(multopt::fuzz::case_file_problem("base sgd\nrule additive\nhyper lr -1\nn 1\nsteps 0\ninit 1\n") == "");
}

TEST_CASE("write_case writes a case without a name line that reads back", "[case_file]") {
  const auto c = read("base adam\nrule multiplicative\nn 2\nsteps 1\ninit 1 -2\nstep 1\ngrad 0.5 0.25\nparam 0 0\n");
  CHECK(c.name.empty());
  const auto trajectory = multopt::golden::replay<double>(c);
  std::stringstream written;
  multopt::golden::write_case(written, c, trajectory);
  CHECK(written.str().find("name") == std::string::npos);
  const auto again = multopt::golden::read_case(written);
  CHECK(again.name.empty());
  CHECK(again.base == "adam");
  CHECK(again.init == c.init);
  CHECK(again.grads == c.grads);
  CHECK(again.params == trajectory);
}

TEST_CASE("version-2 set lines are read per step with their line, and only inside a step", "[case_file]") {
  using Catch::Matchers::Contains;
  const auto c = read("# multopt golden case v2\n" + header +
                      "n 1\nsteps 3\ninit 1\nstep 1\ngrad 1\nparam 0.9\nstep 2\nset lr 0.5\nset lr_factor 2.0\n"
                      "grad 1\nparam -0.1\nstep 3\nset g 1e-3\ngrad 1\nparam -1.1\n");
  REQUIRE(c.sets.size() == 3);
  CHECK(c.sets[0].empty());
  REQUIRE(c.sets[1].size() == 2);
  CHECK(c.sets[1][0].name == "lr");
  CHECK(c.sets[1][0].value == 0.5);
  CHECK(c.sets[1][0].line == 13);
  CHECK(c.sets[1][1].name == "lr_factor");
  CHECK(c.sets[1][1].value == 2.0);
  REQUIRE(c.sets[2].size() == 1);
  CHECK(c.sets[2][0].value == 1e-3);
  CHECK(c.sets[2][0].line == 18);

  const std::string rows = header + "n 1\nsteps 1\ninit 1\n";
  CHECK_THROWS_WITH(read(rows + "set lr 0.5\nstep 1\ngrad 1\nparam 0.9\n"),
                    Contains("case file line 8: set line outside a step"));
  CHECK_THROWS_WITH(read(rows + "step 1\ngrad 1\nset lr 0.5\nparam 0.9\n"),
                    Contains("case file line 10: set line outside a step"));
  CHECK_THROWS_WITH(read(rows + "step 1\nset lr fast\ngrad 1\nparam 0.9\n"),
                    Contains("case file line 9: set lr has 'fast', which is not a number"));
  CHECK_THROWS_WITH(read(rows + "step 1\nset lr\ngrad 1\nparam 0.9\n"),
                    Contains("case file line 9: set takes a name and a value"));
}

TEST_CASE("replay applies a step's set lines before that step", "[case_file]") {
  // SGD without momentum: θ ← θ − lr_factor·lr·clip·g, the clip min(1, c / (‖g‖ + 1e-6)).
  const auto c = read(header +
                      "n 2\nsteps 4\ninit 1 2\nstep 1\ngrad 1 1\nparam 0 0\nstep 2\nset lr 0.5\ngrad 1 1\nparam 0 0\n"
                      "step 3\nset lr_factor 2\ngrad 1 1\nparam 0 0\nstep 4\nset max_grad_norm 1\ngrad 3 4\nparam 0 0\n");
  const auto trajectory = multopt::golden::replay<double>(c);
  REQUIRE(trajectory.size() == 4);
  CHECK(trajectory[0][0] == Approx(0.9).epsilon(1e-15));
  CHECK(trajectory[1][0] == Approx(0.4).epsilon(1e-15));
  CHECK(trajectory[2][0] == Approx(-0.6).epsilon(1e-15));
  const double clip = 1.0 / (5.0 + 1e-6);
  CHECK(trajectory[3][0] == Approx(-0.6 - 3 * clip).epsilon(1e-15));
  CHECK(trajectory[3][1] == Approx(trajectory[2][1] - 4 * clip).epsilon(1e-15));

  // A set line the optimizer refuses is named by its line.
  const auto refused = read(header + "n 1\nsteps 1\ninit 1\nstep 1\nset lr -1\ngrad 1\nparam 0\n");
  CHECK_THROWS_AS(multopt::golden::replay<float>(refused), std::runtime_error);
  CHECK_THROWS_WITH(multopt::golden::replay<float>(refused),
                    Catch::Matchers::StartsWith("case file line 9: set lr: multopt: lr = -1 is invalid"));
  const auto unknown = read(header + "n 1\nsteps 1\ninit 1\nstep 1\nset beta1 0.5\ngrad 1\nparam 0\n");
  CHECK_THROWS_WITH(multopt::golden::replay<double>(unknown),
                    Catch::Matchers::StartsWith("case file line 9: set beta1: multopt:"));
}

TEST_CASE("write_case writes version 2, set lines included, where a case needs it", "[case_file]") {
  const auto write = [](const multopt::golden::Case& c) {
    std::stringstream out;
    multopt::golden::write_case(out, c, multopt::golden::replay<double>(c));
    return out.str();
  };
  const std::string rows = "n 1\nsteps 2\ninit 1\nstep 1\ngrad 1\nparam 0.9\nstep 2\n";
  const auto with_sets = read(header + rows + "set lr 0.25\nset lr_factor 0.5\ngrad 1\nparam 0.775\n");
  const std::string written = write(with_sets);
  CHECK(written.rfind("# multopt golden case v2\n", 0) == 0);
  CHECK(written.find("step 2\nset lr 0.25\nset lr_factor 0.5\ngrad 1\n") != std::string::npos);
  const auto again = read(written);
  REQUIRE(again.sets.size() == 2);
  REQUIRE(again.sets[1].size() == 2);
  CHECK(again.sets[1][0].name == "lr");
  CHECK(again.sets[1][1].value == 0.5);
  CHECK(multopt::golden::max_relative_error(multopt::golden::replay<double>(again), again.params) == 0.0);

  CHECK(write(read(header + rows + "grad 1\nparam 0.8\n")).rfind("# multopt golden case v1\n", 0) == 0);
  const auto v2_hyper = read("base sgd\nrule additive\nhyper maximize 1\n" + rows + "grad 1\nparam 1.2\n");
  CHECK(write(v2_hyper).rfind("# multopt golden case v2\n", 0) == 0);
}
