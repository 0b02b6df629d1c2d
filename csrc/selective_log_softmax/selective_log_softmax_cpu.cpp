// CPU kernels of selective log-softmax: OpenMP over rows, vectorised loops over the vocabulary.
//
// Forward: one pass over memory per row. The row is walked in L1-sized blocks; each block is
// converted to fp32 once into a stack buffer, its max taken, the running statistics rebased when
// the max grows, then its exp-sum added (the block is re-read from L1, not from memory).
// Backward: one pass, p_v recomputed from the saved lse, gradient written in the logits' dtype
// (possibly into the logits buffer itself: each element is read once, then overwritten).
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include "common/dtypes.h"
#include "common/fast_math.h"
#include "common/registry.h"
#include "selective_log_softmax/selective_log_softmax_math.h"

namespace harmo {
namespace sls {
namespace {

constexpr int64_t kBlock = 1024;  // 4 KiB of fp32 per block: stays in L1 with its source
// Below this many logits a call runs on the calling thread: waking a worker costs more than a
// small tile (linear_log_probs calls these kernels once per tile). Above it, OpenMP's static
// schedule gives each thread one contiguous run of rows.
constexpr int64_t kParallelMinElements = int64_t(1) << 18;

template <class T>
void forward_rows(const T* logits, int64_t rows, int64_t vocab, RowLayout layout, const int64_t* index,
                  float inv_tau, float* logp, float* lse_out, float* entropy) {
#pragma omp parallel for schedule(static) if (rows * vocab >= kParallelMinElements)
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = logits + row_offset(r, layout);
    float buf[kBlock];
    Stats st = stats_empty();
    for (int64_t start = 0; start < vocab; start += kBlock) {
      const int64_t n = std::min(kBlock, vocab - start);
      float bmax = -INFINITY;
#pragma omp simd reduction(max : bmax)
      for (int64_t j = 0; j < n; ++j) {
        const float x = load_at(row, start + j) * inv_tau;
        buf[j] = x;
        bmax = std::max(bmax, x);
      }
      if (bmax > st.m) st = stats_rebase(st, bmax);
      if (st.m == -INFINITY) continue;  // everything so far is -inf
      const float m = st.m;
      float s = 0.0f;
      if (entropy) {
        float t = 0.0f;
#pragma omp simd reduction(+ : s, t)
        for (int64_t j = 0; j < n; ++j) {
          const float d = buf[j] - m;
          const float e = exp_fast(d);
          s += e;
          t += e == 0.0f ? 0.0f : e * d;  // a -inf logit contributes 0, not 0 * -inf
        }
        st.t += t;
      } else {
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < n; ++j) s += exp_fast(buf[j] - m);
      }
      st.s += s;
    }
    write_row_results(st, row, r, index[r], vocab, inv_tau, lse_out, logp, entropy);
  }
}

template <class T>
void backward_rows(const T* logits, int64_t rows, int64_t vocab, RowLayout layout, const int64_t* index,
                   float inv_tau, const float* grad_logp, const float* grad_entropy, const float* lse,
                   const float* entropy, T* grad, RowLayout grad_layout) {
#pragma omp parallel for schedule(static) if (rows * vocab >= kParallelMinElements)
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = logits + row_offset(r, layout);
    T* out = grad + row_offset(r, grad_layout);
    const int64_t y = index[r];
    const float l = lse[r];
    const GradCoef c = grad_coef(grad_logp ? grad_logp[r] : 0.0f, grad_entropy ? grad_entropy[r] : 0.0f, l,
                                 grad_entropy ? entropy[r] : 0.0f, inv_tau);
    // The target logit is read before the loop and its term added after it (an int64 compare
    // per logit would cost more than the rest of the loop), so an in-place backward still reads
    // every element before overwriting it. A y outside the row (a vocabulary tile) adds nothing.
    const bool has_target = y >= 0 && y < vocab;
    const float x_y = has_target ? load_at(row, y) * inv_tau : 0.0f;
#pragma omp simd
    for (int64_t v = 0; v < vocab; ++v) store_at(out, v, grad_logit(load_at(row, v) * inv_tau, l, c));
    if (has_target) store_at(out, y, grad_logit(x_y, l, c) + c.target);
  }
}

