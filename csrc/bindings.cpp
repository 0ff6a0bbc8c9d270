// The module gro_fast._C: runs every op's registration (see registry.h) and reports
// which kernels were compiled in.
#include "registry.h"

#ifdef _OPENMP
#include <omp.h>
#endif

PYBIND11_MODULE(_C, m) {
  m.doc() = "gro_fast compiled ops (CPU kernels, and CUDA kernels when built with them)";
#ifdef GRO_FAST_WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
#ifdef _OPENMP
  m.attr("with_openmp") = true;
  m.def("openmp_max_threads", []() { return omp_get_max_threads(); });
#else
  m.attr("with_openmp") = false;
  m.def("openmp_max_threads", []() { return 1; });
#endif
  for (auto fn : gro_fast::binding_registry()) fn(m);
}
