// What the demo shows: the comparison table (Markdown, to paste into docs), the curves as
// CSV, and a PNG plot that gnuplot renders from them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "training.hpp"

namespace demo {

// Relative strengths of the weight noise in the table (see accuracy_under_noise).
inline const std::vector<double> noise_levels{0.01, 0.05, 0.10};

struct RunSummary {
  OptimizerSpec spec;
  std::vector<EpochRecord> epochs;     // epoch 0 first
  std::vector<double> noisy_accuracy;  // one per noise level
};

inline std::string format(const char* pattern, double value) {
  char text[64];
  std::snprintf(text, sizeof text, pattern, value);
  return text;
}

inline std::string percent(double fraction) { return format("%.2f", 100.0 * fraction); }

// Three significant digits without an exponent (0.0234, 1.23, 123): the seconds of a digits
// run are hundredths, those of a Fashion-MNIST run tens.
inline std::string seconds(double value) {
  const int magnitude = value > 0.0 ? int(std::floor(std::log10(value))) : 0;
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", std::max(0, 2 - magnitude), value);
  return text;
}

// The first epoch whose test accuracy reaches the target; 0 if none does.
inline int first_epoch_reaching(double target, const std::vector<EpochRecord>& epochs) {
  for (const EpochRecord& record : epochs) {
    if (record.epoch > 0 && record.test.accuracy >= target) return record.epoch;
  }
  return 0;
}

// The same as table text: a dash if no epoch reaches the target.
inline std::string epochs_to(double target, const std::vector<EpochRecord>& epochs) {
  const int epoch = first_epoch_reaching(target, epochs);
  return epoch > 0 ? std::to_string(epoch) : "—";
}

inline void print_table(std::ostream& out, const std::vector<RunSummary>& runs, double target) {
  const std::size_t epoch_count = runs.front().epochs.size() - 1;
  out << "| optimizer |";
  for (std::size_t epoch = 1; epoch <= epoch_count; ++epoch) out << " ep " << epoch << " |";
  out << " epochs to " << format("%g", 100.0 * target) << "% | wall time (s) |";
  for (double level : noise_levels) out << " noise " << format("%g", 100.0 * level) << "% |";
  out << "\n|---|";
  for (std::size_t column = 0; column < epoch_count + 2 + noise_levels.size(); ++column) out << "--:|";
  out << "\n";
  for (const RunSummary& run : runs) {
    out << "| " << display_name(run.spec) << " |";
    for (std::size_t epoch = 1; epoch <= epoch_count; ++epoch)
      out << " " << percent(run.epochs[epoch].test.accuracy) << " |";
    out << " " << epochs_to(target, run.epochs) << " | " << seconds(run.epochs.back().train_seconds) << " |";
    for (double accuracy : run.noisy_accuracy) out << " " << percent(accuracy) << " |";
    out << "\n";
  }
}

inline std::ofstream open_for_writing(const std::string& path) {
  std::ofstream file(path);
  if (!file) throw std::runtime_error("cannot write " + path);
  return file;
}

inline void write_curves_csv(const std::string& path, const std::vector<RunSummary>& runs) {
  std::ofstream csv = open_for_writing(path);
  csv << "optimizer,base,rule,epoch,train_loss,test_loss,test_accuracy,train_seconds\n";
  for (const RunSummary& run : runs) {
    for (const EpochRecord& record : run.epochs) {
      csv << display_name(run.spec) << ',' << run.spec.base << ',' << run.spec.rule << ',' << record.epoch << ','
          << record.train_loss << ',' << record.test.loss << ',' << record.test.accuracy << ','
          << record.train_seconds << '\n';
    }
  }
}

// Strength 0 is the trained model as it is, the start of each curve in the plot.
inline void write_noise_csv(const std::string& path, const std::vector<RunSummary>& runs) {
  std::ofstream csv = open_for_writing(path);
  csv << "optimizer,relative_strength,test_accuracy\n";
  for (const RunSummary& run : runs) {
    csv << display_name(run.spec) << ",0," << run.epochs.back().test.accuracy << '\n';
    for (std::size_t k = 0; k < noise_levels.size(); ++k)
      csv << display_name(run.spec) << ',' << noise_levels[k] << ',' << run.noisy_accuracy[k] << '\n';
  }
}

// One colour per rule and one dash pattern per base, so that both read off each line.
inline std::string line_style(const OptimizerSpec& spec) {
  const char* colour = spec.rule == "additive" ? "#1f77b4" : spec.rule == "multiplicative" ? "#d62728" : "#2ca02c";
  const int dash = spec.base == "sgd" ? 1 : spec.base == "adam" ? 2 : spec.base == "adagrad" ? 3 : 4;
  return std::string("lc rgb '") + colour + "' dt " + std::to_string(dash) + " lw 2 pt 7 ps 0.6";
}

// One plot command with a curve per optimizer: `x` and `y` are gnuplot expressions of the
// columns; rows of other optimizers (and of epoch 0 when asked) drop out as NaN.
inline std::string plot_command(const std::vector<RunSummary>& runs, const std::string& file, const std::string& x,
                                const std::string& y, bool skip_epoch_zero) {
  std::string command = "plot";
  for (const RunSummary& run : runs) {
    const std::string name = display_name(run.spec);
    const std::string keep = "strcol(1) eq '" + name + "'" + (skip_epoch_zero ? " && $4 > 0" : "");
    command += (command == "plot" ? " '" : ", \\\n     '") + file + "' every ::1 using " + x + ":(" + keep +
               " ? " + y + " : NaN) with linespoints " + line_style(run.spec) + " title '" + name + "'";
  }
  return command + "\n";
}

inline std::string shell_quoted(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// Runs gnuplot on `script` in `out_dir`. Returns false (and says why) when that failed or
// gnuplot is missing, which leaves the tables and the CSV files still useful.
inline bool run_gnuplot(const std::string& out_dir, const std::string& script) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    std::fprintf(stderr, "gnuplot is not installed (Debian: apt-get install gnuplot-nox): no PNG\n");
    return false;
  }
  if (std::system(("cd " + shell_quoted(out_dir) + " && gnuplot " + shell_quoted(script)).c_str()) != 0) {
    std::fprintf(stderr, "gnuplot failed on %s/%s: no PNG\n", out_dir.c_str(), script.c_str());
    return false;
  }
  return true;
}

