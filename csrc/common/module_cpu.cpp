// The CPU extension module harmo_fast._C: collects the bindings every *_cpu.cpp registered.
#include "common/registry.h"

#ifdef HARMO_HAS_OPENMP
#include <omp.h>
#endif

PYBIND11_MODULE(_C, m) {
  m.doc() = "harmo_fast compiled CPU kernels (raw pointers in, no torch linkage)";
#ifdef HARMO_HAS_OPENMP
  m.attr("has_openmp") = true;
  m.def("max_threads", [] { return omp_get_max_threads(); });
#else
  m.attr("has_openmp") = false;
  m.def("max_threads", [] { return 1; });
#endif
  m.attr("dtype_codes") = harmo::code_table(harmo::kDTypeCodes);
  for (auto bind : harmo::binders()) bind(m);
}
