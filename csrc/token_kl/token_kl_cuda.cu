// CUDA kernels of token_kl: flat grid-stride elementwise passes (64-bit indices), the forward
// writing the fp32 estimator, the backward recomputing the local derivative from (logp, ref).
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "common/dtypes.h"
#include "common/registry.h"
#include "token_kl/token_kl_math.h"

namespace harmo {
namespace tkl {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;

template <class TL, class TR>
__global__ void forward_kernel(const TL* logp, const TR* ref, float* out, int64_t n, KlParams p) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = kl_term(load_at(ref, i) - load_at(logp, i), p).value;
}

template <class TL, class TR>
__global__ void backward_kernel(const float* grad_out, const TL* logp, const TR* ref, TL* grad, int64_t n,
                                KlParams p) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    store_at(grad, i, grad_out[i] * kl_term(load_at(ref, i) - load_at(logp, i), p).dlogp);
}

int blocks_for(int64_t n) { return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, kMaxBlocks)); }

void check(cudaError_t err) {
  if (err != cudaSuccess) throw std::runtime_error(std::string("token_kl (cuda): ") + cudaGetErrorString(err));
}

void forward(std::uintptr_t logp, int logp_dtype, std::uintptr_t ref, int ref_dtype, std::uintptr_t out, int64_t n,
             int estimator, float clamp_d, float clamp_v, std::uintptr_t stream) {
  if (n == 0) return;
  const KlParams p{estimator, clamp_d, clamp_v};
  auto s = reinterpret_cast<cudaStream_t>(stream);
  HARMO_DISPATCH_FLOATING(logp_dtype, tl, [&] {
    HARMO_DISPATCH_FLOATING(ref_dtype, tr, [&] {
      forward_kernel<tl, tr><<<blocks_for(n), kThreads, 0, s>>>(as_ptr<const tl>(logp), as_ptr<const tr>(ref),
                                                                as_ptr<float>(out), n, p);
    });
  });
  check(cudaGetLastError());
}

void backward(std::uintptr_t grad_out, std::uintptr_t logp, int logp_dtype, std::uintptr_t ref, int ref_dtype,
              std::uintptr_t grad, int64_t n, int estimator, float clamp_d, float clamp_v, std::uintptr_t stream) {
  if (n == 0) return;
  const KlParams p{estimator, clamp_d, clamp_v};
  auto s = reinterpret_cast<cudaStream_t>(stream);
  HARMO_DISPATCH_FLOATING(logp_dtype, tl, [&] {
    HARMO_DISPATCH_FLOATING(ref_dtype, tr, [&] {
      backward_kernel<tl, tr><<<blocks_for(n), kThreads, 0, s>>>(
          as_ptr<const float>(grad_out), as_ptr<const tl>(logp), as_ptr<const tr>(ref), as_ptr<tl>(grad), n, p);
    });
  });
  check(cudaGetLastError());
}

}  // namespace
}  // namespace tkl
}  // namespace harmo

HARMO_BIND(token_kl_cuda) {
  namespace py = pybind11;
  m.def("token_kl_fwd", &harmo::tkl::forward, py::call_guard<py::gil_scoped_release>(),
        "CUDA twin of the CPU token_kl_fwd; `stream` is the raw cudaStream_t", py::kw_only(), py::arg("logp"), py::arg("logp_dtype"), py::arg("ref"), py::arg("ref_dtype"), py::arg("out"),
        py::arg("n"), py::arg("estimator"), py::arg("clamp_d"), py::arg("clamp_v"),
        py::arg("stream"));
  m.def("token_kl_bwd", &harmo::tkl::backward, py::call_guard<py::gil_scoped_release>(),
        "CUDA twin of the CPU token_kl_bwd; `stream` is the raw cudaStream_t", py::kw_only(), py::arg("grad_out"), py::arg("logp"), py::arg("logp_dtype"), py::arg("ref"),
        py::arg("ref_dtype"), py::arg("grad"), py::arg("n"), py::arg("estimator"), py::arg("clamp_d"),
        py::arg("clamp_v"), py::arg("stream"));
  m.attr("kl_estimator_codes") = harmo::code_table(harmo::kKlEstimatorCodes);
}
