// CUDA kernels of grpo_loss. Rows: one thread block per row (blocks stride over rows, 64-bit
// offsets) makes the row's partial sums with a block reduction and writes the per-token gradient
// coefficient; sequence-level ratios first block-reduce the row's masked log-ratio. Finish: one
// block turns the N row partials into the loss, the metrics and the per-row weights alpha_b.
// Backward: coef *= grad_output * alpha_b, in place (grid-stride).
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "common/dtypes.h"
#include "common/registry.h"
#include "grpo_loss/grpo_loss_math.h"

namespace harmo {
namespace grpo {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int64_t kMaxBlocks = 65535;
constexpr int kSums = kRowSlots + 1;  // the row slots plus sum m * dL/dr

// Sums K values over the block; every thread gets the totals.
template <class V, int K>
__device__ void block_sum(V (&v)[K]) {
  __shared__ V partial[K][kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int k = 0; k < K; ++k) {
    for (int offset = 16; offset > 0; offset >>= 1) v[k] += __shfl_xor_sync(0xffffffffu, v[k], offset);
    if (lane == 0) partial[k][warp] = v[k];
  }
  __syncthreads();
#pragma unroll
  for (int k = 0; k < K; ++k) {
    V total = 0;
    for (int w = 0; w < kWarps; ++w) total += partial[k][w];
    v[k] = total;
  }
  __syncthreads();
}

struct RowArgs : GrpoArgs {
  float* partials;  // (N, kRowSlots)
};

template <class TL, class TM>
__global__ void rows_kernel(RowArgs a) {
  const int64_t T = a.T;
  for (int64_t b = blockIdx.x; b < a.N; b += gridDim.x) {
    const auto [lp, od, rf, mk, adv, w, coef] = grpo_row<TL, TM>(a, b);

    float seq_r = 1.0f;
    if (a.sequence) {
      float pre[2] = {0.0f, 0.0f};
      for (int64_t t = threadIdx.x; t < T; t += blockDim.x) {
        const float m = mask_at(mk, t);
        pre[0] += m != 0.0f ? m * (load_at(lp, t) - load_at(od, t)) : 0.0f;
        pre[1] += m;
      }
      block_sum(pre);
      seq_r = exp_f32(pre[0] / (pre[1] > 1.0f ? pre[1] : 1.0f));
    }
    float s[kSums] = {};
    for (int64_t t = threadIdx.x; t < T; t += blockDim.x) {
      const float m = mask_at(mk, t);
      const bool on = m != 0.0f;
      const float x = load_at(lp, t);
      const float A = adv[a.adv_per_token ? t : 0];
      const float wt = w ? w[a.w_per_token ? t : 0] : 1.0f;
      const float r = a.sequence ? seq_r : exp_f32(on ? x - load_at(od, t) : 0.0f);
      const float d = (rf && on) ? load_at(rf, t) - x : 0.0f;
      const GrpoToken k = grpo_token(r, A, wt, d, a.params);
      s[kRowLoss] += m * k.loss;
      s[kRowCount] += m;
      s[kRowKl] += m * k.kl;
      s[kRowClipLow] += m * k.clip_low;
      s[kRowClipHigh] += m * k.clip_high;
      s[kRowRatio] += m * r;
      s[kRowBadAdv] += A - A == 0.0f ? 0.0f : 1.0f;
      s[kRowBadWeight] += wt - wt == 0.0f ? 0.0f : 1.0f;
      s[kRowSlots] += m * k.dl_dr;
      if (coef) store_at(coef, t, m * (a.sequence ? k.dl_dlogp : mul_or_zero(k.dl_dr, r) + k.dl_dlogp));
    }
    block_sum(s);
    if (a.sequence && coef) {  // every masked token moves the shared ratio; each thread revisits its own tokens
      const float c = mul_or_zero(s[kRowSlots], seq_r) / (s[kRowCount] > 1.0f ? s[kRowCount] : 1.0f);
      for (int64_t t = threadIdx.x; t < T; t += blockDim.x) {
        const float m = mask_at(mk, t);
        store_at(coef, t, m != 0.0f ? load_at(coef, t) + m * c : 0.0f);
      }
    }
    if (threadIdx.x == 0) {
      for (int k = 0; k < kRowSlots; ++k) a.partials[b * kRowSlots + k] = s[k];
    }
    __syncthreads();
  }
}

__global__ void finish_kernel(const float* partials, int64_t N, AggPlan plan, float* out_loss, float* out_stats,
                              float* row_scale) {
  double count[2] = {0.0, 0.0};  // sum of the mask, non-empty rows
  for (int64_t b = threadIdx.x; b < N; b += blockDim.x) {
    const float c = partials[b * kRowSlots + kRowCount];
    count[0] += c;
    count[1] += c > 0.0f ? 1.0 : 0.0;
  }
  block_sum(count);
  const AggCounts counts{static_cast<float>(count[0]), static_cast<float>(count[1])};
  double sums[kOutSlots] = {};
  for (int64_t b = threadIdx.x; b < N; b += blockDim.x) {
    row_scale[b] = add_row_to_outputs(partials + b * kRowSlots, plan, counts, sums);
  }
  block_sum(sums);
  if (threadIdx.x == 0) write_outputs(sums, count[0], out_loss, out_stats);
}

template <class TL>
__global__ void scale_kernel(TL* coef, const float* row_scale, const float* grad_output, int64_t N, int64_t T) {
  const float g = *grad_output;
  const int64_t n = N * T;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    store_at(coef, i, load_at(coef, i) * (g * row_scale[i / T]));
}

void check(cudaError_t err) {
  if (err != cudaSuccess) throw std::runtime_error(std::string("grpo_loss (cuda): ") + cudaGetErrorString(err));
}

template <class TL>
void launch_rows(int mask_code, const RowArgs& a, cudaStream_t s) {
  const int blocks = static_cast<int>(std::min<int64_t>(a.N, kMaxBlocks));
  switch (static_cast<DType>(mask_code)) {
    case DType::b8: rows_kernel<TL, uint8_t><<<blocks, kThreads, 0, s>>>(a); break;
    case DType::i32: rows_kernel<TL, int32_t><<<blocks, kThreads, 0, s>>>(a); break;
    case DType::i64: rows_kernel<TL, int64_t><<<blocks, kThreads, 0, s>>>(a); break;
    case DType::f32: rows_kernel<TL, float><<<blocks, kThreads, 0, s>>>(a); break;
    case DType::f16: rows_kernel<TL, f16_t><<<blocks, kThreads, 0, s>>>(a); break;
    case DType::bf16: rows_kernel<TL, bf16_t><<<blocks, kThreads, 0, s>>>(a); break;
    default: throw std::invalid_argument("grpo_loss: unsupported mask dtype code");
  }
}

// Same contract as the CPU grpo_loss_fwd, plus a (N, kRowSlots) fp32 scratch `partials`. Non-finite
// advantages/weights are checked by the caller (reading a flag back would synchronise).
void forward(int64_t N, int64_t T, std::uintptr_t logp, std::uintptr_t old, std::uintptr_t ref, std::uintptr_t mask,
             int mask_code, std::uintptr_t adv, bool adv_per_token, std::uintptr_t w, bool w_per_token,
             std::uintptr_t coef, std::uintptr_t out_loss, std::uintptr_t out_stats, std::uintptr_t row_scale,
             std::uintptr_t partials, int dtype, float clip_lo, float clip_hi, float delta, float beta,
             int kl_estimator, float kl_clamp_d, float kl_clamp_v, bool bias_corrected, bool sequence, float agg_base, bool agg_per_row_count,
             bool agg_total_count, bool agg_nonempty_rows, std::uintptr_t stream) {
  auto s = reinterpret_cast<cudaStream_t>(stream);
  RowArgs a{grpo_args(N, T, logp, old, ref, mask, adv, adv_per_token, w, w_per_token, coef, sequence,
                      GrpoParams{clip_lo, clip_hi, delta, beta, ref != 0, bias_corrected, kl_estimator, kl_clamp_d, kl_clamp_v}),
            as_ptr<float>(partials)};
  if (N > 0) {
    check(cudaMemsetAsync(as_ptr<void>(partials), 0, static_cast<size_t>(N) * kRowSlots * sizeof(float), s));
    if (T > 0) HARMO_DISPATCH_FLOATING(dtype, scalar_t, [&] { launch_rows<scalar_t>(mask_code, a, s); });
  }
  const AggPlan plan{agg_base, agg_per_row_count, agg_total_count, agg_nonempty_rows};
  finish_kernel<<<1, kThreads, 0, s>>>(as_ptr<const float>(partials), N, plan, as_ptr<float>(out_loss),
                                       as_ptr<float>(out_stats), as_ptr<float>(row_scale));
  check(cudaGetLastError());
}

void backward(std::uintptr_t coef, std::uintptr_t row_scale, std::uintptr_t grad_output, int64_t N, int64_t T,
              int dtype, std::uintptr_t stream) {
  if (N * T == 0) return;
  auto s = reinterpret_cast<cudaStream_t>(stream);
  const int blocks = static_cast<int>(std::min<int64_t>((N * T + kThreads - 1) / kThreads, kMaxBlocks));
  HARMO_DISPATCH_FLOATING(dtype, scalar_t, [&] {
    scale_kernel<scalar_t><<<blocks, kThreads, 0, s>>>(as_ptr<scalar_t>(coef), as_ptr<const float>(row_scale),
                                                       as_ptr<const float>(grad_output), N, T);
  });
  check(cudaGetLastError());
}

}  // namespace
}  // namespace grpo
}  // namespace harmo

