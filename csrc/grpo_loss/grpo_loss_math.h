// Clipped GRPO loss, one token at a time, and the aggregation weights of a row (docs/SPEC.md §2,
// grpo_loss); shared by the CPU and CUDA kernels.
//
//   L = -min(r' A, clamp(r, 1-eps_low, 1+eps_high) A) * w + beta * kl * (r if bias-corrected)
//   r' = min(r, delta)
//
// A kernel evaluates grpo_token() for each token with the token's ratio r (token level) or the
// row's shared ratio (sequence level) and keeps two derivatives apart: dL/dr (how the loss moves
// with the ratio) and dL/dlogp at fixed r (the KL term's own dependence on logp). Token level:
// dL/dlogp = dL/dr * r + dL/dlogp|r. Sequence level: the row's ratio depends on every masked
// token, so dLoss/dlogp_t = m_t * dL_t/dlogp|r + m_t * r / max(sum m, 1) * sum_s m_s dL_s/dr.
#pragma once
#include <cstdint>

#include "common/dtypes.h"
#include "common/fast_math.h"
#include "token_kl/token_kl_math.h"

namespace harmo {

struct GrpoParams {
  float clip_lo;        // 1 - eps_low
  float clip_hi;        // 1 + eps_high
  float delta;          // dual-clip cap on r in the unclipped branch; +inf when off
  float beta;           // KL coefficient (the KL term is added only when beta > 0)
  bool has_ref;         // ref_logp given: the KL is computed (for the metric at least)
  bool bias_corrected;  // KL term multiplied by r (TRL use_bias_correction_kl: r not detached)
  int kl_estimator;     // KlEstimator
  float kl_clamp_d;     // clamp of the KL's log-ratio d = ref - logp (token_kl's clamp_d); +inf when off
  float kl_clamp_v;     // clamp of the KL value (token_kl's clamp_v); +inf when off
};

struct GrpoToken {
  float loss;       // the token's L (before the mask and the aggregation weight)
  float dl_dr;      // dL/dr
  float dl_dlogp;   // dL/dlogp at fixed r
  float kl;         // the KL term as added (times r when bias-corrected): the kl_mean metric
  float clip_low;   // 1 when r < 1-eps_low and A < 0
  float clip_high;  // 1 when r > 1+eps_high and A > 0
};

// Masks arrive as bool/uint8, int32, int64 or a float type; all are read as a float weight.
HARMO_HD float mask_at(const uint8_t* p, int64_t i) { return static_cast<float>(p[i]); }
HARMO_HD float mask_at(const int32_t* p, int64_t i) { return static_cast<float>(p[i]); }
HARMO_HD float mask_at(const int64_t* p, int64_t i) { return static_cast<float>(p[i]); }
template <class M>
HARMO_HD float mask_at(const M* p, int64_t i) { return load_at(p, i); }

// a * b, but 0 when a == 0: a clipped token (zero derivative) with an overflowed ratio r = inf
// has a zero gradient, and a zero advantage a zero loss, not 0 * inf = NaN.
HARMO_HD float mul_or_zero(float a, float b) { return a == 0.0f ? 0.0f : a * b; }

// The KL term of one token added to t (KL < 0: none). beta == 0 with a reference makes it a metric
// only; bias-corrected, it is multiplied by r: (kl r)' = kl' r + kl r', the value part riding on
// dL/dr, the rest direct.
template <int KL, bool BIAS, bool BETA, bool CLAMPED = true>
HARMO_HD void add_kl_term(GrpoToken& t, float r, float d, const GrpoParams& p) {
  if (KL < 0) return;
  const KlTerm k = kl_term_fixed<(KL >= 0 ? KL : 0), CLAMPED>(d, p.kl_clamp_d, p.kl_clamp_v);
  t.kl = BIAS ? k.value * r : k.value;
  if (BETA) {
    t.loss += p.beta * t.kl;
    if (BIAS) t.dl_dr += p.beta * k.value;
    t.dl_dlogp = p.beta * (BIAS ? mul_or_zero(k.dlogp, r) : k.dlogp);
  }
}

// d = ref_logp - logp. KL is the estimator code fixed at compile time, or -1 for "no reference";
// BIAS = p.bias_corrected and BETA = (p.beta > 0) are fixed too (the CPU loops instantiate each
// combination: a select on a loop-invariant bool keeps GCC from vectorising). grpo_token() below
// picks the instantiation at run time.
template <int KL, bool BIAS, bool BETA, bool CLAMPED = true>
HARMO_HD GrpoToken grpo_token_fixed(float r, float adv, float w, float d, const GrpoParams& p) {
  const float r1 = r > p.delta ? p.delta : r;
  // Two single selects (clamp_nan's nested one does not vectorise here); NaN stays NaN.
  const float r_lo = r < p.clip_lo ? p.clip_lo : r;
  const float r2 = r_lo > p.clip_hi ? p.clip_hi : r_lo;
  const float a = mul_or_zero(adv, r1);
  const float b = r2 * adv;
  // min() that keeps NaN, like torch.min. With finite advantages (the kernels reject others) a
  // and b can only be NaN through r; testing r rather than a matters: a is a select on adv, and
  // GCC turns `a != a` into a select of booleans of mixed widths that it cannot vectorise.
  const float lo = r != r ? r : (a <= b ? a : b);
  // Whichever branch min() picks passes dr/dr of its own clamp. On a tie (r inside the clip
  // range) both branches have slope 1, so the token gets the full gradient, never half.
  // (Selects on floats, not bools: GCC vectorises those.)
  const float slope_a = r > p.delta ? 0.0f : 1.0f;
  const float slope_b = (r >= p.clip_lo ? 1.0f : 0.0f) * (r <= p.clip_hi ? 1.0f : 0.0f);
  const float slope = a <= b ? slope_a : slope_b;
  const float neg_aw = -adv * w;
  GrpoToken t;
  t.loss = -lo * w;
  t.dl_dr = slope != 0.0f ? neg_aw : 0.0f;
  t.dl_dlogp = 0.0f;
  t.kl = 0.0f;
  t.clip_low = (r < p.clip_lo ? 1.0f : 0.0f) * (adv < 0.0f ? 1.0f : 0.0f);
  t.clip_high = (r > p.clip_hi ? 1.0f : 0.0f) * (adv > 0.0f ? 1.0f : 0.0f);
  add_kl_term<KL, BIAS, BETA, CLAMPED>(t, r, d, p);
  return t;
}

// The policy term of a row whose advantage A and importance weight w hold for all its tokens (the
// usual case), for the token level. With the sign of A fixed, -min(min(r, delta) A, clamp(r) A) w
// is -A w times one clamp of r, and its slope one interval test:
//   A >= 0:  max(lo, min(r, hi)) with lo = -inf, hi = min(delta, 1 + eps_high)
//   A < 0:   the same with lo = 1 - eps_low,  hi = max(delta, 1 + eps_high)
// and dL/dr = -A w where lo <= r <= hi, else 0. This is grpo_token_fixed's min of the two branch
// values (ties included) up to the rounding of the products; a NaN r keeps a NaN loss and a zero
// slope, an overflowed r = inf an infinite loss only where A < 0 and delta is off.
struct GrpoRowPolicy {
  float neg_aw;     // -A w
  float lo, hi;     // the clamp of r and the interval where the slope is 1
  float low_on;     // 1 when A < 0: the token may count in clip_low_frac
  float high_on;    // 1 when A > 0: the token may count in clip_high_frac
};

HARMO_HD GrpoRowPolicy grpo_row_policy(float adv, float w, const GrpoParams& p) {
  const bool neg = adv < 0.0f;
  const float delta_hi_min = p.delta < p.clip_hi ? p.delta : p.clip_hi;
  const float delta_hi_max = p.delta > p.clip_hi ? p.delta : p.clip_hi;
  return GrpoRowPolicy{-adv * w, neg ? p.clip_lo : -INFINITY, neg ? delta_hi_max : delta_hi_min, neg ? 1.0f : 0.0f,
                       adv > 0.0f ? 1.0f : 0.0f};
}

template <int KL, bool BIAS, bool BETA, bool CLAMPED = true>
HARMO_HD GrpoToken grpo_token_row(float r, float d, const GrpoRowPolicy& row, const GrpoParams& p) {
  const float v_hi = row.hi < r ? row.hi : r;  // NaN r stays NaN through both selects
  const float v = v_hi < row.lo ? row.lo : v_hi;
  const float slope = (r >= row.lo ? 1.0f : 0.0f) * (r <= row.hi ? 1.0f : 0.0f);
  GrpoToken t;
  t.loss = row.neg_aw * v;
  t.dl_dr = slope != 0.0f ? row.neg_aw : 0.0f;
  t.dl_dlogp = 0.0f;
  t.kl = 0.0f;
  t.clip_low = r < p.clip_lo ? row.low_on : 0.0f;
  t.clip_high = r > p.clip_hi ? row.high_on : 0.0f;
  add_kl_term<KL, BIAS, BETA, CLAMPED>(t, r, d, p);
  return t;
}

template <int KL>
HARMO_HD GrpoToken grpo_token_kl(float r, float adv, float w, float d, const GrpoParams& p) {
  const bool beta = p.beta > 0.0f;
  if (p.bias_corrected) {
    return beta ? grpo_token_fixed<KL, true, true>(r, adv, w, d, p) : grpo_token_fixed<KL, true, false>(r, adv, w, d, p);
  }
  return beta ? grpo_token_fixed<KL, false, true>(r, adv, w, d, p) : grpo_token_fixed<KL, false, false>(r, adv, w, d, p);
}

HARMO_HD GrpoToken grpo_token(float r, float adv, float w, float d, const GrpoParams& p) {
  if (!p.has_ref) return grpo_token_fixed<-1, false, false>(r, adv, w, d, p);
  switch (p.kl_estimator) {
    case 0: return grpo_token_kl<0>(r, adv, w, d, p);
    case 1: return grpo_token_kl<1>(r, adv, w, d, p);
    case 2: return grpo_token_kl<2>(r, adv, w, d, p);
    case 3: return grpo_token_kl<3>(r, adv, w, d, p);
    case 4: return grpo_token_kl<4>(r, adv, w, d, p);
    case 5: return grpo_token_kl<5>(r, adv, w, d, p);
    case 6: return grpo_token_kl<6>(r, adv, w, d, p);
    default: return grpo_token_kl<7>(r, adv, w, d, p);
  }
}

// Aggregation of the masked token losses as a per-row weight alpha_b (loss = sum_b alpha_b S_b,
// S_b = sum_t m L): alpha_b = 1 / (base * [max(n_b, 1)] * [max(n_total, 1)] * [max(rows, 1)]), the
// bracketed factors present when the flags say so (rows: the rows with n_b > 0).
// harmo_fast/ops/_loss_agg.py maps each loss_agg to one.
struct AggPlan {
  float base;
  bool per_row_count;
  bool total_count;
  bool nonempty_rows;
};

// The batch-wide counts a plan may divide by.
struct AggCounts {
  float total;  // sum of the mask
  float rows;   // rows with a positive mask sum
};

HARMO_HD float row_alpha(const AggPlan& plan, float row_count, const AggCounts& c) {
  float div = plan.base;
  div *= plan.per_row_count ? (row_count > 1.0f ? row_count : 1.0f) : 1.0f;
  div *= plan.total_count ? (c.total > 1.0f ? c.total : 1.0f) : 1.0f;
  div *= plan.nonempty_rows ? (c.rows > 1.0f ? c.rows : 1.0f) : 1.0f;
  return 1.0f / div;
}

// The tensors and settings of one grpo_loss call, as the CPU and CUDA kernels read them. Token
// tensors are contiguous (N, T) of one dtype; adv and w are fp32 (N,) or (N, T).
struct GrpoArgs {
  int64_t N, T;
  const void* logp;
  const void* old;
  const void* ref;  // nullptr: no reference
  const void* mask;
  const float* adv;
  bool adv_per_token;
  const float* w;  // nullptr: no importance weights
  bool w_per_token;
  void* coef;  // nullptr: no gradient wanted
  bool sequence;
  GrpoParams params;
};

// GrpoArgs from the addresses Python passes (0 = absent).
inline GrpoArgs grpo_args(int64_t N, int64_t T, std::uintptr_t logp, std::uintptr_t old, std::uintptr_t ref,
                          std::uintptr_t mask, std::uintptr_t adv, bool adv_per_token, std::uintptr_t w,
                          bool w_per_token, std::uintptr_t coef, bool sequence, GrpoParams params) {
  return GrpoArgs{N,
                  T,
                  reinterpret_cast<const void*>(logp),
                  reinterpret_cast<const void*>(old),
                  reinterpret_cast<const void*>(ref),
                  reinterpret_cast<const void*>(mask),
                  reinterpret_cast<const float*>(adv),
                  adv_per_token,
                  reinterpret_cast<const float*>(w),
                  w_per_token,
                  reinterpret_cast<void*>(coef),
                  sequence,
                  params};
}

// Row b of a GrpoArgs: its token pointers (TL: logp dtype, TM: mask dtype), adv and w (per row
// or per token), and coef; the absent ones null.
template <class TL, class TM>
struct GrpoRow {
  const TL* logp;
  const TL* old;
  const TL* ref;
  const TM* mask;
  const float* adv;
  const float* w;
  TL* coef;
};

template <class TL, class TM>
HARMO_HD GrpoRow<TL, TM> grpo_row(const GrpoArgs& a, int64_t b) {
  const int64_t T = a.T;
  return GrpoRow<TL, TM>{static_cast<const TL*>(a.logp) + b * T,
                         static_cast<const TL*>(a.old) + b * T,
                         a.ref ? static_cast<const TL*>(a.ref) + b * T : nullptr,
                         static_cast<const TM*>(a.mask) + b * T,
                         a.adv + (a.adv_per_token ? b * T : b),
                         a.w ? a.w + (a.w_per_token ? b * T : b) : nullptr,
                         a.coef ? static_cast<TL*>(a.coef) + b * T : nullptr};
}

// Per-row partial sums a row pass produces (float slots of one row).
enum GrpoRowSlot : int {
  kRowLoss = 0,   // sum m L
  kRowCount,      // sum m
  kRowKl,         // sum m kl
  kRowClipLow,    // sum m clip_low
  kRowClipHigh,   // sum m clip_high
  kRowRatio,      // sum m r
  kRowBadAdv,     // number of non-finite advantages read
  kRowBadWeight,  // number of non-finite importance weights read
  kRowSlots,
};
// Exported as grpo_row_slot_codes: harmo_fast/ops/_grpo_layout.py RowSlot keeps the same order
// (the Triton kernel and the CUDA scratch use it).
inline constexpr NamedCode kGrpoRowSlotCodes[] = {
    {"loss", kRowLoss},         {"count", kRowCount},       {"kl", kRowKl},
    {"clip_low", kRowClipLow},  {"clip_high", kRowClipHigh}, {"ratio", kRowRatio},
    {"bad_adv", kRowBadAdv},    {"bad_weight", kRowBadWeight},
};

// Bits of the CPU forward's return value: which inputs held a non-finite value (exported as
// grpo_bad_input_codes; harmo_fast/ops/_grpo_layout.py BadInput).
enum GrpoBadInput : int { kBadAdvantages = 1, kBadWeights = 2 };
inline constexpr NamedCode kGrpoBadInputCodes[] = {{"advantages", kBadAdvantages}, {"is_weights", kBadWeights}};

// Output scalars: the loss then the four metrics (the order of harmo_fast.ops.grpo_loss.METRICS).
enum GrpoOutSlot : int { kOutLoss = 0, kOutKl, kOutClipLow, kOutClipHigh, kOutRatio, kOutSlots };

// Adds one row's partial sums `s` (kRowSlots) to the output sums and returns the row's
// aggregation weight alpha_b; `counts` are the whole batch's.
HARMO_HD float add_row_to_outputs(const float* s, const AggPlan& plan, const AggCounts& counts, double* sums) {
  const float alpha = row_alpha(plan, s[kRowCount], counts);
  sums[kOutLoss] += static_cast<double>(alpha) * s[kRowLoss];
  sums[kOutKl] += s[kRowKl];
  sums[kOutClipLow] += s[kRowClipLow];
  sums[kOutClipHigh] += s[kRowClipHigh];
  sums[kOutRatio] += s[kRowRatio];
  return alpha;
}

// The loss (sum_b alpha_b S_b) and the metrics (token means over the batch) from the output sums.
HARMO_HD void write_outputs(const double* sums, double total, float* out_loss, float* out_stats) {
  const double denom = total > 1.0 ? total : 1.0;
  *out_loss = static_cast<float>(sums[kOutLoss]);
  for (int k = kOutKl; k < kOutSlots; ++k) out_stats[k - kOutKl] = static_cast<float>(sums[k] / denom);
}

}  // namespace harmo
