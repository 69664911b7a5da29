// The extension module multopt._multopt: one step of a torch.optim optimizer's parameters over
// the state in its opt.state (include/multopt/adapters/torch_step.hpp), and multopt's schedules,
// for multopt/torch.py. It holds nothing between calls.
#include <multopt/adapters/torch_step.hpp>

#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/csrc/utils/pybind.h>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace py = pybind11;
using multopt::NamedValues;
using multopt::adapters::TorchParamStep;

namespace {

// A state entry as the step reads it: a tensor as it is, a number as a 0-dim double tensor
// (which the step changes in place: `converted` names it, for the dict to get it), None as no
// entry (torch.optim.SGD's momentum_buffer without momentum) unless it must be a number (step,
// mu_product); anything else is refused, naming the parameter.
void read_entry(TorchParamStep& p, std::string_view name, const py::handle& value, bool number,
                std::vector<std::string>& converted) {
  if (value.is_none() && !number) return;
  if (THPVariable_Check(value.ptr())) {
    p.state.set(name, THPVariable_Unpack(value.ptr()));
  } else if (py::isinstance<py::int_>(value) || py::isinstance<py::float_>(value)) {
    p.state.set(name, at::scalar_tensor(value.cast<double>(), at::kDouble));
    converted.emplace_back(name);
  } else {
    throw std::invalid_argument("multopt: parameter " + std::to_string(p.index) + " of group " +
                                std::to_string(p.group) + " has " + std::string(name) + " = " +
                                std::string(py::repr(value)) + " in its state, which is neither a tensor nor a number");
  }
}

// A state entry's name, read in place (a name that is not a str is none of multopt's).
std::string_view name_of(PyObject* key) {
  Py_ssize_t size = 0;
  const char* text = PyUnicode_Check(key) ? PyUnicode_AsUTF8AndSize(key, &size) : nullptr;
  if (!text) {
    PyErr_Clear();
    return {};
  }
  return {text, std::size_t(size)};
}

// A state entry's name as one str object shared by every parameter's state, as torch.optim's
// literal names are: a step then reads one key object for all its parameters, not one each.
py::str interned(const std::string& name) {
  PyObject* text = PyUnicode_InternFromString(name.c_str());
  if (!text) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(text);
}

using PyGroups = std::vector<std::pair<py::list, NamedValues>>;

// The step's options from the optimizer's own settings: storage (rounding, rounding_seed as
// text), ema_decay, and a loss scaler's grad_scale, with which a non-finite gradient skips the
// whole step (skip_non_finite).
multopt::StepOptions options_of(const multopt::Settings& storage, std::optional<double> ema_decay,
                                double grad_scale = 1.0, bool skip_non_finite = false, int threads = 1) {
  multopt::StepOptions options;
  options.storage = multopt::storage_mode(storage);
  options.ema_decay = ema_decay;
  options.grad_scale = grad_scale;
  if (skip_non_finite) options.non_finite_policy = multopt::NonFinitePolicy::skip_all;
  options.threading.threads = threads;
  return options;
}

// One call's parameters with their state as `state` (a torch.optim optimizer's opt.state) holds
// it, read without making entries (a refused call adds none); `keys`: each as a Python object.
// A call keeps one from call to call for its room: release() lets go of tensors and objects.
struct Gathered {
  std::vector<NamedValues> settings;
  std::vector<TorchParamStep> params;
  std::vector<py::object> keys;
  std::vector<std::vector<std::string>> converted;  // per parameter: its entries that were numbers

