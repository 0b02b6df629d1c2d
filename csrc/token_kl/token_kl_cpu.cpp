// CPU kernels of token_kl: one flat OpenMP pass each way. The forward writes the fp32 estimator;
// the backward recomputes the local derivative from (logp, ref) while scaling grad_output, so
// nothing but the inputs is kept between the two.

#include <stdexcept>

#include "common/dtypes.h"
#include "common/registry.h"
#include "token_kl/token_kl_math.h"

namespace harmo {
namespace {

// Parameters by value and the estimator as a template argument, an OpenMP loop over blocks and a
// plain simd loop inside each: in that shape GCC vectorises the body (exp included).
constexpr int64_t kBlock = 4096;

template <int EST, class TL, class TR>
void kl_forward_block(const TL* logp, const TR* ref, float* out, int64_t n, float cd, float cv) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = kl_term_fixed<EST>(load_at(ref, i) - load_at(logp, i), cd, cv).value;
}

template <int EST, class TL, class TR>
void kl_backward_block(const float* grad_out, const TL* logp, const TR* ref, TL* grad, int64_t n, float cd, float cv) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i)
    store_at(grad, i, grad_out[i] * kl_term_fixed<EST>(load_at(ref, i) - load_at(logp, i), cd, cv).dlogp);
}

template <int EST, class TL, class TR>
void kl_forward(const TL* logp, const TR* ref, float* out, int64_t n, float cd, float cv) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (blocks > 8)
  for (int64_t k = 0; k < blocks; ++k) {
    const int64_t i0 = k * kBlock;
    kl_forward_block<EST>(logp + i0, ref + i0, out + i0, n - i0 < kBlock ? n - i0 : kBlock, cd, cv);
  }
}

template <int EST, class TL, class TR>
void kl_backward(const float* grad_out, const TL* logp, const TR* ref, TL* grad, int64_t n, float cd, float cv) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (blocks > 8)
  for (int64_t k = 0; k < blocks; ++k) {
    const int64_t i0 = k * kBlock;
    kl_backward_block<EST>(grad_out + i0, logp + i0, ref + i0, grad + i0, n - i0 < kBlock ? n - i0 : kBlock, cd, cv);
  }
}

// Runs BODY with EST bound to the estimator code as a compile-time constant.
#define HARMO_DISPATCH_KL(code, EST, ...)                                       \
  [&] {                                                                         \
    switch (code) {                                                             \
      case 0: { constexpr int EST = 0; return __VA_ARGS__(); }                  \
      case 1: { constexpr int EST = 1; return __VA_ARGS__(); }                  \
      case 2: { constexpr int EST = 2; return __VA_ARGS__(); }                  \
      case 3: { constexpr int EST = 3; return __VA_ARGS__(); }                  \
      case 4: { constexpr int EST = 4; return __VA_ARGS__(); }                  \
      case 5: { constexpr int EST = 5; return __VA_ARGS__(); }                  \
      case 6: { constexpr int EST = 6; return __VA_ARGS__(); }                  \
      case 7: { constexpr int EST = 7; return __VA_ARGS__(); }                  \
      default: throw std::invalid_argument("token_kl: unknown estimator code"); \
    }                                                                           \
  }()

void token_kl_fwd(std::uintptr_t logp, int logp_dtype, std::uintptr_t ref, int ref_dtype, std::uintptr_t out,
                  int64_t n, int estimator, float clamp_d, float clamp_v) {
  HARMO_DISPATCH_FLOATING(logp_dtype, tl, [&] {
    HARMO_DISPATCH_FLOATING(ref_dtype, tr, [&] {
      HARMO_DISPATCH_KL(estimator, est, [&] {
        kl_forward<est>(as_ptr<const tl>(logp), as_ptr<const tr>(ref), as_ptr<float>(out), n, clamp_d, clamp_v);
      });
    });
  });
}

void token_kl_bwd(std::uintptr_t grad_out, std::uintptr_t logp, int logp_dtype, std::uintptr_t ref, int ref_dtype,
                  std::uintptr_t grad, int64_t n, int estimator, float clamp_d, float clamp_v) {
  HARMO_DISPATCH_FLOATING(logp_dtype, tl, [&] {
    HARMO_DISPATCH_FLOATING(ref_dtype, tr, [&] {
      HARMO_DISPATCH_KL(estimator, est, [&] {
        kl_backward<est>(as_ptr<const float>(grad_out), as_ptr<const tl>(logp), as_ptr<const tr>(ref),
                         as_ptr<tl>(grad), n, clamp_d, clamp_v);
      });
    });
  });
}

}  // namespace
}  // namespace harmo

HARMO_BIND(token_kl) {
  namespace py = pybind11;
  m.def("token_kl_fwd", &harmo::token_kl_fwd, py::call_guard<py::gil_scoped_release>(),
        "Per-token KL estimator (fp32 out) of contiguous logp/ref of n elements", py::kw_only(), py::arg("logp"), py::arg("logp_dtype"), py::arg("ref"), py::arg("ref_dtype"), py::arg("out"),
        py::arg("n"), py::arg("estimator"), py::arg("clamp_d"), py::arg("clamp_v"));
  m.def("token_kl_bwd", &harmo::token_kl_bwd, py::call_guard<py::gil_scoped_release>(),
        "grad_logp = grad_out (fp32) * d kl / d logp, recomputed from logp and ref", py::kw_only(), py::arg("grad_out"), py::arg("logp"), py::arg("logp_dtype"), py::arg("ref"),
        py::arg("ref_dtype"), py::arg("grad"), py::arg("n"), py::arg("estimator"), py::arg("clamp_d"),
        py::arg("clamp_v"));
  m.attr("kl_estimator_codes") = harmo::code_table(harmo::kKlEstimatorCodes);
}
