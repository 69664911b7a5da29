// The study's results, whatever its model: the tables (printed and in study_tables.md), the two
// CSV files and the two pictures, written into one directory.
#pragma once

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "study.hpp"
#include "study_plots.hpp"
#include "study_tables.hpp"

namespace demo {

// `title` names the data set and the model; the pictures' titles add the grid's epochs and seeds.
inline void write_study_results(const std::string& out_dir, const std::vector<StudyRun>& runs, const StudyGrid& grid,
                                const std::string& title, double wall_seconds) {
  std::ostringstream tables;
  print_study_tables(tables, runs, grid);
  std::cout << '\n' << tables.str();
  std::filesystem::create_directories(out_dir);
  write_study_csv(out_dir + "/study.csv", runs, grid);
  write_loss_csv(out_dir + "/study_loss.csv", runs, grid);
  open_for_writing(out_dir + "/study_tables.md") << tables.str();
  const std::string full_title = title + ", " + std::to_string(grid.epochs) + " epochs; mean over " +
                                 std::to_string(grid.seeds.size()) + " seeds";
  const bool heatmap = plot_heatmap(out_dir, runs, grid, full_title + "; final test accuracy (%)");
  const bool lr_plot = plot_lr_sensitivity(out_dir, runs, grid,
                                           full_title + " (± sd); init ×1, " +
                                               grid.architecture.value_name(grid.architecture.reference));
  std::printf("\nwrote %s/study.csv, study_loss.csv, study_tables.md%s%s; %zu runs in %s (m:s) wall time\n",
              out_dir.c_str(), heatmap ? ", study_heatmap.png" : "", lr_plot ? ", study_lr.png" : "", runs.size(),
              clock_time(wall_seconds).c_str());
}

}  // namespace demo