void check_common(int64_t rows, int64_t vocab, RowLayout layout) {
  if (rows < 0) throw std::invalid_argument("selective_log_softmax: rows must be >= 0");
  if (vocab <= 0) throw std::invalid_argument("selective_log_softmax: vocabulary size must be > 0");
  if (layout.inner <= 0) throw std::invalid_argument("selective_log_softmax: inner row count must be > 0");
}

void forward(std::uintptr_t logits, int dtype, int64_t rows, int64_t vocab, int64_t inner, int64_t stride_outer,
             int64_t stride_inner, std::uintptr_t index, float inv_tau, std::uintptr_t logp, std::uintptr_t lse,
             std::uintptr_t entropy) {
  const RowLayout layout{inner, stride_outer, stride_inner};
  check_common(rows, vocab, layout);
  HARMO_DISPATCH_FLOATING(dtype, scalar_t, [&] {
    forward_rows(as_ptr<const scalar_t>(logits), rows, vocab, layout, as_ptr<const int64_t>(index), inv_tau,
                 as_ptr<float>(logp), as_ptr<float>(lse), entropy ? as_ptr<float>(entropy) : nullptr);
  });
}

void backward(std::uintptr_t logits, int dtype, int64_t rows, int64_t vocab, int64_t inner, int64_t stride_outer,
              int64_t stride_inner, std::uintptr_t index, float inv_tau, std::uintptr_t grad_logp,
              std::uintptr_t grad_entropy, std::uintptr_t lse, std::uintptr_t entropy, std::uintptr_t grad,
              int64_t grad_inner, int64_t grad_stride_outer, int64_t grad_stride_inner) {
  const RowLayout layout{inner, stride_outer, stride_inner};
  const RowLayout grad_layout{grad_inner, grad_stride_outer, grad_stride_inner};
  check_common(rows, vocab, layout);
  check_common(rows, vocab, grad_layout);
  if (grad_entropy && !entropy)
    throw std::invalid_argument("selective_log_softmax: an entropy gradient needs the saved entropy");
  HARMO_DISPATCH_FLOATING(dtype, scalar_t, [&] {
    backward_rows(as_ptr<const scalar_t>(logits), rows, vocab, layout, as_ptr<const int64_t>(index), inv_tau,
                  grad_logp ? as_ptr<const float>(grad_logp) : nullptr,
                  grad_entropy ? as_ptr<const float>(grad_entropy) : nullptr, as_ptr<const float>(lse),
                  entropy ? as_ptr<const float>(entropy) : nullptr, as_ptr<scalar_t>(grad), grad_layout);
  });
}

}  // namespace
}  // namespace sls
}  // namespace harmo

HARMO_BIND(selective_log_softmax) {
  namespace py = pybind11;
  m.def("selective_log_softmax_forward", &harmo::sls::forward, py::call_guard<py::gil_scoped_release>(),
        "logp[r] = x[r, y_r] - logsumexp(x[r]) with x = logits / tau; writes logp, lse and (if its "
        "address is non-zero) the entropy, all fp32 per row",
        py::kw_only(), py::arg("logits"), py::arg("dtype"), py::arg("rows"), py::arg("vocab"), py::arg("inner"),
        py::arg("stride_outer"), py::arg("stride_inner"), py::arg("index"), py::arg("inv_tau"), py::arg("logp"),
        py::arg("lse"), py::arg("entropy"));
  m.def("selective_log_softmax_backward", &harmo::sls::backward, py::call_guard<py::gil_scoped_release>(),
        "d loss / d logits from fp32 per-row gradients of logp and entropy (0 address = no gradient), "
        "written in the logits' dtype into grad (which may be the logits buffer itself)",
        py::kw_only(), py::arg("logits"), py::arg("dtype"), py::arg("rows"), py::arg("vocab"), py::arg("inner"),
        py::arg("stride_outer"), py::arg("stride_inner"), py::arg("index"), py::arg("inv_tau"), py::arg("grad_logp"),
        py::arg("grad_entropy"), py::arg("lse"), py::arg("entropy"), py::arg("grad"), py::arg("grad_inner"),
        py::arg("grad_stride_outer"), py::arg("grad_stride_inner"));
}