HARMO_BIND(grpo_loss_cuda) {
  namespace py = pybind11;
  m.def("grpo_loss_fwd", &harmo::grpo::forward, py::call_guard<py::gil_scoped_release>(),
        "CUDA twin of the CPU grpo_loss_fwd (plus an (N, grpo row slots) fp32 scratch `partials`); `stream` is "
        "the raw cudaStream_t",
        py::kw_only(), py::arg("n"), py::arg("t"), py::arg("logp"), py::arg("old"), py::arg("ref"),
        py::arg("mask"), py::arg("mask_dtype"), py::arg("adv"), py::arg("adv_per_token"), py::arg("w"),
        py::arg("w_per_token"), py::arg("coef"), py::arg("out_loss"), py::arg("out_stats"), py::arg("row_scale"), py::arg("partials"),
        py::arg("dtype"), py::arg("clip_lo"), py::arg("clip_hi"), py::arg("delta"), py::arg("beta"),
        py::arg("kl_estimator"), py::arg("kl_clamp_d"), py::arg("kl_clamp_v"), py::arg("bias_corrected"), py::arg("sequence"), py::arg("agg_base"),
        py::arg("agg_per_row_count"), py::arg("agg_total_count"), py::arg("agg_nonempty_rows"), py::arg("stream"));
  m.def("grpo_loss_bwd", &harmo::grpo::backward, py::call_guard<py::gil_scoped_release>(),
        "coef *= grad_output * row_scale[b], in place; `stream` is the raw cudaStream_t", py::kw_only(), py::arg("coef"), py::arg("row_scale"), py::arg("grad_output"), py::arg("n"), py::arg("t"),
        py::arg("dtype"),
        py::arg("stream"));
  m.attr("grpo_row_slot_codes") = harmo::code_table(harmo::kGrpoRowSlotCodes);
  m.attr("grpo_bad_input_codes") = harmo::code_table(harmo::kGrpoBadInputCodes);
}