// Writes curves.gp next to the CSV files and runs gnuplot on it. Returns false (and says
// why) when no PNG came out, which leaves the table and the CSV files still useful.
inline bool plot_png(const std::string& out_dir, const std::vector<RunSummary>& runs, const std::string& title) {
  std::string noise_tics;
  for (double level : noise_levels) noise_tics += ", " + format("%g", 100.0 * level);
  {
    // Three panels; the legend sits on the first only, since the styles are the same in all.
    std::ofstream script = open_for_writing(out_dir + "/curves.gp");
    script << "set terminal pngcairo size 1500,500 font ',10'\n"
              "set output 'curves.png'\n"
              "set datafile separator ','\n"
              "set grid\n"
           << "set multiplot layout 1,3 title '" << title << "'\n"
           << "set key bottom right\nset xlabel 'epoch'\nset ylabel 'test accuracy (%)'\n"
           << plot_command(runs, "curves.csv", "4", "100*$7", true)
           << "unset key\nset ylabel 'training loss (mean over the epoch)'\n"
           << plot_command(runs, "curves.csv", "4", "$5", true)
           << "set xlabel 'relative weight noise (%)'\nset ylabel 'test accuracy (%)'\n"
           << "set xtics (0" << noise_tics << ")\n"
           << plot_command(runs, "noise.csv", "(100*$2)", "100*$3", false) << "unset multiplot\n";
  }
  return run_gnuplot(out_dir, "curves.gp");
}

}  // namespace demo
