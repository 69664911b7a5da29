// The study's runs (docs/study.md): the grid of optimizers × learning-rate multipliers ×
// initialization scales × architectures × seeds, trained on worker threads with a progress line
// per run and the time left, and the two CSV files of their results. The model is the caller's:
// the MLP of fashion_mnist --study (depths) or the CNN of cnn_study (widths).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <fstream>
#include <functional>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "report.hpp"

namespace demo {

// The architecture axis of a study: its CSV column and how its values read in the tables.
struct ArchitectureAxis {
  std::string column;    // hidden_layers, width
  std::string noun;      // depth, width
  std::string singular;  // "hidden layer": "1 hidden layer"
  std::string plural;    // "hidden layers", "channels"
  std::string short_unit;  // "hidden", "ch": the heat map's rows and the progress lines
  std::vector<int> values;
  int reference;  // held there when another axis varies

  std::string value_name(int value) const { return std::to_string(value) + " " + (value == 1 ? singular : plural); }
  std::string short_name(int value) const { return std::to_string(value) + " " + short_unit; }
};

// A run's place in the grid.
struct StudyCell {
  OptimizerSpec spec;
  unsigned seed;         // the initial weights and the batch order
  double lr_multiplier;  // times the optimizer's chosen rates (both rates of the hybrid rule)
  double init_scale;     // times the He-normal standard deviation of the weights
  int architecture;      // one of the grid's ArchitectureAxis::values
};

struct StudyRun {
  StudyCell cell;
  std::vector<EpochRecord> epochs;  // epoch 0 first; it ends early where the loss is no longer finite
  bool diverged;
};

struct StudyGrid {
  std::vector<OptimizerSpec> optimizers;
  std::vector<unsigned> seeds;
  std::vector<double> lr_multipliers;
  std::vector<double> init_scales;
  ArchitectureAxis architecture;
  int epochs;
  double target;  // the test accuracy that epochs_to_target counts to

