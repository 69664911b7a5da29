// The multopt demo: an MLP on Fashion-MNIST (or the small digits set) trained from one
// initialization by SGD and Adam under the additive, multiplicative and hybrid rules of
// Kirtas, Passalis and Tefas (2024), or the study of the paper's claims over a grid of
// learning rates, initializations, depths and seeds. See --help, docs/demo.md, docs/study.md.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "datasets.hpp"
#include "mlp.hpp"
#include "optimizers.hpp"
#include "options.hpp"
#include "report.hpp"
#include "study.hpp"
#include "study_results.hpp"
#include "training.hpp"

namespace {

constexpr int hidden_units = 256;
constexpr int noise_draws = 5;  // noise draws averaged per strength
demo::TrainTest load_data(const demo::Options& options) {
  return demo::load_data(options.digits, options.data_path, options.train_size);
}

// Every run starts from this model: the same seed gives the same weights to every optimizer.
demo::Mlp initial_model(const demo::TrainTest& data, const demo::Options& options) {
  return demo::Mlp(int(data.train.images.rows()), hidden_units, demo::class_count, options.seed);
}

demo::TrainingConfig training_config(const demo::Options& options) {
  return {options.epochs, options.batch_size, options.seed, options.precision, options.bf16_state};
}

int run_comparison(const demo::Options& options) {
  const demo::TrainTest data = load_data(options);
  const demo::Mlp initial = initial_model(data, options);
  const demo::EpochRecord initial_state = demo::initial_record(initial, data.train, data.test);
  std::printf("%s: %d training and %d test samples, MLP %d-%d-%d, %d epochs of mini-batches of %d\n",
              options.digits ? "digits" : "Fashion-MNIST", data.train.size(), data.test.size(),
              int(data.train.images.rows()), hidden_units, demo::class_count, options.epochs, options.batch_size);
  std::printf("initial model: training loss %.4f, test accuracy %.2f%%\n", initial_state.train_loss,
              100.0 * initial_state.test.accuracy);
  if (options.precision != demo::Precision::fp32)
    std::printf("weights stored as --precision %s, computed in fp32\n", demo::to_string(options.precision).c_str());
  if (options.bf16_state) std::printf("optimizer state stored in bf16 (--state bf16), computed in fp32\n");

  std::vector<demo::RunSummary> runs;
  bool every_loss_fell = true;
  for (const demo::OptimizerSpec& spec : demo::optimizer_set(options.all_optimizers)) {
    const std::string name = demo::display_name(spec);
    const multopt::Settings settings = demo::full_settings(spec, demo::chosen_rates(spec));
    std::printf("%s (%s %s: %s)\n", name.c_str(), spec.base.c_str(), spec.rule.c_str(),
                demo::describe(settings).c_str());
    const auto show_progress = [&](const demo::EpochRecord& record) {
      std::printf("  %-8s epoch %3d/%d  training loss %.4f  test accuracy %6.2f%%  %7s s\n", name.c_str(),
                  record.epoch, options.epochs, record.train_loss, 100.0 * record.test.accuracy,
                  demo::seconds(record.train_seconds).c_str());
      std::fflush(stdout);
      return true;
    };
    demo::TrainedModel trained = demo::train(initial, initial_state, spec, settings, data.train, data.test,
                                             training_config(options), show_progress);
    if (options.check_loss_falls) {
      // The trained model on the whole training set, as the initial loss was measured: an
      // optimizer that leaves the weights unchanged gives the same loss and fails.
      const double final_loss = trained.model.evaluate(data.train).loss;
      if (!(final_loss < initial_state.train_loss)) {
        std::fprintf(stderr, "%s: the training loss did not fall (%.4f at the start, %.4f after training)\n",
                     name.c_str(), initial_state.train_loss, final_loss);
        every_loss_fell = false;
      }
    }
    demo::RunSummary run{spec, std::move(trained.epochs), {}};
    for (double level : demo::noise_levels)
      run.noisy_accuracy.push_back(demo::accuracy_under_noise(trained.model, data.test, level, noise_draws,
                                                              options.seed));
    runs.push_back(std::move(run));
  }

  std::printf("\nTest accuracy (%%) after each epoch; wall time of the training (the evaluations after each\n"
              "epoch excluded); test accuracy (%%) of the trained model with Gaussian noise of std\n"
              "(strength × the tensor's RMS) added to every weight and bias, mean of %d draws:\n\n",
              noise_draws);
  demo::print_table(std::cout, runs, options.target);
  std::cout.flush();

  std::filesystem::create_directories(options.out_dir);
  demo::write_curves_csv(options.out_dir + "/curves.csv", runs);
  demo::write_noise_csv(options.out_dir + "/noise.csv", runs);
  const std::string title = std::string(options.digits ? "digits" : "Fashion-MNIST") + ", MLP " +
                            std::to_string(data.train.images.rows()) + "-" + std::to_string(hidden_units) + "-" +
                            std::to_string(demo::class_count) +
                            ", one initialization for all; M: multiplicative rule, H: hybrid rule" +
                            (options.precision == demo::Precision::fp32 ? "" : "; " + demo::to_string(options.precision)) +
                            (options.bf16_state ? "; bf16 state" : "");
  const bool plotted = demo::plot_png(options.out_dir, runs, title);
  std::printf("\nwrote %s/curves.csv, noise.csv%s\n", options.out_dir.c_str(), plotted ? ", curves.png" : "");

  if (options.check_loss_falls) {
    if (!every_loss_fell) return 1;
    std::printf("every optimizer's training loss fell below the initial %.4f\n", initial_state.train_loss);
  }
  return 0;
}

// Trains every optimizer with each of its candidate learning rates and picks the one of the
// highest validation accuracy after the given epochs (the first, smaller rate on a tie); the
// validation set is the last sixth of the training set, so the test set plays no part.
int run_sweep(const demo::Options& options) {
  const demo::TrainTest data = load_data(options);
  const int validation_size = data.train.size() / 6;
  const demo::Dataset fit = data.train.slice(0, data.train.size() - validation_size);
  const demo::Dataset validation = data.train.slice(data.train.size() - validation_size, validation_size);
  const demo::Mlp initial = initial_model(data, options);
  const demo::EpochRecord initial_state = demo::initial_record(initial, fit, validation);
  std::printf("sweep: %d training and %d validation samples, %d epochs, weights in %s\n\n", fit.size(),
              validation.size(), options.epochs, demo::to_string(options.precision).c_str());

  std::filesystem::create_directories(options.out_dir);
  std::ofstream csv = demo::open_for_writing(options.out_dir + "/sweep.csv");
  csv << "optimizer,settings,validation_loss,validation_accuracy\n";
  std::printf("| optimizer | learning rates | validation loss | validation accuracy (%%) |\n|---|---|--:|--:|\n");
  for (const demo::OptimizerSpec& spec : demo::optimizer_set(options.all_optimizers)) {
    const std::string name = demo::display_name(spec);
    double best_accuracy = -1.0;
    std::string best;
    for (const multopt::Settings& rates : demo::sweep_candidates(spec)) {
      const demo::TrainedModel trained = demo::train(initial, initial_state, spec, demo::full_settings(spec, rates),
                                                     fit, validation, training_config(options),
                                                     [](const demo::EpochRecord&) { return true; });
      const demo::Evaluation result = trained.epochs.back().test;
      const std::string described = demo::describe(rates);
      std::printf("| %s | %s | %.4f | %.2f |\n", name.c_str(), described.c_str(), result.loss, 100.0 * result.accuracy);
      std::fflush(stdout);
      csv << name << ',' << described << ',' << result.loss << ',' << result.accuracy << '\n';
      if (result.accuracy > best_accuracy) {
        best_accuracy = result.accuracy;
        best = described;
      }
    }
    std::printf("| **%s best** | **%s** | | **%.2f** |\n", name.c_str(), best.c_str(), 100.0 * best_accuracy);
  }
  std::printf("\nwrote %s/sweep.csv\n", options.out_dir.c_str());
  return 0;
}

// The study's architecture axis: one or three hidden layers.
demo::ArchitectureAxis mlp_depths() {
  return {"hidden_layers", "depth", "hidden layer", "hidden layers", "hidden", {1, 3}, 1};
}

// Trains every run of the grid. All optimizers of one seed, scale and depth start from the
// same model and draw the same batches.
std::vector<demo::StudyRun> train_mlp_grid(const demo::StudyGrid& grid, const demo::TrainTest& data, int batch_size,
                                           int jobs) {
  struct Start {
    demo::Mlp model;
    demo::EpochRecord record;
  };
  std::vector<Start> starts;  // in run_grid's order of its `start` index
  for (unsigned seed : grid.seeds) {
    for (double scale : grid.init_scales) {
      for (int depth : grid.architecture.values) {
        starts.push_back({demo::Mlp(int(data.train.images.rows()), hidden_units, demo::class_count, seed, depth,
                                    float(scale)),
                          {}});
      }
    }
  }
  demo::parallel_for(starts.size(), jobs, [&](std::size_t k) {
    starts[k].record = demo::initial_record(starts[k].model, data.train, data.test);
  });
  const auto loss_is_finite = [](const demo::EpochRecord& record) { return std::isfinite(record.train_loss); };
  return demo::run_grid(grid, jobs, [&](const demo::StudyCell& cell, std::size_t start) {
    const multopt::Settings settings =
        demo::full_settings(cell.spec, demo::scaled_rates(demo::chosen_rates(cell.spec), cell.lr_multiplier));
    return demo::train(starts[start].model, starts[start].record, cell.spec, settings, data.train, data.test,
                       {grid.epochs, batch_size, cell.seed, demo::Precision::fp32, false}, loss_is_finite)
        .epochs;
  });
}

// Trains the study's grid on worker threads, then prints its tables and writes study.csv,
// study_loss.csv, study_tables.md and the two pictures.
int run_study(const demo::Options& options) {
  const demo::TrainTest data = load_data(options);
  const demo::StudyGrid grid = demo::study_grid(options.reduced_grid, options.seed, options.seeds, options.epochs,
                                                options.target, mlp_depths());
  const int jobs = options.jobs > 0 ? options.jobs : int(std::max(1u, std::thread::hardware_concurrency()));
  const std::string name = options.digits ? "digits" : "Fashion-MNIST";
  std::printf("study: %s, %d training and %d test samples, hidden layers of %d units, %d epochs of mini-batches "
              "of %d\n%zu optimizers x %zu seeds x %zu multipliers x %zu init scales x %zu depths = %zu runs, "
              "%d at a time\n\n",
              name.c_str(), data.train.size(), data.test.size(), hidden_units, grid.epochs, options.batch_size,
              grid.optimizers.size(), grid.seeds.size(), grid.lr_multipliers.size(), grid.init_scales.size(),
              grid.architecture.values.size(), grid.run_count(), jobs);
  const auto start = std::chrono::steady_clock::now();
  const std::vector<demo::StudyRun> runs = train_mlp_grid(grid, data, options.batch_size, jobs);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  demo::write_study_results(options.out_dir, runs, grid,
                            name + ", " + std::to_string(data.train.size()) + " training samples", wall);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  demo::Options options;
  try {
    options = demo::parse_options(argc, argv);
  } catch (const demo::UsageError& error) {
    std::fprintf(stderr, "fashion_mnist: %s\n", error.what());
    return 2;
  }
  if (options.help) {
    std::cout << demo::usage();
    return 0;
  }
  Eigen::setNbThreads(1);  // as the optimizers: see demo::single_thread
  try {
    if (options.study) return run_study(options);
    return options.sweep ? run_sweep(options) : run_comparison(options);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "fashion_mnist: %s\n", error.what());
    return 1;
  }
}
