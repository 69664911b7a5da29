// The study's pictures, rendered by gnuplot: a heat map per optimizer of the final accuracy
// over learning-rate multiplier × init scale (every architecture), and the accuracy against the
// multiplier with error bars, one panel per base.
#pragma once

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "study_tables.hpp"

namespace demo {

inline std::string index_tics(const std::vector<std::string>& names) {
  std::string tics;
  for (std::size_t k = 0; k < names.size(); ++k)
    tics += (k ? ", '" : "('") + names[k] + "' " + std::to_string(k);
  return tics + ")";
}

// study_heatmap.dat: a block per optimizer of "multiplier index, row index, mean accuracy",
// one row per architecture and init scale; study_heatmap.gp draws a panel per block.
inline bool plot_heatmap(const std::string& out_dir, const std::vector<StudyRun>& runs, const StudyGrid& grid,
                         const std::string& title) {
  std::vector<std::string> columns, rows;
  for (double multiplier : grid.lr_multipliers) columns.push_back(multiplier_name(multiplier));
  for (int architecture : grid.architecture.values) {
    for (double scale : grid.init_scales)
      rows.push_back(grid.architecture.short_name(architecture) + ", init ×" + format("%g", scale));
  }
  double low = 100.0, high = 0.0;
  {
    std::ofstream data = open_for_writing(out_dir + "/study_heatmap.dat");
    for (const OptimizerSpec& spec : grid.optimizers) {
      std::size_t row = 0;
      for (int architecture : grid.architecture.values) {
        for (double scale : grid.init_scales) {
          for (std::size_t column = 0; column < grid.lr_multipliers.size(); ++column) {
            const double accuracy = mean(measure(runs_of(runs, spec, [&](const StudyCell& cell) {
              return cell.architecture == architecture && cell.init_scale == scale &&
                     cell.lr_multiplier == grid.lr_multipliers[column];
            }), final_accuracy));
            low = std::min(low, accuracy);
            high = std::max(high, accuracy);
            data << column << ' ' << row << ' ' << format("%.2f", accuracy) << '\n';
          }
          data << '\n';  // the end of a scan line
          ++row;
        }
      }
      data << "\n\n";  // the end of a block
    }
  }
  const std::size_t panel_columns = std::min<std::size_t>(4, grid.optimizers.size());
  const std::size_t panel_rows = (grid.optimizers.size() + panel_columns - 1) / panel_columns;
  {
    std::ofstream script = open_for_writing(out_dir + "/study_heatmap.gp");
    script << "set terminal pngcairo size " << 420 * panel_columns << ',' << 330 * panel_rows + 40 << " font ',9'\n"
           << "set output 'study_heatmap.png'\nunset key\n"
           << "set palette defined (0 '#d73027', 0.5 '#fee08b', 1 '#1a9850')\n"
           << "set cbrange [" << format("%.0f", std::floor(low)) << ':' << format("%.0f", std::ceil(high)) << "]\n"
           << "set xrange [-0.5:" << columns.size() - 0.5 << "]\nset yrange [-0.5:" << rows.size() - 0.5 << "]\n"
           << "set xtics " << index_tics(columns) << "\nset ytics " << index_tics(rows) << "\n"
           << "set xlabel 'learning-rate multiplier'\n"
           << "set multiplot layout " << panel_rows << ',' << panel_columns << " title '" << title << "'\n";
    for (std::size_t k = 0; k < grid.optimizers.size(); ++k) {
      script << "set title '" << display_name(grid.optimizers[k]) << "'\n"
             << "plot 'study_heatmap.dat' index " << k << " using 1:2:3 with image, '' index " << k
             << " using 1:2:(sprintf('%.0f', $3)) with labels font ',8'\n";
    }
    script << "unset multiplot\n";
  }
  return run_gnuplot(out_dir, "study_heatmap.gp");
}

// study_lr.dat: a block per optimizer of "multiplier, mean accuracy, sd" over the seeds at
// the reference init scale and architecture; study_lr.gp draws one panel per base.
inline bool plot_lr_sensitivity(const std::string& out_dir, const std::vector<StudyRun>& runs, const StudyGrid& grid,
                                const std::string& title) {
  {
    std::ofstream data = open_for_writing(out_dir + "/study_lr.dat");
    for (const OptimizerSpec& spec : grid.optimizers) {
      for (double multiplier : grid.lr_multipliers) {
        const std::vector<double> accuracies = measure(runs_of(runs, spec, [&](const StudyCell& cell) {
          return cell.lr_multiplier == multiplier && cell.init_scale == reference_scale &&
                 cell.architecture == grid.architecture.reference;
        }), final_accuracy);
        data << format("%.6g", multiplier) << ' ' << format("%.3f", mean(accuracies)) << ' '
             << format("%.3f", standard_deviation(accuracies)) << '\n';
      }
      data << "\n\n";
    }
  }
  std::vector<std::string> bases;
  for (const OptimizerSpec& spec : grid.optimizers) {
    if (std::find(bases.begin(), bases.end(), spec.base) == bases.end()) bases.push_back(spec.base);
  }
  std::string tics;
  for (double multiplier : grid.lr_multipliers)
    tics += (tics.empty() ? "('" : ", '") + multiplier_name(multiplier) + "' " + format("%.6g", multiplier);
  {
    std::ofstream script = open_for_writing(out_dir + "/study_lr.gp");
    script << "set terminal pngcairo size " << 400 * bases.size() << ",420 font ',10'\n"
           << "set output 'study_lr.png'\nset grid\nset logscale x\nset key bottom center\n"
           << "set xrange [" << format("%.6g", grid.lr_multipliers.front() / 1.5) << ':'
           << format("%.6g", grid.lr_multipliers.back() * 1.5) << "]\nset xtics " << tics << ")\n"
           << "set xlabel 'learning-rate multiplier'\nset ylabel 'test accuracy (%)'\n"
           << "set multiplot layout 1," << bases.size() << " title '" << title << "'\n";
    for (const std::string& base : bases) {
      std::string command = "plot";
      for (std::size_t k = 0; k < grid.optimizers.size(); ++k) {
        const OptimizerSpec& spec = grid.optimizers[k];
        if (spec.base != base) continue;
        command += std::string(command == "plot" ? " " : ", ") + "'study_lr.dat' index " + std::to_string(k) +
                   " using 1:2:3 with yerrorlines " + line_style(spec) + " title '" + display_name(spec) + "'";
      }
      script << "set title '" << display_name({base, "additive"}) << "'\n" << command << '\n';
    }
    script << "unset multiplot\n";
  }
  return run_gnuplot(out_dir, "study_lr.gp");
}

}  // namespace demo
