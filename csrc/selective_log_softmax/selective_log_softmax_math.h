// Selective log-softmax math shared by the CPU and CUDA kernels.
//
// A row of logits z (length V) with temperature tau, x = z / tau, target y:
//   lse  = logsumexp(x)                logp = x[y] - lse
//   H    = lse - sum_v p_v x_v         p = softmax(x)
// Gradients (g = d loss / d logp, h = d loss / d H), written per logit:
//   dz_v = (g (1[v=y] - p_v) + h p_v (lse - H - x_v)) / tau
// The forward keeps an online (max, sum-exp, sum-exp * shifted-x) triple so one pass over the row
// suffices; the backward recomputes p_v from the saved per-row lse, so only O(rows) floats are kept.
#pragma once
#include <cmath>
#include <cstdint>

#include "common/dtypes.h"

namespace harmo {
namespace sls {

// Where row r of a (outer, inner, V) view starts. Leading dimensions are collapsed into at most
// two (outer, inner) with their own strides, so a sliced (B, T, V) tensor needs no copy. Every
// term is int64: offsets beyond 2^31 elements are exact.
struct RowLayout {
  int64_t inner;         // rows per outer index (>= 1)
  int64_t stride_outer;  // elements between consecutive outer indices
  int64_t stride_inner;  // elements between consecutive inner indices
};

HARMO_HD int64_t row_offset(int64_t row, RowLayout layout) {
  return (row / layout.inner) * layout.stride_outer + (row % layout.inner) * layout.stride_inner;
}

// exp(x) for fp32 without libm calls, branch-free so the CPU compiler vectorises loops over it:
// range reduction x = n ln2 + r with |r| <= ln2/2, degree-6 polynomial for e^r (Cephes expf
// coefficients, about 2 ulp), scale by 2^n through the exponent bits. Arguments below the fp32
// range give 0 (-inf too), NaN propagates, arguments above 88 saturate at e^88 (the kernels only
// take exp of x - max or x - lse, which are <= 0 up to rounding).
HARMO_HD float exp_fast(float x) {
#ifdef __CUDA_ARCH__
  return expf(x);
#else
  const float lo = -87.33654f, hi = 88.0f;
  const float xc = x < lo ? lo : (x > hi ? hi : x);
  // Round to nearest by the 1.5 * 2^23 trick (plain float adds, so it vectorises everywhere).
  const float magic = 12582912.0f;
  const float n = (xc * 1.44269504088896341f + magic) - magic;
  float r = xc - n * 0.693359375f;   // ln2 split hi/lo: n * hi is exact
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  const float scaled = p * bits_to_float(bits);
  // x != x keeps NaN; x < lo covers -inf and true underflow.
  return x != x ? x : (x < lo ? 0.0f : scaled);
#endif
}

HARMO_HD float log_fast(float x) {
#ifdef __CUDA_ARCH__
  return logf(x);
#else
  return std::log(x);
#endif
}

// Online softmax statistics of a set of values x relative to their running max m:
//   s = sum exp(x - m),  t = sum exp(x - m) (x - m).
// t is only needed for the entropy; keeping it shifted by m avoids cancelling large logits.
struct Stats {
  float m;
  float s;
  float t;
};

HARMO_HD Stats stats_empty() { return Stats{-INFINITY, 0.0f, 0.0f}; }

// Rescale statistics taken relative to m_old so they are relative to m_new >= m_old.
HARMO_HD Stats stats_rebase(Stats a, float m_new) {
  if (a.s == 0.0f) return Stats{m_new, 0.0f, 0.0f};  // nothing seen yet (or all -inf)
  const float d = a.m - m_new;                          // <= 0
  const float k = exp_fast(d);
  return Stats{m_new, a.s * k, (a.t + d * a.s) * k};
}

// Merge two partial statistics (e.g. two threads' halves of a row, or two vocabulary slices).
HARMO_HD Stats stats_merge(Stats a, Stats b) {
  const float m = a.m > b.m ? a.m : b.m;
  if (m == -INFINITY) return stats_empty();
  const Stats ra = stats_rebase(a, m);
  const Stats rb = stats_rebase(b, m);
  return Stats{m, ra.s + rb.s, ra.t + rb.t};
}

// Add one value (the per-thread update of the GPU kernel).
HARMO_HD Stats stats_push(Stats a, float x) {
  if (x == -INFINITY) return a;
  if (x > a.m) {
    const Stats r = stats_rebase(a, x);
    return Stats{x, r.s + 1.0f, r.t};
  }
  const float d = x - a.m;
  const float e = exp_fast(d);
  return Stats{a.m, a.s + e, a.t + e * d};
}

HARMO_HD float stats_lse(Stats a) { return a.m + log_fast(a.s); }

// H = lse - E_p[x] = log s - t / s  (both relative to the max, so no large-number cancellation).
HARMO_HD float stats_entropy(Stats a) { return log_fast(a.s) - a.t / a.s; }

// Writes row r's logsumexp, the log-prob of its target y and (when asked) its entropy from the
// row's merged statistics. Out-of-range targets are rejected in Python; NaN (never a wild read)
// is the backstop.
template <class T>
HARMO_HD void write_row_results(Stats st, const T* row, int64_t r, int64_t y, int64_t vocab, float inv_tau,
                                float* lse_out, float* logp, float* entropy) {
  const float lse = stats_lse(st);
  lse_out[r] = lse;
  logp[r] = (y >= 0 && y < vocab) ? to_float(row[y]) * inv_tau - lse : NAN;
  if (entropy) entropy[r] = stats_entropy(st);
}

// Per-row constants of the backward: dz_v = target * 1[v=y] - p_v * (k0 + k1 * x_v),
// with p_v = exp(x_v - lse). Derived from the formula at the top with a = g/tau, b = h/tau:
// dz_v = a 1[v=y] - p_v (a - b (lse - H) + b x_v).
struct GradCoef {
  float target;  // a
  float k0;      // a - b (lse - H)
  float k1;      // b
};

HARMO_HD GradCoef grad_coef(float g_logp, float g_entropy, float lse, float entropy, float inv_tau) {
  const float a = g_logp * inv_tau;
  const float b = g_entropy * inv_tau;
  return GradCoef{a, b == 0.0f ? a : a - b * (lse - entropy), b};
}

// Gradient of one logit without the target term (x = z / tau already applied); the target
// logit adds GradCoef::target.
HARMO_HD float grad_logit(float x, float lse, GradCoef c) {
  const float p = exp_fast(x - lse);
  // p == 0 guards 0 * inf when x = -inf (a masked logit gets zero gradient, not NaN).
  return p == 0.0f ? 0.0f : -p * (c.k0 + c.k1 * x);
}

}  // namespace sls
}  // namespace harmo
