// The extension module multopt._multopt: the libtorch adapter's TorchSteps
// (include/multopt/adapters/torch_steps.hpp) and multopt's schedules, for multopt/torch.py.
#include <multopt/adapters/torch_steps.hpp>

#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>

#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace py = pybind11;
using multopt::NamedValues;
using multopt::adapters::TorchGroup;
using multopt::adapters::TorchSteps;
using multopt::adapters::TorchTensorState;

namespace {

// Groups as torch.py hands them over: (parameters, settings by multopt's names).
using PyGroups = std::vector<std::pair<std::vector<at::Tensor>, NamedValues>>;

std::vector<TorchGroup> torch_groups(PyGroups groups) {
  std::vector<TorchGroup> converted;
  for (auto& [params, settings] : groups) converted.push_back({std::move(params), std::move(settings)});
  return converted;
}

}  // namespace

PYBIND11_MODULE(_multopt, m) {
  m.doc() = "multopt's fused optimizer steps over torch tensors (see multopt.torch)";

  py::class_<TorchSteps>(m, "Steps")
      .def(py::init<std::string, std::string, multopt::Settings>(), py::arg("base"), py::arg("rule"),
           py::arg("storage") = multopt::Settings{})
      .def_property_readonly("base", &TorchSteps::base)
      .def_property_readonly("rule", &TorchSteps::rule)
      .def_property_readonly("hyperparameter_names", &TorchSteps::hyperparameter_names)
      .def_property_readonly("state_names", &TorchSteps::state_names)
      .def_property_readonly("scalar_state_names", &TorchSteps::scalar_state_names)
      .def("check", [](const TorchSteps& steps, PyGroups groups) { steps.check(torch_groups(std::move(groups))); })
      .def("step",
           [](TorchSteps& steps, PyGroups groups, int threads) {
             auto converted = torch_groups(std::move(groups));
             py::gil_scoped_release release;
             steps.step(converted, threads);
           })
      // None before the parameter's first step, else (steps, {array name: tensor}, {scalar name:
      // value}, master weights or None).
      .def("state_of",
           [](const TorchSteps& steps, const at::Tensor& param) -> py::object {
             const auto state = steps.state_of(param);
             if (!state) return py::none();
             py::dict arrays, scalars;
             for (const auto& [name, array] : state->arrays) arrays[py::str(name)] = array;
             for (const auto& [name, value] : state->scalars) scalars[py::str(name)] = value;
             py::object master = state->master_weights.defined() ? py::cast(state->master_weights) : py::none();
             return py::make_tuple(state->steps, arrays, scalars, master);
           })
      // [(parameter, steps, arrays, scalars, master weights or None)], all checked before any is taken.
      .def("replace_states",
           [](TorchSteps& steps,
              std::vector<std::tuple<at::Tensor, long, std::vector<std::pair<std::string, at::Tensor>>, NamedValues,
                                     std::optional<at::Tensor>>>
                  states) {
             std::vector<std::pair<at::Tensor, TorchTensorState>> converted;
             for (auto& [param, count, arrays, scalars, master] : states)
               converted.emplace_back(param, TorchTensorState{count, std::move(arrays), std::move(scalars),
                                                              master.value_or(at::Tensor())});
             steps.replace_states(std::move(converted));
           });

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