  void release() {
    settings.clear();
    for (TorchParamStep& p : params) {
      p.param.reset();
      p.state.clear();
      p.updates.clear();
    }
    keys.clear();
  }
};
// With `cpu_only`, it stops at a parameter off the CPU and returns false, with `call` to be
// released.
bool gather(const std::string& base, const std::string& rule, const PyGroups& groups, const py::dict& state,
            bool with_gradient_only, bool cpu_only, Gathered& call) {
  const std::vector<std::string> numbers = [&] {
    std::vector<std::string> names = multopt::make_named_step<double>(base, rule)->scalar_names();
    names.push_back("step");
    return names;
  }();
  std::size_t count = 0;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    call.settings.push_back(multopt::adapters::torch_settings(rule, groups[g].second));
    const py::list& list = groups[g].first;
    for (std::size_t k = 0; k < list.size(); ++k) {
      PyObject* key = PyList_GET_ITEM(list.ptr(), Py_ssize_t(k));
      if (!THPVariable_Check(key)) throw std::invalid_argument("multopt: group " + std::to_string(g) + " has " +
                                                               std::string(py::repr(key)) + ", which is not a tensor");
      const at::Tensor& param = THPVariable_Unpack(key);
      if (cpu_only && !param.device().is_cpu()) return false;
      if (with_gradient_only && !param.grad().defined()) continue;
      if (count == call.params.size()) {
        call.params.emplace_back();
        call.converted.emplace_back();
      }
      TorchParamStep& p = call.params[count];
      std::vector<std::string>& converted = call.converted[count];
      ++count;
      p.param = param;
      p.group = g;
      p.index = k;
      converted.clear();
      call.keys.push_back(py::reinterpret_borrow<py::object>(key));
      if (PyObject* held = PyDict_GetItemWithError(state.ptr(), key)) {
        if (!PyDict_Check(held)) throw std::invalid_argument("multopt: the state of parameter " + std::to_string(k) +
                                                             " of group " + std::to_string(g) + " is not a dict");
        p.state.reserve(std::size_t(PyDict_Size(held)));
        Py_ssize_t place = 0;
        PyObject *entry = nullptr, *value = nullptr;
        while (PyDict_Next(held, &place, &entry, &value)) {
          const std::string_view name = name_of(entry);
          if (name.empty()) continue;
          read_entry(p, name, value, std::find(numbers.begin(), numbers.end(), name) != numbers.end(), converted);
        }
      } else if (PyErr_Occurred()) {
        throw py::error_already_set();
      }
    }
  }
  call.params.resize(count);
  call.converted.resize(count);
  return true;
}

// groups: [(params, settings by multopt's names)]; state: the optimizer's opt.state. Steps every
// parameter that has a gradient; its state, made at its first step, goes into `state` as a dict
// by torch.optim's names. On an error nothing has changed, state included. Returns whether a
// non-finite gradient skipped the step (skip_non_finite), which then changed nothing either;
// with `cpu_only`, None where a parameter is off the CPU, having changed nothing (the caller
// steps those elsewhere; without it, the step refuses them).
std::optional<bool> step(const std::string& base, const std::string& rule, const multopt::Settings& storage,
                         const PyGroups& groups, py::dict state, int threads, std::optional<double> ema_decay,
                         double grad_scale, bool skip_non_finite, bool cpu_only) {
  const multopt::StepOptions options = options_of(storage, ema_decay, grad_scale, skip_non_finite, threads);
  // Kept from call to call for its room, as step_torch_params keeps its lists; it lets go of its
  // tensors and Python objects when the call ends, however it ends.
  thread_local Gathered call;
  struct Release {
    Gathered& call;
    ~Release() { call.release(); }
  } const release{call};
  if (!gather(base, rule, groups, state, true, cpu_only, call)) return std::nullopt;
  bool skipped = false;
  {
    py::gil_scoped_release unlocked;
    skipped = multopt::adapters::step_torch_params(base, rule, options, call.settings, call.params);
  }
  for (std::size_t k = 0; k < call.params.size(); ++k) {
    const TorchParamStep& p = call.params[k];
    if (p.updates.empty() && call.converted[k].empty()) continue;
    py::object entry = state.attr("setdefault")(call.keys[k], py::dict());
    for (const std::string& name : call.converted[k]) entry[interned(name)] = *p.state.find(name);
    for (const auto& [name, tensor] : p.updates) entry[interned(name)] = tensor;
  }
  return skipped;
}

}  // namespace

