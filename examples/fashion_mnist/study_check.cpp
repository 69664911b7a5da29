// Checks the files that `fashion_mnist --study` and `cnn_study` write, for the tests
// demo.digits.study_csv and cnn.digits.study_csv: the columns docs/study.md promises, one row
// per run of the grid, one loss row per epoch trained, and every value a number in its range.
// Not the results: those are the study's.
// usage: study_check DIR RUNS EPOCHS [ARCHITECTURE_COLUMN=VALUE,VALUE...]
// (the architecture column and its values: hidden_layers=1,3 unless given)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

// A column's values: numbers within [low, high], whole numbers if `integer`, and one of
// `allowed` where that is not empty (compared to a relative 1e-5: 0.333333 is 1/3).
struct Column {
  const char* name;
  double low, high;
  bool integer;
  std::vector<double> allowed;
};

int errors = 0;

void fail(const std::string& message) {
  if (++errors <= 20) std::fprintf(stderr, "study_check: %s\n", message.c_str());
}

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> fields;
  std::istringstream text(line);
  std::string field;
  while (std::getline(text, field, ',')) fields.push_back(field);
  if (!line.empty() && line.back() == ',') fields.emplace_back();
  return fields;
}

Table read_csv(const std::string& path) {
  std::ifstream file(path);
  if (!file) {
    fail("cannot read " + path);
    return {};
  }
  Table table;
  std::string line;
  if (std::getline(file, line)) table.header = split(line);
  while (std::getline(file, line)) table.rows.push_back(split(line));
  return table;
}

std::size_t find_column(const Table& table, const std::string& name, const std::string& path) {
  for (std::size_t k = 0; k < table.header.size(); ++k) {
    if (table.header[k] == name) return k;
  }
  fail(path + " has no column " + name);
  return table.header.size();
}

bool parse_number(const std::string& text, double& value) {
  char* end = nullptr;
  value = std::strtod(text.c_str(), &end);
  return !text.empty() && *end == '\0' && std::isfinite(value);
}

