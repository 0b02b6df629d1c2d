// Per-token KL estimators between the policy and a frozen reference (docs/SPEC.md §2, token_kl),
// shared by the CPU and CUDA kernels. With d = ref_logp - logp:
//   k1 = -d,   k2 = d^2 / 2,   k3 = exp(d) - d - 1,   abs = |d|
// optionally with d clamped to [-clamp_d, clamp_d] (verl uses 20) and the value clamped to
// [-clamp_v, clamp_v]. Gradients follow torch.clamp: they pass on the closed interval and are 0
// outside it. The straight-through variants "k1+" ... "abs+" (verl's "+" suffix) have their base
// estimator's (clamped) value and k2's gradient, -d, with d unclamped. Everything is branch-free
// (selects), so the CPU loops vectorise.
#pragma once
#include <cmath>
#include <cstdint>

#include "common/fast_math.h"

namespace harmo {

// Codes shared with harmo_fast/ops/token_kl.py (the estimator registry), exported as
// kl_estimator_codes. A straight-through variant's code is its base's plus kKlStraightThrough.
enum class KlEstimator : int { k1 = 0, k2 = 1, k3 = 2, abs = 3, k1_st = 4, k2_st = 5, k3_st = 6, abs_st = 7 };
inline constexpr int kKlStraightThrough = 4;
inline constexpr NamedCode kKlEstimatorCodes[] = {
    {"k1", static_cast<int>(KlEstimator::k1)},       {"k2", static_cast<int>(KlEstimator::k2)},
    {"k3", static_cast<int>(KlEstimator::k3)},       {"abs", static_cast<int>(KlEstimator::abs)},
    {"k1+", static_cast<int>(KlEstimator::k1_st)},   {"k2+", static_cast<int>(KlEstimator::k2_st)},
    {"k3+", static_cast<int>(KlEstimator::k3_st)},   {"abs+", static_cast<int>(KlEstimator::abs_st)},
};

struct KlParams {
  int estimator;  // KlEstimator
  float clamp_d;  // +inf when d is not clamped
  float clamp_v;  // +inf when the value is not clamped
};

struct KlTerm {
  float value;  // the (clamped) estimator
  float dlogp;  // its derivative w.r.t. logp
};

// The estimator fixed at compile time (the CPU loops instantiate one per estimator so they stay
// free of per-token selects); kl_term() below picks it at run time. +inf bounds clamp nothing;
// CLAMPED = false skips the clamps, which is the same as both bounds +inf.
template <int EST, bool CLAMPED = true>
HARMO_HD KlTerm kl_term_fixed(float d, float clamp_d, float clamp_v) {
  constexpr int base = EST % kKlStraightThrough;
  constexpr bool straight_through = EST >= kKlStraightThrough;
  const float dc = CLAMPED ? clamp_nan(d, -clamp_d, clamp_d) : d;
  float v, g;  // g = d(value)/d(logp) = -d(value)/d(d): k1 -> 1, k2 -> -d, k3 -> 1 - exp(d), abs -> -sign(d)
  if (base == static_cast<int>(KlEstimator::k1)) {
    v = -dc;
    g = 1.0f;
  } else if (base == static_cast<int>(KlEstimator::k2)) {
    v = 0.5f * dc * dc;
    g = -dc;
  } else if (base == static_cast<int>(KlEstimator::k3)) {
    const float e = exp_f32(dc);
    v = (e - dc) - 1.0f;
    g = 1.0f - e;
  } else {
    v = dc < 0.0f ? -dc : dc;
    g = dc > 0.0f ? -1.0f : (dc < 0.0f ? 1.0f : 0.0f);  // torch's abs: 0 at 0 (and at NaN)
  }
  if (CLAMPED) {
    g = (d < -clamp_d || d > clamp_d) ? 0.0f : g;  // written so that a NaN d keeps a NaN g
    g = (v < -clamp_v || v > clamp_v) ? 0.0f : g;
    v = clamp_nan(v, -clamp_v, clamp_v);
  }
  return KlTerm{v, straight_through ? -d : g};
}

HARMO_HD KlTerm kl_term(float d, const KlParams& p) {
  switch (p.estimator) {
    case 0: return kl_term_fixed<0>(d, p.clamp_d, p.clamp_v);
    case 1: return kl_term_fixed<1>(d, p.clamp_d, p.clamp_v);
    case 2: return kl_term_fixed<2>(d, p.clamp_d, p.clamp_v);
    case 3: return kl_term_fixed<3>(d, p.clamp_d, p.clamp_v);
    case 4: return kl_term_fixed<4>(d, p.clamp_d, p.clamp_v);
    case 5: return kl_term_fixed<5>(d, p.clamp_d, p.clamp_v);
    case 6: return kl_term_fixed<6>(d, p.clamp_d, p.clamp_v);
    default: return kl_term_fixed<7>(d, p.clamp_d, p.clamp_v);
  }
}

}  // namespace harmo
