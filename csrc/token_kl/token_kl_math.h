// Per-token KL estimators between the policy and a frozen reference (SPEC section 2, token_kl),
// shared by the CPU and CUDA kernels. With d = ref_logp - logp:
//   k1 = -d,   k2 = d^2 / 2,   k3 = exp(d) - d - 1
// optionally with d clamped to [-clamp_d, clamp_d] (verl uses 20) and the value clamped to
// [-clamp_v, clamp_v]. Gradients follow torch.clamp: they pass on the closed interval and are 0
// outside it. Everything is branch-free (selects), so the CPU loops vectorise.
#pragma once
#include <cmath>
#include <cstdint>

#include "common/dtypes.h"

namespace harmo {

// Codes shared with harmo_fast/ops/token_kl.py (the estimator registry).
enum class KlEstimator : int { k1 = 0, k2 = 1, k3 = 2 };

// NaN-propagating clamp with torch.clamp's semantics (fminf/fmaxf would swallow a NaN).
HARMO_HD float clamp_nan(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

// exp(x) in fp32. On the host, libm's expf is an opaque call that blocks vectorisation, so this
// is Cephes' expf (about 1 ulp) written without branches: x = k ln2 + f, exp(x) = 2^k exp(f),
// with 2^k split into two factors so that results down to the subnormal range stay exact-ish.
HARMO_HD float exp_f32(float x) {
#ifdef __CUDA_ARCH__
  return expf(x);
#else
  const float xc = clamp_nan(x, -104.0f, 89.0f);
  const float k = std::floor(xc * 1.44269504088896341f + 0.5f);
  const float f = (xc - k * 0.693359375f) + k * 2.12194440e-4f;
  const float z = f * f;
  float p = 1.9875691500e-4f;
  p = p * f + 1.3981999507e-3f;
  p = p * f + 8.3334519073e-3f;
  p = p * f + 4.1665795894e-2f;
  p = p * f + 1.6666665459e-1f;
  p = p * f + 5.0000001201e-1f;
  p = p * z + f + 1.0f;
  const int32_t ki = static_cast<int32_t>(k);
  const int32_t k1 = ki >> 1;
  const int32_t k2 = ki - k1;
  const float s1 = bits_to_float(static_cast<uint32_t>(k1 + 127) << 23);
  const float s2 = bits_to_float(static_cast<uint32_t>(k2 + 127) << 23);
  const float y = p * s1 * s2;
  return x != x ? x : y;
#endif
}

struct KlParams {
  int estimator;  // KlEstimator
  float clamp_d;  // +inf when d is not clamped
  float clamp_v;  // +inf when the value is not clamped
};

struct KlTerm {
  float value;  // the (clamped) estimator
  float dlogp;  // its derivative w.r.t. logp
};

HARMO_HD KlTerm kl_term(float d, const KlParams& p) {
  const float dc = clamp_nan(d, -p.clamp_d, p.clamp_d);
  const float e = exp_f32(dc);
  const bool is_k1 = p.estimator == static_cast<int>(KlEstimator::k1);
  const bool is_k2 = p.estimator == static_cast<int>(KlEstimator::k2);
  // d(value)/d(logp) = -d(value)/d(d): k1 -> 1, k2 -> -d, k3 -> 1 - exp(d).
  float v = is_k1 ? -dc : (is_k2 ? 0.5f * dc * dc : (e - dc) - 1.0f);
  float g = is_k1 ? 1.0f : (is_k2 ? -dc : 1.0f - e);
  g = (d < -p.clamp_d || d > p.clamp_d) ? 0.0f : g;  // written so that a NaN d keeps a NaN g
  g = (v < -p.clamp_v || v > p.clamp_v) ? 0.0f : g;
  v = clamp_nan(v, -p.clamp_v, p.clamp_v);
  return KlTerm{v, g};
}

}  // namespace harmo
