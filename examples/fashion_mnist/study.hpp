// The study's runs (docs/study.md): the grid of optimizers × learning-rate multipliers ×
// initialization scales × depths × seeds, trained on worker threads with a progress line per
// run and the time left, and the two CSV files of their results.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <fstream>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "options.hpp"
#include "report.hpp"

namespace demo {

// A run's place in the grid.
struct StudyCell {
  OptimizerSpec spec;
  unsigned seed;         // the initial weights and the batch order
  double lr_multiplier;  // times the optimizer's chosen rates (both rates of the hybrid rule)
  double init_scale;     // times the He-normal standard deviation of the weights
  int hidden_layers;
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
  std::vector<int> depths;
  int epochs;
  double target;  // the test accuracy that epochs_to_target counts to

  std::size_t run_count() const {
    return optimizers.size() * seeds.size() * lr_multipliers.size() * init_scales.size() * depths.size();
  }
};

// The demo's configuration, where each axis of sensitivity is held when another one varies.
constexpr double reference_multiplier = 1.0, reference_scale = 1.0;
constexpr int reference_depth = 1;
// A run diverged if its loss stopped being finite or it ends below twice the chance accuracy.
constexpr double diverged_accuracy = 0.2;

inline StudyGrid study_grid(const Options& options) {
  StudyGrid grid;
  if (options.reduced_grid) {
    grid.optimizers = {{"sgd", "additive"}, {"sgd", "multiplicative"}};
    grid.lr_multipliers = {reference_multiplier, 3.0};
    grid.init_scales = {reference_scale, 2.0};
  } else {
    grid.optimizers = paper_optimizer_set();
    grid.lr_multipliers = {0.1, 1.0 / 3.0, reference_multiplier, 3.0, 10.0};
    grid.init_scales = {0.5, reference_scale, 2.0};
  }
  grid.depths = {reference_depth, 3};
  for (int k = 0; k < options.seeds; ++k) grid.seeds.push_back(options.seed + unsigned(k));
  grid.epochs = options.epochs;
  grid.target = options.target;
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

// Trains every run of the grid. All optimizers of one seed, scale and depth start from the
// same model and draw the same batches. Runs follow one another with the depth changing
// fastest, so that the mean time per finished run predicts the time left.
inline std::vector<StudyRun> run_study(const StudyGrid& grid, const TrainTest& data, int hidden_units,
                                       int batch_size, int jobs) {
  struct Start {
    Mlp model;
    EpochRecord record;
  };
  const std::size_t scales = grid.init_scales.size(), depths = grid.depths.size();
  std::vector<Start> starts;
  for (unsigned seed : grid.seeds) {
    for (double scale : grid.init_scales) {
      for (int depth : grid.depths) {
        starts.push_back({Mlp(int(data.train.images.rows()), hidden_units, class_count, seed, depth, float(scale)),
                          {}});
      }
    }
  }
  parallel_for(starts.size(), jobs, [&](std::size_t k) {
    starts[k].record = initial_record(starts[k].model, data.train, data.test);
  });

  std::vector<StudyRun> runs;
  std::vector<std::size_t> start_of_run;
  for (std::size_t s = 0; s < grid.seeds.size(); ++s) {
    for (std::size_t i = 0; i < scales; ++i) {
      for (const OptimizerSpec& spec : grid.optimizers) {
        for (double multiplier : grid.lr_multipliers) {
          for (std::size_t d = 0; d < depths; ++d) {
            runs.push_back({{spec, grid.seeds[s], multiplier, grid.init_scales[i], grid.depths[d]}, {}, false});
            start_of_run.push_back((s * scales + i) * depths + d);
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
    const Start& start = starts[start_of_run[k]];
    const multopt::Settings settings =
        full_settings(run.cell.spec, scaled_rates(chosen_rates(run.cell.spec), run.cell.lr_multiplier));
    const auto loss_is_finite = [](const EpochRecord& record) { return std::isfinite(record.train_loss); };
    run.epochs = train(start.model, start.record, run.cell.spec, settings, data.train, data.test,
                       {grid.epochs, batch_size, run.cell.seed, Precision::fp32}, loss_is_finite)
                     .epochs;
    const EpochRecord& last = run.epochs.back();
    run.diverged = !std::isfinite(last.train_loss) || last.test.accuracy < diverged_accuracy;

    const std::lock_guard<std::mutex> lock(progress_mutex);
    ++finished;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    std::printf("[%4zu/%zu] %-8s lr ×%-6s init ×%-3s %d hidden  seed %u: %6.2f%%%s  elapsed %s, about %s left\n",
                finished, runs.size(), display_name(run.cell.spec).c_str(),
                format("%.3g", run.cell.lr_multiplier).c_str(), format("%g", run.cell.init_scale).c_str(),
                run.cell.hidden_layers, run.cell.seed, 100.0 * last.test.accuracy, run.diverged ? " diverged" : "",
                clock_time(elapsed).c_str(),
                clock_time(elapsed / double(finished) * double(runs.size() - finished)).c_str());
    std::fflush(stdout);
  });
  return runs;
}

// The columns that identify a run, shared by both files.
inline void write_cell(std::ostream& csv, const StudyCell& cell) {
  csv << display_name(cell.spec) << ',' << cell.spec.base << ',' << cell.spec.rule << ',' << cell.seed << ','
      << format("%.6g", cell.lr_multiplier) << ',' << format("%g", cell.init_scale) << ',' << cell.hidden_layers;
}

inline const char* const cell_columns = "optimizer,base,rule,seed,lr_multiplier,init_scale,hidden_layers";

// The target's epoch is epochs + 1 where no epoch reached it. Accuracies in percent.
inline void write_study_csv(const std::string& path, const std::vector<StudyRun>& runs, const StudyGrid& grid) {
  std::ofstream csv = open_for_writing(path);
  csv << cell_columns << ",final_test_accuracy,epochs_to_target,diverged,train_seconds\n";
  for (const StudyRun& run : runs) {
    const int reached = first_epoch_reaching(grid.target, run.epochs);
    write_cell(csv, run.cell);
    csv << ',' << percent(run.epochs.back().test.accuracy) << ',' << (reached > 0 ? reached : grid.epochs + 1)
        << ',' << int(run.diverged) << ',' << format("%.4g", run.epochs.back().train_seconds) << '\n';
  }
}

// One row per run and epoch whose training loss is finite: a diverged run has fewer.
inline void write_loss_csv(const std::string& path, const std::vector<StudyRun>& runs) {
  std::ofstream csv = open_for_writing(path);
  csv << cell_columns << ",epoch,train_loss,test_accuracy\n";
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
