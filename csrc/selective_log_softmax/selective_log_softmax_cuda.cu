// CUDA kernels of selective log-softmax: one thread block per row on a flattened 1-D grid that
// strides over rows (no 65,535 grid-dimension limit, any row count), 64-bit offsets throughout.
// Forward: each thread keeps online (max, sum-exp, shifted sum) statistics over a strided slice of
// the row, then the block merges them with warp shuffles. Backward: each thread recomputes p_v
// from the saved lse and writes the gradient in the logits' dtype (in place if grad == logits).
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "common/dtypes.h"
#include "common/registry.h"
#include "selective_log_softmax/selective_log_softmax_math.h"

namespace harmo {
namespace sls {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int64_t kMaxBlocks = 1 << 20;  // blocks stride over rows beyond this

__device__ Stats warp_merge(Stats a) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    const Stats b{__shfl_xor_sync(0xffffffffu, a.m, offset), __shfl_xor_sync(0xffffffffu, a.s, offset),
                  __shfl_xor_sync(0xffffffffu, a.t, offset)};
    a = stats_merge(a, b);
  }
  return a;
}

// Every thread of the block gets the merged statistics.
__device__ Stats block_merge(Stats a) {
  __shared__ Stats partial[kWarps];
  __shared__ Stats result;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  a = warp_merge(a);
  if (lane == 0) partial[warp] = a;
  __syncthreads();
  if (warp == 0) {
    Stats b = lane < kWarps ? partial[lane] : stats_empty();
    b = warp_merge(b);
    if (lane == 0) result = b;
  }
  __syncthreads();
  const Stats out = result;
  __syncthreads();  // the next row may overwrite `partial` / `result`
  return out;
}

template <class T>
__global__ void forward_kernel(const T* __restrict__ logits, int64_t rows, int64_t vocab, RowLayout layout,
                               const int64_t* __restrict__ index, float inv_tau, float* __restrict__ logp,
                               float* __restrict__ lse_out, float* __restrict__ entropy) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = logits + row_offset(r, layout);
    Stats st = stats_empty();
    for (int64_t v = threadIdx.x; v < vocab; v += kThreads) st = stats_push(st, to_float(row[v]) * inv_tau);
    st = block_merge(st);
    if (threadIdx.x == 0) write_row_results(st, row, r, index[r], vocab, inv_tau, lse_out, logp, entropy);
  }
}

template <class T>
__global__ void backward_kernel(const T* logits, int64_t rows, int64_t vocab, RowLayout layout,
                                const int64_t* __restrict__ index, float inv_tau, const float* __restrict__ grad_logp,
                                const float* __restrict__ grad_entropy, const float* __restrict__ lse,
                                const float* __restrict__ entropy, T* grad, RowLayout grad_layout) {
  // logits and grad may alias (in-place backward): no __restrict__ on them; each element is read
  // and then written by the same thread.
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = logits + row_offset(r, layout);
    T* out = grad + row_offset(r, grad_layout);
    const int64_t y = index[r];
    const float l = lse[r];
    const GradCoef c = grad_coef(grad_logp ? grad_logp[r] : 0.0f, grad_entropy ? grad_entropy[r] : 0.0f, l,
                                 grad_entropy ? entropy[r] : 0.0f, inv_tau);
    for (int64_t v = threadIdx.x; v < vocab; v += kThreads) {
      const float x = to_float(row[v]) * inv_tau;
      out[v] = from_float<T>(grad_logit(x, l, c) + (v == y ? c.target : 0.0f));
    }
  }
}

void check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

unsigned grid_for(int64_t rows) { return static_cast<unsigned>(std::max<int64_t>(1, std::min(rows, kMaxBlocks))); }