  std::size_t run_count() const {
    return optimizers.size() * seeds.size() * lr_multipliers.size() * init_scales.size() *
           architecture.values.size();
  }
};

// The demo's configuration, where each axis of sensitivity is held when another one varies
// (and the architecture's reference).
constexpr double reference_multiplier = 1.0, reference_scale = 1.0;
// A run diverged if its loss stopped being finite or it ends below twice the chance accuracy.
constexpr double diverged_accuracy = 0.2;

// The full grid, or the test's reduced one: SGD and MSGD, multipliers 1 and 3, init scales 1
// and 2. Seeds first_seed, first_seed + 1, ...
inline StudyGrid study_grid(bool reduced, unsigned first_seed, int seeds, int epochs, double target,
                            ArchitectureAxis architecture) {
  StudyGrid grid;
  if (reduced) {
    grid.optimizers = {{"sgd", "additive"}, {"sgd", "multiplicative"}};
    grid.lr_multipliers = {reference_multiplier, 3.0};
    grid.init_scales = {reference_scale, 2.0};
  } else {
    grid.optimizers = paper_optimizer_set();
    grid.lr_multipliers = {0.1, 1.0 / 3.0, reference_multiplier, 3.0, 10.0};
    grid.init_scales = {0.5, reference_scale, 2.0};
  }
  grid.architecture = std::move(architecture);
  for (int k = 0; k < seeds; ++k) grid.seeds.push_back(first_seed + unsigned(k));
  grid.epochs = epochs;
  grid.target = target;
  return grid;
}

// Every rate of `rates` (lr, lr_out) times `multiplier`.
inline multopt::Settings scaled_rates(const multopt::Settings& rates, double multiplier) {
  multopt::Settings scaled;
  for (const auto& [name, value] : rates) scaled.push_back({name, format("%.6g", std::stod(value) * multiplier)});
  return scaled;
}

// Calls work(k) for every k in [0, count) on `jobs` threads; rethrows the first exception.
template <class Work>
void parallel_for(std::size_t count, int jobs, const Work& work) {
  std::atomic<std::size_t> next{0};
  std::mutex failure_mutex;
  std::exception_ptr failure;
  const auto worker = [&] {
    for (std::size_t k = next++; k < count; k = next++) {
      try {
        work(k);
      } catch (...) {
        const std::lock_guard<std::mutex> lock(failure_mutex);
        if (!failure) failure = std::current_exception();
        next = count;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 1; t < jobs; ++t) threads.emplace_back(worker);
  worker();
  for (std::thread& thread : threads) thread.join();
  if (failure) std::rethrow_exception(failure);
}

inline std::string clock_time(double seconds) {
  const long total = std::lround(seconds);
  char text[32];
  std::snprintf(text, sizeof text, "%ld:%02ld", total / 60, total % 60);
  return text;
}

// Whether a run diverged: its loss is no longer finite, or it ends below diverged_accuracy.
inline bool diverged(const std::vector<EpochRecord>& epochs) {
  const EpochRecord& last = epochs.back();
  return !std::isfinite(last.train_loss) || last.test.accuracy < diverged_accuracy;
}

// Trains every run of the grid with `train_run(cell, start)`, which returns the run's epochs
// (epoch 0 first) and must be safe to call from several threads at once. `start` numbers the
// run's seed, scale and architecture, (seed × scales + scale) × architectures + architecture:
// the index of the model it starts from, which every optimizer of these shares. Runs follow
// one another with the architecture changing fastest, so that the mean time per finished run
// predicts the time left.
inline std::vector<StudyRun> run_grid(
    const StudyGrid& grid, int jobs,
    const std::function<std::vector<EpochRecord>(const StudyCell&, std::size_t start)>& train_run) {
  const std::size_t scales = grid.init_scales.size(), architectures = grid.architecture.values.size();
  std::vector<StudyRun> runs;
  std::vector<std::size_t> start_of_run;
  for (std::size_t s = 0; s < grid.seeds.size(); ++s) {
    for (std::size_t i = 0; i < scales; ++i) {
      for (const OptimizerSpec& spec : grid.optimizers) {
        for (double multiplier : grid.lr_multipliers) {
          for (std::size_t a = 0; a < architectures; ++a) {
            runs.push_back({{spec, grid.seeds[s], multiplier, grid.init_scales[i], grid.architecture.values[a]},
                            {},
                            false});
            start_of_run.push_back((s * scales + i) * architectures + a);
          }
        }
      }
    }
  }

  std::mutex progress_mutex;
  std::size_t finished = 0;
  const auto begin = std::chrono::steady_clock::now();
  parallel_for(runs.size(), jobs, [&](std::size_t k) {
    StudyRun& run = runs[k];
    run.epochs = train_run(run.cell, start_of_run[k]);
    run.diverged = diverged(run.epochs);

    const std::lock_guard<std::mutex> lock(progress_mutex);
    ++finished;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    std::printf("[%4zu/%zu] %-8s lr ×%-6s init ×%-3s %s  seed %u: %6.2f%%%s  elapsed %s, about %s left\n",
                finished, runs.size(), display_name(run.cell.spec).c_str(),
                format("%.3g", run.cell.lr_multiplier).c_str(), format("%g", run.cell.init_scale).c_str(),
                grid.architecture.short_name(run.cell.architecture).c_str(), run.cell.seed,
                100.0 * run.epochs.back().test.accuracy, run.diverged ? " diverged" : "", clock_time(elapsed).c_str(),
                clock_time(elapsed / double(finished) * double(runs.size() - finished)).c_str());
    std::fflush(stdout);
  });
  return runs;
}

// The columns that identify a run, shared by both files.
inline void write_cell(std::ostream& csv, const StudyCell& cell) {
  csv << display_name(cell.spec) << ',' << cell.spec.base << ',' << cell.spec.rule << ',' << cell.seed << ','
      << format("%.6g", cell.lr_multiplier) << ',' << format("%g", cell.init_scale) << ',' << cell.architecture;
}

inline std::string cell_columns(const StudyGrid& grid) {
  return "optimizer,base,rule,seed,lr_multiplier,init_scale," + grid.architecture.column;
}

// The target's epoch is epochs + 1 where no epoch reached it. Accuracies in percent.
inline void write_study_csv(const std::string& path, const std::vector<StudyRun>& runs, const StudyGrid& grid) {
  std::ofstream csv = open_for_writing(path);
  csv << cell_columns(grid) << ",final_test_accuracy,epochs_to_target,diverged,train_seconds\n";
  for (const StudyRun& run : runs) {
    const int reached = first_epoch_reaching(grid.target, run.epochs);
    write_cell(csv, run.cell);
    csv << ',' << percent(run.epochs.back().test.accuracy) << ',' << (reached > 0 ? reached : grid.epochs + 1)
        << ',' << int(run.diverged) << ',' << format("%.4g", run.epochs.back().train_seconds) << '\n';
  }
}

// One row per run and epoch whose training loss is finite: a diverged run has fewer.
inline void write_loss_csv(const std::string& path, const std::vector<StudyRun>& runs, const StudyGrid& grid) {
  std::ofstream csv = open_for_writing(path);
  csv << cell_columns(grid) << ",epoch,train_loss,test_accuracy\n";
  for (const StudyRun& run : runs) {
    for (const EpochRecord& record : run.epochs) {
      if (record.epoch == 0 || !std::isfinite(record.train_loss)) continue;
      write_cell(csv, run.cell);
      csv << ',' << record.epoch << ',' << format("%.6g", record.train_loss) << ','
          << percent(record.test.accuracy) << '\n';
    }
  }
}

}  // namespace demo
