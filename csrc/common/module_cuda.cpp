// The CUDA extension module harmo_fast._C_cuda. cudart is linked statically, so importing it on a
// machine without a GPU works; device_count() then reports 0 and the reason.
#include <cuda_runtime.h>

#include "common/registry.h"

PYBIND11_MODULE(_C_cuda, m) {
  m.doc() = "harmo_fast compiled CUDA kernels (raw pointers and streams in, no torch linkage)";
  m.def("device_count", []() -> pybind11::tuple {
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
      cudaGetLastError();  // clear the sticky error so later calls are not poisoned
      return pybind11::make_tuple(0, std::string(cudaGetErrorString(err)));
    }
    return pybind11::make_tuple(static_cast<int>(n), std::string("ok"));
  });
  m.attr("cuda_runtime_version") = CUDART_VERSION;
  m.attr("dtype_codes") = harmo::code_table(harmo::kDTypeCodes);
  for (auto bind : harmo::binders()) bind(m);
}