void forward(std::uintptr_t logits, int dtype, int64_t rows, int64_t vocab, int64_t inner, int64_t stride_outer,
             int64_t stride_inner, std::uintptr_t index, float inv_tau, std::uintptr_t logp, std::uintptr_t lse,
             std::uintptr_t entropy, std::uintptr_t stream) {
  if (rows < 0 || vocab <= 0 || inner <= 0) throw std::invalid_argument("selective_log_softmax: bad sizes");
  if (rows == 0) return;
  const RowLayout layout{inner, stride_outer, stride_inner};
  auto s = reinterpret_cast<cudaStream_t>(stream);
  HARMO_DISPATCH_FLOATING(dtype, scalar_t, [&] {
    forward_kernel<scalar_t><<<grid_for(rows), kThreads, 0, s>>>(
        as_ptr<const scalar_t>(logits), rows, vocab, layout, as_ptr<const int64_t>(index), inv_tau,
        as_ptr<float>(logp), as_ptr<float>(lse), entropy ? as_ptr<float>(entropy) : nullptr);
  });
  check_launch("selective_log_softmax forward");
}

void backward(std::uintptr_t logits, int dtype, int64_t rows, int64_t vocab, int64_t inner, int64_t stride_outer,
              int64_t stride_inner, std::uintptr_t index, float inv_tau, std::uintptr_t grad_logp,
              std::uintptr_t grad_entropy, std::uintptr_t lse, std::uintptr_t entropy, std::uintptr_t grad,
              int64_t grad_inner, int64_t grad_stride_outer, int64_t grad_stride_inner, std::uintptr_t stream) {
  if (rows < 0 || vocab <= 0 || inner <= 0 || grad_inner <= 0)
    throw std::invalid_argument("selective_log_softmax: bad sizes");
  if (grad_entropy && !entropy)
    throw std::invalid_argument("selective_log_softmax: an entropy gradient needs the saved entropy");
  if (rows == 0) return;
  const RowLayout layout{inner, stride_outer, stride_inner};
  const RowLayout grad_layout{grad_inner, grad_stride_outer, grad_stride_inner};
  auto s = reinterpret_cast<cudaStream_t>(stream);
  HARMO_DISPATCH_FLOATING(dtype, scalar_t, [&] {
    backward_kernel<scalar_t><<<grid_for(rows), kThreads, 0, s>>>(
        as_ptr<const scalar_t>(logits), rows, vocab, layout, as_ptr<const int64_t>(index), inv_tau,
        grad_logp ? as_ptr<const float>(grad_logp) : nullptr,
        grad_entropy ? as_ptr<const float>(grad_entropy) : nullptr, as_ptr<const float>(lse),
        entropy ? as_ptr<const float>(entropy) : nullptr, as_ptr<scalar_t>(grad), grad_layout);
  });
  check_launch("selective_log_softmax backward");
}

}  // namespace
}  // namespace sls
}  // namespace harmo

HARMO_BIND(selective_log_softmax_cuda) {
  namespace py = pybind11;
  m.def("selective_log_softmax_forward", &harmo::sls::forward, py::call_guard<py::gil_scoped_release>(),
        "CUDA twin of the CPU selective_log_softmax_forward; `stream` is the raw cudaStream_t",
        py::kw_only(), py::arg("logits"), py::arg("dtype"), py::arg("rows"), py::arg("vocab"), py::arg("inner"),
        py::arg("stride_outer"), py::arg("stride_inner"), py::arg("index"), py::arg("inv_tau"), py::arg("logp"),
        py::arg("lse"), py::arg("entropy"), py::arg("stream"));
  m.def("selective_log_softmax_backward", &harmo::sls::backward, py::call_guard<py::gil_scoped_release>(),
        "CUDA twin of the CPU selective_log_softmax_backward; `stream` is the raw cudaStream_t",
        py::kw_only(), py::arg("logits"), py::arg("dtype"), py::arg("rows"), py::arg("vocab"), py::arg("inner"),
        py::arg("stride_outer"), py::arg("stride_inner"), py::arg("index"), py::arg("inv_tau"), py::arg("grad_logp"),
        py::arg("grad_entropy"), py::arg("lse"), py::arg("entropy"), py::arg("grad"), py::arg("grad_inner"),
        py::arg("grad_stride_outer"), py::arg("grad_stride_inner"), py::arg("stream"));
}
