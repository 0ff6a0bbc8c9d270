// Registration of the Python bindings of gro_fast._C.
//
// Each op's host file registers its own functions with GRO_FAST_BINDINGS, so ops can be
// added without touching a central list; bindings.cpp creates the module and runs them.
#pragma once

#include <torch/extension.h>

#include <functional>
#include <vector>

namespace gro_fast {

using BindingFn = void (*)(pybind11::module_&);

inline std::vector<BindingFn>& binding_registry() {
  static std::vector<BindingFn> fns;  // function-local: no static-init-order issue
  return fns;
}

inline int add_bindings(BindingFn fn) {
  binding_registry().push_back(fn);
  return 0;
}

}  // namespace gro_fast

#define GRO_FAST_CONCAT_(a, b) a##b
#define GRO_FAST_CONCAT(a, b) GRO_FAST_CONCAT_(a, b)
// Usage: GRO_FAST_BINDINGS(box_iou) { m.def("box_iou_cpu", &box_iou_cpu, ...); }
#define GRO_FAST_BINDINGS(name)                                                        \
  static void GRO_FAST_CONCAT(gro_fast_bind_, name)(pybind11::module_ & m);            \
  static int GRO_FAST_CONCAT(gro_fast_bind_reg_, name) =                               \
      ::gro_fast::add_bindings(&GRO_FAST_CONCAT(gro_fast_bind_, name));                \
  static void GRO_FAST_CONCAT(gro_fast_bind_, name)(pybind11::module_ & m)