PYBIND11_MODULE(_multopt, m) {
  m.doc() = "multopt's fused optimizer step over torch tensors and their optimizer state (see multopt.torch)";

  m.def("step", &step, py::arg("base"), py::arg("rule"), py::arg("storage"), py::arg("groups"), py::arg("state"),
        py::arg("threads"), py::arg("ema_decay"), py::arg("grad_scale"), py::arg("skip_non_finite"),
        py::arg("cpu_only"));
  // Refuses what a step would refuse of the groups' settings and of the state `state` holds for
  // their parameters (a state_dict about to be loaded); changes nothing.
  m.def(
      "check_states",
      [](const std::string& base, const std::string& rule, const multopt::Settings& storage,
         const PyGroups& groups, py::dict state, std::optional<double> ema_decay) {
        Gathered call;
        gather(base, rule, groups, state, false, false, call);
        multopt::adapters::check_torch_states(base, rule, options_of(storage, ema_decay), call.settings,
                                              std::move(call.params));
      },
      py::arg("base"), py::arg("rule"), py::arg("storage"), py::arg("groups"), py::arg("state"), py::arg("ema_decay"));
  // Refuses a base, rule, group settings (torch's), storage mode, ema_decay or grad_scale the step
  // would refuse.
  m.def(
      "check",
      [](const std::string& base, const std::string& rule, const multopt::Settings& storage,
         const std::vector<NamedValues>& groups, std::optional<double> ema_decay, double grad_scale) {
        std::vector<NamedValues> settings;
        for (const NamedValues& group : groups) settings.push_back(multopt::adapters::torch_settings(rule, group));
        multopt::adapters::check_torch_settings(base, rule, options_of(storage, ema_decay, grad_scale), settings);
      },
      py::arg("base"), py::arg("rule"), py::arg("storage"), py::arg("groups"), py::arg("ema_decay"),
      py::arg("grad_scale") = 1.0);
  m.attr("max_step_count") = multopt::max_step_count;
  // Each setting's range as validate() checks it (validate.hpp's setting_ranges, in its order),
  // which multopt/torch.py checks torch.optim's arguments against with torch.optim's messages:
  // {name: (low, high, high_closed)}, multopt's names.
  m.def("setting_ranges", [] {
    py::dict ranges;
    for (const multopt::SettingRange& setting : multopt::setting_ranges)
      ranges[py::str(setting.name.data(), setting.name.size())] = py::make_tuple(setting.range.low, setting.range.high, setting.range.high_closed);
    return ranges;
  });
  // What the steps of other devices (multopt/_foreach.py) take from the fused step's own rules: a
  // group's settings by multopt's names as the step uses them, and the state a parameter of that
  // group holds, ([(array, initial value)], [(scalar, initial value)]), master weights aside
  // (with `ema`, the moving average of the weights among the arrays).
  m.def("torch_settings", &multopt::adapters::torch_settings, py::arg("rule"), py::arg("values"));
  m.def(
      "state_of",
      [](const std::string& base, const std::string& rule, const NamedValues& settings, bool ema) {
        const auto named = multopt::make_named_step<double>(base, rule);
        std::vector<std::pair<std::string, double>> arrays, scalars;
        for (const multopt::StateArrayInfo& info : named->state_arrays(settings, {}, ema))
          arrays.emplace_back(info.name, info.initial);
        const std::vector<double> initial = named->initial_scalars();
        const std::vector<std::string> names = named->scalar_names();
        for (std::size_t k = 0; k < names.size(); ++k) scalars.emplace_back(names[k], initial[k]);
        return std::make_pair(arrays, scalars);
      },
      py::arg("base"), py::arg("rule"), py::arg("settings"), py::arg("ema"));

  // Per-step factors of lr (lr_schedules.hpp), as callables for torch.optim.lr_scheduler.LambdaLR.
  namespace curves = multopt::curves;
  m.def("linear", &curves::linear, py::arg("start"), py::arg("end"), py::arg("steps"));
  m.def("cosine", &curves::cosine, py::arg("steps"), py::arg("floor") = 0.0);
  m.def("exponential", &curves::exponential, py::arg("gamma"));
  m.def("step_decay", &curves::step_decay, py::arg("step_size"), py::arg("gamma"));
  m.def("warmup_cosine", &curves::warmup_cosine, py::arg("warmup"), py::arg("total"), py::arg("floor") = 0.0,
        py::arg("start") = 0.0);
  // The hybrid rule's mixing weight at an epoch (schedules.hpp's ExponentialMixSchedule).
  m.def(
      "exponential_mix",
      [](double g0, long patience, bool inverse, long epoch) {
        multopt::ExponentialMixSchedule::Params params;
        params.g0 = g0;
        params.patience = patience;
        params.inverse = inverse;
        return multopt::ExponentialMixSchedule(params).mix_at(epoch);
      },
      py::arg("g0"), py::arg("patience"), py::arg("inverse"), py::arg("epoch"));
}
