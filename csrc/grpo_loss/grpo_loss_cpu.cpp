// CPU kernels of grpo_loss: one OpenMP pass over the rows that produces each row's partial sums
// AND writes the per-token gradient coefficient dLoss_b/dlogp (before the row's aggregation
// weight), then an O(N) serial finish (loss, metrics, per-row weights). The backward is a scale
// of the coefficients by grad_output * alpha_b, in place.
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "common/dtypes.h"
#include "common/registry.h"
#include "grpo_loss/grpo_loss_math.h"

namespace harmo {
namespace {

// Masks arrive as bool/uint8, int32, int64 or a float type; all read as a float weight.
HARMO_HD float mask_weight(uint8_t v) { return static_cast<float>(v); }
HARMO_HD float mask_weight(int32_t v) { return static_cast<float>(v); }
HARMO_HD float mask_weight(int64_t v) { return static_cast<float>(v); }
template <class M>
HARMO_HD float mask_weight(M v) { return to_float(v); }

struct RowArgs {
  int64_t N, T;
  const void* logp;
  const void* old;
  const void* ref;
  const void* mask;
  const float* adv;
  bool adv_per_token;
  const float* w;  // nullptr: no importance weights
  bool w_per_token;
  void* coef;  // nullptr: no gradient wanted
  bool sequence;
  GrpoParams params;
};

HARMO_HD bool finite(float x) { return x - x == 0.0f; }

// One row; writes kRowSlots partial sums to `slots`.
template <class TL, class TM>
void grpo_row(const RowArgs& a, int64_t b, float* slots) {
  const int64_t T = a.T;
  const TL* lp = static_cast<const TL*>(a.logp) + b * T;
  const TL* od = static_cast<const TL*>(a.old) + b * T;
  const TL* rf = a.ref ? static_cast<const TL*>(a.ref) + b * T : lp;
  const TM* mk = static_cast<const TM*>(a.mask) + b * T;
  const float* adv = a.adv + (a.adv_per_token ? b * T : b);
  const int64_t adv_step = a.adv_per_token ? 1 : 0;
  const float* w = a.w ? a.w + (a.w_per_token ? b * T : b) : nullptr;
  const int64_t w_step = a.w_per_token ? 1 : 0;
  TL* coef = a.coef ? static_cast<TL*>(a.coef) + b * T : nullptr;
  const GrpoParams& p = a.params;

  float bad_adv = 0.0f, bad_w = 0.0f;
  float cnt = 0.0f, seq_r = 1.0f;
  if (a.sequence) {  // GSPO: the row's masked mean log-ratio first
    float lsum = 0.0f;
#pragma omp simd reduction(+ : lsum, cnt)
    for (int64_t t = 0; t < T; ++t) {
      const float m = mask_weight(mk[t]);
      lsum += m != 0.0f ? m * (to_float(lp[t]) - to_float(od[t])) : 0.0f;
      cnt += m;
    }
    seq_r = exp_f32(lsum / (cnt > 1.0f ? cnt : 1.0f));
    cnt = 0.0f;
  }

  float loss = 0.0f, kl = 0.0f, clo = 0.0f, chi = 0.0f, rat = 0.0f, g_seq = 0.0f;
#pragma omp simd reduction(+ : loss, kl, clo, chi, rat, g_seq, cnt, bad_adv, bad_w)
  for (int64_t t = 0; t < T; ++t) {
    const float m = mask_weight(mk[t]);
    const bool on = m != 0.0f;
    const float x = to_float(lp[t]);
    const float A = adv[t * adv_step];
    const float wt = w ? w[t * w_step] : 1.0f;
    bad_adv += finite(A) ? 0.0f : 1.0f;
    bad_w += finite(wt) ? 0.0f : 1.0f;
    const float r = a.sequence ? seq_r : exp_f32(on ? x - to_float(od[t]) : 0.0f);
    const float d = on ? to_float(rf[t]) - x : 0.0f;
    const GrpoToken k = grpo_token(r, A, wt, d, p);
    loss += on ? m * k.loss : 0.0f;
    kl += on ? m * k.kl : 0.0f;
    clo += on ? m * k.clip_low : 0.0f;
    chi += on ? m * k.clip_high : 0.0f;
    rat += on ? m * r : 0.0f;
    cnt += m;
    g_seq += on ? m * k.dl_dr : 0.0f;
    if (coef) {
      const float g = a.sequence ? k.dl_dlogp : mul_or_zero(k.dl_dr, r) + k.dl_dlogp;
      coef[t] = from_float<TL>(on ? m * g : 0.0f);
    }
  }
  if (a.sequence && coef) {  // every masked token moves the shared ratio
    const float c = mul_or_zero(g_seq, seq_r) / (cnt > 1.0f ? cnt : 1.0f);
#pragma omp simd
    for (int64_t t = 0; t < T; ++t) {
      const float m = mask_weight(mk[t]);
      coef[t] = from_float<TL>(m != 0.0f ? to_float(coef[t]) + m * c : 0.0f);
    }
  }
  slots[kRowLoss] = loss;
  slots[kRowCount] = cnt;
  slots[kRowKl] = kl;
  slots[kRowClipLow] = clo;
  slots[kRowClipHigh] = chi;
  slots[kRowRatio] = rat;
  slots[kRowBadAdv] = bad_adv;
  slots[kRowBadWeight] = bad_w;
}

template <class TL, class TM>
void grpo_rows(const RowArgs& a, float* slots) {
#pragma omp parallel for schedule(static) if (a.N * a.T > 16384)
  for (int64_t b = 0; b < a.N; ++b) grpo_row<TL, TM>(a, b, slots + b * kRowSlots);
}

template <class TL>
void grpo_rows_mask(int mask_code, const RowArgs& a, float* slots) {
  switch (static_cast<DType>(mask_code)) {
    case DType::b8: return grpo_rows<TL, uint8_t>(a, slots);
    case DType::i32: return grpo_rows<TL, int32_t>(a, slots);
    case DType::i64: return grpo_rows<TL, int64_t>(a, slots);
    case DType::f32: return grpo_rows<TL, float>(a, slots);
    case DType::f16: return grpo_rows<TL, f16_t>(a, slots);
    case DType::bf16: return grpo_rows<TL, bf16_t>(a, slots);
    default: throw std::invalid_argument("grpo_loss: unsupported mask dtype code");
  }
}

// Returns the bad-input flags: 1 = a non-finite advantage, 2 = a non-finite importance weight.
int grpo_loss_fwd(int64_t N, int64_t T, std::uintptr_t logp, std::uintptr_t old, std::uintptr_t ref,
                  std::uintptr_t mask, int mask_code, std::uintptr_t adv, bool adv_per_token,
                  std::uintptr_t w, bool w_per_token, std::uintptr_t coef, std::uintptr_t out,
                  std::uintptr_t row_scale, int dtype, float clip_lo, float clip_hi, float delta,
                  float beta, int kl_estimator, bool bias_corrected, bool sequence, float agg_base,
                  bool agg_per_row_count, bool agg_total_count) {
  const float inf = std::numeric_limits<float>::infinity();
  RowArgs a{N,
            T,
            as_ptr<const void>(logp),
            as_ptr<const void>(old),
            ref ? as_ptr<const void>(ref) : nullptr,
            as_ptr<const void>(mask),
            as_ptr<const float>(adv),
            adv_per_token,
            w ? as_ptr<const float>(w) : nullptr,
            w_per_token,
            coef ? as_ptr<void>(coef) : nullptr,
            sequence,
            GrpoParams{clip_lo, clip_hi, delta, beta, ref != 0, bias_corrected, KlParams{kl_estimator, inf, inf}}};
  std::vector<float> slots(static_cast<size_t>(N) * kRowSlots);
  if (N > 0 && T > 0) {
    HARMO_DISPATCH_FLOATING(dtype, scalar_t, [&] { grpo_rows_mask<scalar_t>(mask_code, a, slots.data()); });
  }
  // Finish serially in double: O(N), and it keeps the loss independent of the thread count.
  double total = 0.0;
  int flags = 0;
  for (int64_t b = 0; b < N; ++b) {
    total += slots[b * kRowSlots + kRowCount];
    flags |= (slots[b * kRowSlots + kRowBadAdv] != 0.0f ? 1 : 0) | (slots[b * kRowSlots + kRowBadWeight] != 0.0f ? 2 : 0);
  }
  const AggPlan plan{agg_base, agg_per_row_count, agg_total_count};
  float* scale = as_ptr<float>(row_scale);
  double sums[kOutSlots] = {0.0, 0.0, 0.0, 0.0, 0.0};
  for (int64_t b = 0; b < N; ++b) {
    const float* s = slots.data() + b * kRowSlots;
    const float alpha = row_alpha(plan, s[kRowCount], static_cast<float>(total));
    scale[b] = alpha;
    sums[kOutLoss] += static_cast<double>(alpha) * s[kRowLoss];
    sums[kOutKl] += s[kRowKl];
    sums[kOutClipLow] += s[kRowClipLow];
    sums[kOutClipHigh] += s[kRowClipHigh];
    sums[kOutRatio] += s[kRowRatio];
  }
  const double denom = total > 1.0 ? total : 1.0;
  float* o = as_ptr<float>(out);
  o[kOutLoss] = static_cast<float>(sums[kOutLoss]);
  for (int k = kOutKl; k < kOutSlots; ++k) o[k] = static_cast<float>(sums[k] / denom);
  return flags;
}

template <class TL>
void scale_rows(TL* coef, const float* row_scale, float g, int64_t N, int64_t T) {
#pragma omp parallel for schedule(static) if (N * T > 65536)
  for (int64_t b = 0; b < N; ++b) {
    const float s = g * row_scale[b];
    TL* row = coef + b * T;
#pragma omp simd
    for (int64_t t = 0; t < T; ++t) row[t] = from_float<TL>(to_float(row[t]) * s);
  }
}

// coef (N,T) *= grad_output * row_scale[b], in place; grad_output is a float32 scalar.
void grpo_loss_bwd(std::uintptr_t coef, std::uintptr_t row_scale, std::uintptr_t grad_output, int64_t N,
                   int64_t T, int dtype) {
  const float g = *as_ptr<const float>(grad_output);
  HARMO_DISPATCH_FLOATING(dtype, scalar_t, [&] {
    scale_rows<scalar_t>(as_ptr<scalar_t>(coef), as_ptr<const float>(row_scale), g, N, T);
  });
}

}  // namespace
}  // namespace harmo

HARMO_BIND(grpo_loss) {
  namespace py = pybind11;
  m.def("grpo_loss_fwd", &harmo::grpo_loss_fwd, py::call_guard<py::gil_scoped_release>(),
        "Fused GRPO loss forward: per-row partials, loss/metrics into out[5], alpha_b into row_scale, "
        "per-token gradient coefficients into coef (0 = skip); returns bad-input flags");
  m.def("grpo_loss_bwd", &harmo::grpo_loss_bwd, py::call_guard<py::gil_scoped_release>(),
        "Scale the stored coefficients by grad_output * row_scale in place");
}
