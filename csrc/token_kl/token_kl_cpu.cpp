// CPU kernels of token_kl: one flat OpenMP pass each way. The forward writes the fp32 estimator;
// the backward recomputes the local derivative from (logp, ref) while scaling grad_output, so
// nothing but the inputs is kept between the two.
#include <stdexcept>

#include "common/dtypes.h"
#include "common/registry.h"
#include "token_kl/token_kl_math.h"

namespace harmo {
namespace {

template <class TL, class TR>
void kl_forward(const TL* logp, const TR* ref, float* out, int64_t n, const KlParams& p) {
#pragma omp parallel for simd schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) out[i] = kl_term(to_float(ref[i]) - to_float(logp[i]), p).value;
}

template <class TL, class TR>
void kl_backward(const float* grad_out, const TL* logp, const TR* ref, TL* grad, int64_t n, const KlParams& p) {
#pragma omp parallel for simd schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i)
    grad[i] = from_float<TL>(grad_out[i] * kl_term(to_float(ref[i]) - to_float(logp[i]), p).dlogp);
}

void token_kl_fwd(std::uintptr_t logp, int logp_dtype, std::uintptr_t ref, int ref_dtype, std::uintptr_t out,
                  int64_t n, int estimator, float clamp_d, float clamp_v) {
  const KlParams p{estimator, clamp_d, clamp_v};
  HARMO_DISPATCH_FLOATING(logp_dtype, tl, [&] {
    HARMO_DISPATCH_FLOATING(ref_dtype, tr, [&] {
      kl_forward(as_ptr<const tl>(logp), as_ptr<const tr>(ref), as_ptr<float>(out), n, p);
    });
  });
}

void token_kl_bwd(std::uintptr_t grad_out, std::uintptr_t logp, int logp_dtype, std::uintptr_t ref, int ref_dtype,
                  std::uintptr_t grad, int64_t n, int estimator, float clamp_d, float clamp_v) {
  const KlParams p{estimator, clamp_d, clamp_v};
  HARMO_DISPATCH_FLOATING(logp_dtype, tl, [&] {
    HARMO_DISPATCH_FLOATING(ref_dtype, tr, [&] {
      kl_backward(as_ptr<const float>(grad_out), as_ptr<const tl>(logp), as_ptr<const tr>(ref), as_ptr<tl>(grad), n,
                  p);
    });
  });
}

}  // namespace
}  // namespace harmo

HARMO_BIND(token_kl) {
  namespace py = pybind11;
  m.def("token_kl_fwd", &harmo::token_kl_fwd, py::call_guard<py::gil_scoped_release>(),
        "Per-token KL estimator (fp32 out) of contiguous logp/ref of n elements");
  m.def("token_kl_bwd", &harmo::token_kl_bwd, py::call_guard<py::gil_scoped_release>(),
        "grad_logp = grad_out (fp32) * d kl / d logp, recomputed from logp and ref");
}