// Checks every row's field count and every listed column; returns the rows' values by column.
std::map<std::string, std::vector<double>> check_columns(const Table& table, const std::vector<Column>& columns,
                                                         const std::string& path) {
  static const std::set<std::string> optimizers{"SGD",     "MSGD",     "HSGD",     "Adam",
                                                "MAdam",   "HAdam",    "Adagrad",  "MAdagrad",
                                                "HAdagrad", "RMSprop", "MRMSprop", "HRMSprop"};
  std::map<std::string, std::vector<double>> values;
  const std::size_t name_column = find_column(table, "optimizer", path);
  for (std::size_t r = 0; r < table.rows.size(); ++r) {
    const std::vector<std::string>& row = table.rows[r];
    const std::string where = path + " row " + std::to_string(r + 2);
    if (row.size() != table.header.size()) {
      fail(where + ": " + std::to_string(row.size()) + " fields, the header has " +
           std::to_string(table.header.size()));
      continue;
    }
    if (name_column < row.size() && !optimizers.count(row[name_column]))
      fail(where + ": '" + row[name_column] + "' is not one of the twelve optimizers");
    for (const Column& column : columns) {
      const std::size_t k = find_column(table, column.name, path);
      if (k >= row.size()) continue;
      double value = 0.0;
      bool ok = parse_number(row[k], value) && value >= column.low && value <= column.high &&
                (!column.integer || value == std::floor(value));
      if (ok && !column.allowed.empty()) {
        ok = false;
        for (double allowed : column.allowed) ok = ok || std::fabs(value - allowed) <= 1e-5 * allowed;
      }
      if (!ok) fail(where + ": " + column.name + " '" + row[k] + "' is not a number in its range");
      values[column.name].push_back(value);
    }
  }
  return values;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) {
    std::fprintf(stderr, "usage: study_check DIR RUNS EPOCHS [ARCHITECTURE_COLUMN=VALUE,VALUE...]\n");
    return 2;
  }
  const std::string architecture = argc == 5 ? argv[4] : "hidden_layers=1,3";
  const std::size_t equals = architecture.find('=');
  std::vector<double> architectures;
  double widest = 0.0;
  for (const std::string& value : split(architecture.substr(equals == std::string::npos ? 0 : equals + 1))) {
    double number = 0.0;
    if (equals == std::string::npos || !parse_number(value, number) || number < 1) {
      std::fprintf(stderr, "study_check: '%s' is not COLUMN=VALUE,VALUE... with values of 1 or more\n",
                   architecture.c_str());
      return 2;
    }
    architectures.push_back(number);
    widest = std::max(widest, number);
  }
  const std::string architecture_column = architecture.substr(0, equals);
  const std::string dir = argv[1];
  const std::size_t runs = std::strtoul(argv[2], nullptr, 10);
  const int epochs = std::atoi(argv[3]);
  const double last_epoch = epochs;
  const std::vector<Column> cell{{"seed", 0, 4294967295.0, true, {}},
                                 {"lr_multiplier", 0, 100, false, {0.1, 1.0 / 3.0, 1, 3, 10}},
                                 {"init_scale", 0, 100, false, {0.5, 1, 2}},
                                 {architecture_column.c_str(), 1, widest, true, architectures}};

  const std::string study_path = dir + "/study.csv";
  const Table study = read_csv(study_path);
  std::vector<Column> study_columns = cell;
  study_columns.push_back({"final_test_accuracy", 0, 100, false, {}});
  study_columns.push_back({"epochs_to_target", 1, last_epoch + 1, true, {}});  // epochs + 1: never
  study_columns.push_back({"diverged", 0, 1, true, {}});
  study_columns.push_back({"train_seconds", 0, 1e6, false, {}});
  auto study_values = check_columns(study, study_columns, study_path);
  if (study.rows.size() != runs)
    fail(study_path + " has " + std::to_string(study.rows.size()) + " runs, not " + std::to_string(runs));

  // The runs' keys: each must be unique, and each must have its loss rows.
  const std::size_t key_columns = 7;  // optimizer, base, rule, seed, lr_multiplier, init_scale, the architecture
  std::map<std::string, bool> diverged;  // by key
  for (std::size_t r = 0; r < study.rows.size(); ++r) {
    const std::vector<std::string>& row = study.rows[r];
    if (row.size() < key_columns) continue;
    std::string key;
    for (std::size_t k = 0; k < key_columns; ++k) key += row[k] + ",";
    if (!diverged.emplace(key, study_values["diverged"][r] != 0.0).second) fail(study_path + ": run " + key + " twice");
  }

  const std::string loss_path = dir + "/study_loss.csv";
  const Table loss = read_csv(loss_path);
  std::vector<Column> loss_columns = cell;
  loss_columns.push_back({"epoch", 1, last_epoch, true, {}});
  loss_columns.push_back({"train_loss", 0, 1e6, false, {}});
  loss_columns.push_back({"test_accuracy", 0, 100, false, {}});
  auto loss_values = check_columns(loss, loss_columns, loss_path);
  std::map<std::string, int> epochs_seen;
  for (std::size_t r = 0; r < loss.rows.size() && r < loss_values["epoch"].size(); ++r) {
    std::string key;
    for (std::size_t k = 0; k < key_columns && k < loss.rows[r].size(); ++k) key += loss.rows[r][k] + ",";
    if (!diverged.count(key)) fail(loss_path + " row " + std::to_string(r + 2) + ": a run not in study.csv");
    if (int(loss_values["epoch"][r]) != ++epochs_seen[key])
      fail(loss_path + " row " + std::to_string(r + 2) + ": epochs out of order");
  }
  for (const auto& [key, run_diverged] : diverged) {
    if (!run_diverged && epochs_seen[key] != epochs)
      fail(loss_path + ": run " + key + " has " + std::to_string(epochs_seen[key]) + " epochs, not " +
           std::to_string(epochs));
  }

  std::ifstream tables(dir + "/study_tables.md");
  std::string first_line;
  if (!std::getline(tables, first_line) || first_line.rfind("### ", 0) != 0) fail(dir + "/study_tables.md is missing");

  if (errors > 0) {
    std::fprintf(stderr, "study_check: %d problems in %s\n", errors, dir.c_str());
    return 1;
  }
  std::printf("study_check: %zu runs, %zu loss rows, every value a number in range\n", study.rows.size(),
              loss.rows.size());
  return 0;
}
