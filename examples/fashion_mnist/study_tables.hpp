// The study's tables (docs/study.md), in Markdown: acceleration at the chosen learning rates,
// sensitivity to the learning rate, the initialization scale and the architecture, and divergence.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "study.hpp"
#include "study_stats.hpp"

namespace demo {

// The three axes along which the study measures sensitivity.
enum class Axis { lr_multiplier, init_scale, architecture };

inline double coordinate(const StudyCell& cell, Axis axis) {
  return axis == Axis::lr_multiplier ? cell.lr_multiplier
       : axis == Axis::init_scale    ? cell.init_scale
                                     : double(cell.architecture);
}

inline double reference(const StudyGrid& grid, Axis axis) {
  return axis == Axis::lr_multiplier ? reference_multiplier
       : axis == Axis::init_scale    ? reference_scale
                                     : double(grid.architecture.reference);
}

// The demo's configuration: every axis at its reference.
inline bool at_reference(const StudyGrid& grid, const StudyCell& cell) {
  return cell.lr_multiplier == reference_multiplier && cell.init_scale == reference_scale &&
         cell.architecture == grid.architecture.reference;
}

inline bool same_spec(const OptimizerSpec& a, const OptimizerSpec& b) { return a.base == b.base && a.rule == b.rule; }

// The runs of one optimizer that pass `keep`, in grid order: the same filter gives every
// optimizer its runs in the same order of seed, scale, architecture and multiplier, ready to pair.
inline std::vector<const StudyRun*> runs_of(const std::vector<StudyRun>& runs, const OptimizerSpec& spec,
                                           const std::function<bool(const StudyCell&)>& keep) {
  std::vector<const StudyRun*> selected;
  for (const StudyRun& run : runs) {
    if (same_spec(run.cell.spec, spec) && keep(run.cell)) selected.push_back(&run);
  }
  return selected;
}

using Metric = std::function<double(const StudyRun&)>;

inline std::vector<double> measure(const std::vector<const StudyRun*>& runs, const Metric& metric) {
  std::vector<double> values;
  for (const StudyRun* run : runs) values.push_back(metric(*run));
  return values;
}

inline double final_accuracy(const StudyRun& run) { return 100.0 * run.epochs.back().test.accuracy; }

// Mean training loss of the given epoch; NaN for a run that diverged before it.
inline Metric loss_after(int epoch) {
  return [epoch](const StudyRun& run) {
    return std::size_t(epoch) < run.epochs.size() ? run.epochs[std::size_t(epoch)].train_loss : std::nan("");
  };
}

// epochs + 1 where no epoch reached the target.
inline Metric epochs_to_target(const StudyGrid& grid) {
  return [&grid](const StudyRun& run) {
    const int reached = first_epoch_reaching(grid.target, run.epochs);
    return double(reached > 0 ? reached : grid.epochs + 1);
  };
}

inline std::string fixed(double value, int decimals) {
  if (!std::isfinite(value)) return "—";
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

inline std::string mean_sd(const std::vector<double>& values, int decimals) {
  return fixed(mean(values), decimals) + " ± " + fixed(standard_deviation(values), decimals);
}

// The optimizer's value minus its base's additive rule's, paired run by run: "Δ [low, high]".
inline std::string difference_text(const std::vector<double>& values, const std::vector<double>& additive,
                                   int decimals) {
  const Interval d = paired_difference(values, additive);
  if (!std::isfinite(d.centre)) return "—";
  return fixed(d.centre, decimals) + " [" + fixed(d.centre - d.half_width, decimals) + ", " +
         fixed(d.centre + d.half_width, decimals) + "]";
}

inline std::string multiplier_name(double multiplier) {
  if (multiplier < 1.0) return "1/" + format("%.0f", 1.0 / multiplier);
  return format("%g", multiplier);
}

inline std::string axis_value_name(const StudyGrid& grid, Axis axis, double value) {
  if (axis == Axis::lr_multiplier) return "lr ×" + multiplier_name(value);
  if (axis == Axis::init_scale) return "init ×" + format("%g", value);
  return grid.architecture.value_name(int(value));
}

inline std::vector<double> axis_values(const StudyGrid& grid, Axis axis) {
  if (axis == Axis::lr_multiplier) return grid.lr_multipliers;
  if (axis == Axis::init_scale) return grid.init_scales;
  return std::vector<double>(grid.architecture.values.begin(), grid.architecture.values.end());
}

// Acceleration at the chosen rates, over the runs that `keep` passes among those at
// multiplier 1: epochs to the target, the loss after the first and the last epoch, and the
// final accuracy; mean ± sd, and the paired difference against the additive rule.
inline void print_acceleration(std::ostream& out, const std::vector<StudyRun>& runs, const StudyGrid& grid,
                               const std::function<bool(const StudyCell&)>& keep) {
  const auto at_chosen_rate = [&keep](const StudyCell& cell) {
    return cell.lr_multiplier == reference_multiplier && keep(cell);
  };
  const std::array<std::pair<std::string, Metric>, 4> metrics{{
      {"epochs to " + format("%g", 100.0 * grid.target) + "%", epochs_to_target(grid)},
      {"loss after epoch 1", loss_after(1)},
      {"loss after epoch " + std::to_string(grid.epochs), loss_after(grid.epochs)},
      {"test accuracy (%)", final_accuracy},
  }};
  const std::array<int, 4> decimals{2, 4, 4, 2};
  out << "| optimizer | n |";
  for (const auto& metric : metrics) out << ' ' << metric.first << " | Δ vs additive [95% CI] |";
  out << "\n|---|--:|";
  for (std::size_t k = 0; k < metrics.size(); ++k) out << "--:|--:|";
  out << '\n';
  for (const OptimizerSpec& spec : grid.optimizers) {
    const auto mine = runs_of(runs, spec, at_chosen_rate);
    const auto additive = runs_of(runs, {spec.base, "additive"}, at_chosen_rate);
    out << "| " << display_name(spec) << " | " << mine.size() << " |";
    for (std::size_t k = 0; k < metrics.size(); ++k) {
      const std::vector<double> values = measure(mine, metrics[k].second);
      out << ' ' << mean_sd(values, decimals[k]) << " | "
          << (spec.rule == "additive" ? "—" : difference_text(values, measure(additive, metrics[k].second),
                                                               decimals[k]))
          << " |";
    }
    out << '\n';
  }
}

// The training loss after each epoch at the chosen rate in the demo's configuration.
inline void print_loss_curves(std::ostream& out, const std::vector<StudyRun>& runs, const StudyGrid& grid) {
  out << "| optimizer |";
  for (int epoch = 1; epoch <= grid.epochs; ++epoch) out << " ep " << epoch << " |";
  out << "\n|---|";
  for (int epoch = 1; epoch <= grid.epochs; ++epoch) out << "--:|";
  out << '\n';
  for (const OptimizerSpec& spec : grid.optimizers) {
    const auto mine = runs_of(runs, spec, [&grid](const StudyCell& cell) { return at_reference(grid, cell); });
    out << "| " << display_name(spec) << " |";
    for (int epoch = 1; epoch <= grid.epochs; ++epoch) out << ' ' << mean_sd(measure(mine, loss_after(epoch)), 3) << " |";
    out << '\n';
  }
}

// Sensitivity along one axis, the other two held at the demo's configuration: the final
// accuracy at each value of the axis; per seed, the spread (best − worst) and the worst of
// them, as mean ± sd over the seeds with the paired difference against the additive rule;
// and the diverged runs among these.
inline void print_sensitivity(std::ostream& out, const std::vector<StudyRun>& runs, const StudyGrid& grid, Axis axis) {
  const std::vector<double> values = axis_values(grid, axis);
  out << "| optimizer |";
  for (double value : values) out << ' ' << axis_value_name(grid, axis, value) << " |";
  out << " spread | Δ spread vs additive [95% CI] | worst | Δ worst vs additive [95% CI] | diverged |\n|---|";
  for (std::size_t k = 0; k < values.size() + 5; ++k) out << "--:|";
  out << '\n';
  // Per seed: the spread and the worst accuracy along the axis, seeds in grid order.
  const auto per_seed = [&](const OptimizerSpec& spec, bool spread) {
    std::vector<double> result;
    for (unsigned seed : grid.seeds) {
      const auto along = runs_of(runs, spec, [&](const StudyCell& cell) {
        for (Axis other : {Axis::lr_multiplier, Axis::init_scale, Axis::architecture}) {
          if (other != axis && coordinate(cell, other) != reference(grid, other)) return false;
        }
        return cell.seed == seed;
      });
      const std::vector<double> accuracies = measure(along, final_accuracy);
      const auto [worst, best] = std::minmax_element(accuracies.begin(), accuracies.end());
      result.push_back(spread ? *best - *worst : *worst);
    }
    return result;
  };
  for (const OptimizerSpec& spec : grid.optimizers) {
    out << "| " << display_name(spec) << " |";
    int diverged = 0, total = 0;
    for (double value : values) {
      const auto at_value = runs_of(runs, spec, [&](const StudyCell& cell) {
        for (Axis other : {Axis::lr_multiplier, Axis::init_scale, Axis::architecture}) {
          if (coordinate(cell, other) != (other == axis ? value : reference(grid, other))) return false;
        }
        return true;
      });
      for (const StudyRun* run : at_value) diverged += run->diverged;
      total += int(at_value.size());
      out << ' ' << mean_sd(measure(at_value, final_accuracy), 2) << " |";
    }
    const OptimizerSpec additive{spec.base, "additive"};
    for (bool spread : {true, false}) {
      const std::vector<double> mine = per_seed(spec, spread);
      out << ' ' << mean_sd(mine, 2) << " | "
          << (spec.rule == "additive" ? "—" : difference_text(mine, per_seed(additive, spread), 2)) << " |";
    }
    out << ' ' << diverged << '/' << total << " |\n";
  }
}

// Diverged runs of each optimizer at each multiplier, over every seed, scale and architecture.
inline void print_divergence(std::ostream& out, const std::vector<StudyRun>& runs, const StudyGrid& grid) {
  out << "| optimizer |";
  for (double multiplier : grid.lr_multipliers) out << " lr ×" << multiplier_name(multiplier) << " |";
  out << " all |\n|---|";
  for (std::size_t k = 0; k <= grid.lr_multipliers.size(); ++k) out << "--:|";
  out << '\n';
  for (const OptimizerSpec& spec : grid.optimizers) {
    out << "| " << display_name(spec) << " |";
    int all = 0, all_total = 0;
    for (double multiplier : grid.lr_multipliers) {
      const auto at = runs_of(runs, spec, [multiplier](const StudyCell& cell) { return cell.lr_multiplier == multiplier; });
      int diverged = 0;
      for (const StudyRun* run : at) diverged += run->diverged;
      out << ' ' << diverged << '/' << at.size() << " |";
      all += diverged;
      all_total += int(at.size());
    }
    out << ' ' << all << '/' << all_total << " |\n";
  }
}

inline void print_study_tables(std::ostream& out, const std::vector<StudyRun>& runs, const StudyGrid& grid) {
  const ArchitectureAxis& architecture = grid.architecture;
  const std::string seeds = std::to_string(grid.seeds.size()) + " seeds";
  const std::string reference_architecture = architecture.value_name(architecture.reference);
  out << "### Acceleration at the chosen learning rates (init ×1, " << reference_architecture << "; " << seeds
      << ")\n\n";
  print_acceleration(out, runs, grid, [&architecture](const StudyCell& cell) {
    return cell.init_scale == reference_scale && cell.architecture == architecture.reference;
  });
  out << "\n### Acceleration at the chosen learning rates, every init scale and " << architecture.noun << " ("
      << seeds << " × " << grid.init_scales.size() << " scales × " << architecture.values.size() << ' '
      << architecture.noun << "s, paired)\n\n";
  print_acceleration(out, runs, grid, [](const StudyCell&) { return true; });
  out << "\n### Training loss after each epoch (chosen rates, init ×1, " << reference_architecture
      << "; mean ± sd over " << seeds << ")\n\n";
  print_loss_curves(out, runs, grid);
  out << "\n### Sensitivity to the learning rate (init ×1, " << reference_architecture << "; test accuracy %)\n\n";
  print_sensitivity(out, runs, grid, Axis::lr_multiplier);
  out << "\n### Sensitivity to the initialization (chosen rates, " << reference_architecture
      << "; test accuracy %)\n\n";
  print_sensitivity(out, runs, grid, Axis::init_scale);
  out << "\n### Sensitivity to the architecture (chosen rates, init ×1; test accuracy %)\n\n";
  print_sensitivity(out, runs, grid, Axis::architecture);
  out << "\n### Diverged runs over the whole grid (every seed, scale and " << architecture.noun << ")\n\n";
  print_divergence(out, runs, grid);
}

}  // namespace demo
