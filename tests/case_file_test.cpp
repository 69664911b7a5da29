// The golden case files of tools/case_file.hpp on inputs written here: records that the format
// allows once.
#include <catch2/catch.hpp>

#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "case_file.hpp"

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
