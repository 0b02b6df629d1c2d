// CPU kernels of grpo_loss: one OpenMP pass over the rows that produces each row's partial sums
// AND writes the per-token gradient coefficient dLoss_b/dlogp (before the row's aggregation
// weight), then an O(N) serial finish (loss, metrics, per-row weights). The backward is a scale
// of the coefficients by grad_output * alpha_b, in place.

#include <cmath>
#include <stdexcept>
#include <vector>

#include "common/dtypes.h"
#include "common/registry.h"
#include "grpo_loss/grpo_loss_math.h"

namespace harmo {
namespace {

// A row is processed in chunks: typed loads into fp32 scratch arrays, one fp32 math loop, a
// typed store of the coefficients. The math loop then has no dtype or layout variants (it is
// instantiated per KL estimator and ratio level only) and vectorises; the chunk stays in L1.
// Chunks whose mask is all zero (padding) are not computed: their coefficients are set to 0.
constexpr int64_t kChunk = 128;
// Below this many tokens the pass runs on the calling thread, where waking a second thread would
// cost about what it saves. The backward's per-token multiply shares the threshold.
constexpr int64_t kParallelMinTokens = int64_t(1) << 15;

// fp32 view of n elements: the source itself when it is fp32, else a converted copy in dst
// (mask_at reads every element type, the floating ones through load_at).
template <class T>
const float* as_f32(const T* src, float* dst, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dst[i] = mask_at(src, i);
  return dst;
}
const float* as_f32(const float* src, float*, int64_t) { return src; }

// Where a chunk's coefficients are computed: straight into an fp32 output, else into scratch.
template <class T>
float* coef_target(T*, float* scratch) { return scratch; }
float* coef_target(float* out, float*) { return out; }

void fill_chunk(float v, float* dst, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dst[i] = v;
}

template <class T>
void store_chunk(const float* src, T* dst, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) store_at(dst, i, src[i]);
}
void store_chunk(const float*, float*, int64_t) {}  // computed in place (coef_target)

bool all_zero(const float* x, int64_t n) {
  float nonzero = 0.0f;
#pragma omp simd reduction(+ : nonzero)
  for (int64_t i = 0; i < n; ++i) nonzero += x[i] != 0.0f ? 1.0f : 0.0f;
  return nonzero == 0.0f;
}

template <class T>
void store_zeros(T* dst, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) store_at(dst, i, 0.0f);
}

// Scratch for one chunk: fp32 copies of the inputs that are not fp32 already, and the per-token
// gradient coefficients.
struct Chunk {
  float lp[kChunk], old[kChunk], ref[kChunk], m[kChunk], adv[kChunk], w[kChunk], g[kChunk];
};

// Pointers to one chunk's fp32 inputs: straight into the caller's tensors when they are fp32,
// else into the Chunk's copies.
struct ChunkIn {
  const float* lp;
  const float* old;
  const float* ref;
  const float* m;
  const float* adv;
  const float* w;
};

// Row sums, in the kRow* slot order.
struct Sums {
  float v[kRowSlots] = {};
};

HARMO_HD bool finite(float x) { return x - x == 0.0f; }

float count_nonfinite(const float* x, int64_t n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += finite(x[i]) ? 0.0f : 1.0f;
  return s;
}

// The per-token math of one chunk, with the row sums reduced in registers. Masked tokens see a
// zero log-ratio and KL argument, so every per-token value there is finite and m * value is
// exactly 0. Adds to the row sums, leaves m * dL/dlogp (token level) or m * dL/dlogp|r (sequence
// level) in g, returns sum m * dL/dr (sequence level; 0 at the token level, which needs no sum).
// ROW: the row's advantage and weight hold for every token (token level only), and `row` has its
// policy term's constants. CLAMPED = false: the KL term has no clamps (both bounds +inf).
template <int KL, bool CLAMPED, bool BIAS, bool BETA, bool SEQ, bool ROW>
float chunk_math(const ChunkIn& in, float* __restrict g, int64_t n, float seq_r, const GrpoParams p,
                 const GrpoRowPolicy row, Sums& s) {
  const float* __restrict lp = in.lp;
  const float* __restrict old = in.old;
  const float* __restrict ref = in.ref;
  const float* __restrict mask = in.m;
  const float* __restrict adv = in.adv;
  const float* __restrict w = in.w;
  float s_loss = 0.0f, s_cnt = 0.0f, s_kl = 0.0f, s_lo = 0.0f, s_hi = 0.0f, s_r = 0.0f, s_dr = 0.0f;
#pragma omp simd reduction(+ : s_loss, s_cnt, s_kl, s_lo, s_hi, s_r, s_dr)
  for (int64_t i = 0; i < n; ++i) {
    const float m = mask[i];
    const bool on = m != 0.0f;
    const float x = lp[i];
    const float x_old = SEQ ? 0.0f : x - old[i];  // loaded unconditionally: masked loads do not vectorise
    const float x_ref = KL >= 0 ? ref[i] - x : 0.0f;
    const float r = SEQ ? seq_r : exp_f32(on ? x_old : 0.0f);
    const float d = (KL >= 0 && on) ? x_ref : 0.0f;
    GrpoToken t;
    if constexpr (ROW) {
      t = grpo_token_row<KL, BIAS, BETA, CLAMPED>(r, d, row, p);
    } else {
      t = grpo_token_fixed<KL, BIAS, BETA, CLAMPED>(r, adv[i], w[i], d, p);
    }
    s_loss += m * t.loss;
    s_cnt += m;
    if (KL >= 0) s_kl += m * t.kl;
    s_lo += m * t.clip_low;
    s_hi += m * t.clip_high;
    s_r += m * r;
    if (SEQ) s_dr += m * t.dl_dr;
    g[i] = m * (SEQ ? t.dl_dlogp : mul_or_zero(t.dl_dr, r) + t.dl_dlogp);
  }
  s.v[kRowLoss] += s_loss;
  s.v[kRowCount] += s_cnt;
  s.v[kRowKl] += s_kl;
  s.v[kRowClipLow] += s_lo;
  s.v[kRowClipHigh] += s_hi;
  s.v[kRowRatio] += s_r;
  return s_dr;
}

using ChunkMath = float (*)(const ChunkIn&, float*, int64_t, float, const GrpoParams, const GrpoRowPolicy, Sums&);

// How the tokens of a row are computed: the GSPO sequence-level ratio, the token level with the
// row's advantage and weight constant (ROW), or the token level with per-token ones.
enum class RowKind { sequence, constant, per_token };

template <int KL, bool CLAMPED, bool BIAS, bool BETA>
ChunkMath pick_level(RowKind kind) {
  switch (kind) {
    case RowKind::sequence: return &chunk_math<KL, CLAMPED, BIAS, BETA, true, false>;
    case RowKind::constant: return &chunk_math<KL, CLAMPED, BIAS, BETA, false, true>;
    default: return &chunk_math<KL, CLAMPED, BIAS, BETA, false, false>;
  }
}

template <int KL, bool CLAMPED>
ChunkMath pick_flags(bool bias, bool beta, RowKind kind) {
  if (bias) return beta ? pick_level<KL, CLAMPED, true, true>(kind) : pick_level<KL, CLAMPED, true, false>(kind);
  return beta ? pick_level<KL, CLAMPED, false, true>(kind) : pick_level<KL, CLAMPED, false, false>(kind);
}

template <int KL>
ChunkMath pick_clamped(const GrpoParams& p, RowKind kind) {
  const bool beta = p.beta > 0.0f;
  const bool clamped = p.kl_clamp_d != INFINITY || p.kl_clamp_v != INFINITY;
  return clamped ? pick_flags<KL, true>(p.bias_corrected, beta, kind)
                 : pick_flags<KL, false>(p.bias_corrected, beta, kind);
}

ChunkMath pick_chunk_math(const GrpoParams& p, RowKind kind) {
  if (!p.has_ref) return pick_level<-1, false, false, false>(kind);
  switch (p.kl_estimator) {
    case 0: return pick_clamped<0>(p, kind);
    case 1: return pick_clamped<1>(p, kind);
    case 2: return pick_clamped<2>(p, kind);
    case 3: return pick_clamped<3>(p, kind);
    case 4: return pick_clamped<4>(p, kind);
    case 5: return pick_clamped<5>(p, kind);
    case 6: return pick_clamped<6>(p, kind);
    default: return pick_clamped<7>(p, kind);
  }
}

struct RowArgs : GrpoArgs {
  ChunkMath math;
};

// One row; writes kRowSlots partial sums to `slots`.
template <class TL, class TM>
void grpo_row_sums(const RowArgs& a, int64_t b, float* slots) {
  const int64_t T = a.T;
  const auto [lp, od, rf, mk, adv, w, coef] = grpo_row<TL, TM>(a, b);

  float seq_r = 1.0f;
  if (a.sequence) {  // GSPO: the row's masked mean log-ratio first
    float lsum = 0.0f, cnt = 0.0f;
#pragma omp simd reduction(+ : lsum, cnt)
    for (int64_t t = 0; t < T; ++t) {
      const float m = mask_at(mk, t);
      lsum += m != 0.0f ? m * (load_at(lp, t) - load_at(od, t)) : 0.0f;
      cnt += m;
    }
    seq_r = exp_f32(lsum / (cnt > 1.0f ? cnt : 1.0f));
  }

  Chunk c;
  Sums s;
  s.v[kRowBadAdv] = a.adv_per_token || finite(adv[0]) ? 0.0f : 1.0f;
  s.v[kRowBadWeight] = !w || a.w_per_token || finite(w[0]) ? 0.0f : 1.0f;
  const GrpoRowPolicy row = grpo_row_policy(adv[0], w ? w[0] : 1.0f, a.params);  // read by RowKind::constant only
  if (!a.adv_per_token) fill_chunk(adv[0], c.adv, kChunk);
  if (!w || !a.w_per_token) fill_chunk(w ? w[0] : 1.0f, c.w, kChunk);
  float g_r = 0.0f;
  for (int64_t t0 = 0; t0 < T; t0 += kChunk) {
    const int64_t n = T - t0 < kChunk ? T - t0 : kChunk;
    const float* m = as_f32(mk + t0, c.m, n);
    const float* adv_t = a.adv_per_token ? adv + t0 : c.adv;
    const float* w_t = w && a.w_per_token ? w + t0 : c.w;
    if (a.adv_per_token) s.v[kRowBadAdv] += count_nonfinite(adv_t, n);
    if (w && a.w_per_token) s.v[kRowBadWeight] += count_nonfinite(w_t, n);
    if (all_zero(m, n)) {  // padding: every term of the chunk is exactly 0
      if (coef) store_zeros(coef + t0, n);
      continue;
    }
    ChunkIn in{as_f32(lp + t0, c.lp, n), a.sequence ? nullptr : as_f32(od + t0, c.old, n),
               rf ? as_f32(rf + t0, c.ref, n) : nullptr, m, adv_t, w_t};
    float* g = coef ? coef_target(coef + t0, c.g) : c.g;
    g_r += a.math(in, g, n, seq_r, a.params, row, s);
    if (coef) store_chunk(g, coef + t0, n);
  }
  if (a.sequence && coef) {  // every masked token moves the shared ratio
    const float cnt = s.v[kRowCount];
    const float k = mul_or_zero(g_r, seq_r) / (cnt > 1.0f ? cnt : 1.0f);
#pragma omp simd
    for (int64_t t = 0; t < T; ++t) {
      const float m = mask_at(mk, t);
      store_at(coef, t, m != 0.0f ? load_at(coef, t) + m * k : 0.0f);
    }
  }
  for (int k = 0; k < kRowSlots; ++k) slots[k] = s.v[k];
}

template <class TL, class TM>
void grpo_rows(const RowArgs& a, float* slots) {
#pragma omp parallel for schedule(static) if (a.N * a.T > kParallelMinTokens)
  for (int64_t b = 0; b < a.N; ++b) grpo_row_sums<TL, TM>(a, b, slots + b * kRowSlots);
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

// Returns the bad-input flags (GrpoBadInput bits: a non-finite advantage, a non-finite importance weight).
int grpo_loss_fwd(int64_t N, int64_t T, std::uintptr_t logp, std::uintptr_t old, std::uintptr_t ref,
                  std::uintptr_t mask, int mask_code, std::uintptr_t adv, bool adv_per_token,
                  std::uintptr_t w, bool w_per_token, std::uintptr_t coef, std::uintptr_t out_loss,
                  std::uintptr_t out_stats,
                  std::uintptr_t row_scale, int dtype, float clip_lo, float clip_hi, float delta,
                  float beta, int kl_estimator, float kl_clamp_d, float kl_clamp_v, bool bias_corrected, bool sequence, float agg_base,
                  bool agg_per_row_count, bool agg_total_count, bool agg_nonempty_rows) {
  RowArgs a{grpo_args(N, T, logp, old, ref, mask, adv, adv_per_token, w, w_per_token, coef, sequence,
                      GrpoParams{clip_lo, clip_hi, delta, beta, ref != 0, bias_corrected, kl_estimator, kl_clamp_d, kl_clamp_v}),
            nullptr};
  const RowKind kind = sequence                                ? RowKind::sequence
                       : adv_per_token || (w != 0 && w_per_token) ? RowKind::per_token
                                                                  : RowKind::constant;
  a.math = pick_chunk_math(a.params, kind);
  std::vector<float> slots(static_cast<size_t>(N) * kRowSlots);
  if (N > 0 && T > 0) {
    HARMO_DISPATCH_FLOATING(dtype, scalar_t, [&] { grpo_rows_mask<scalar_t>(mask_code, a, slots.data()); });
  }
  // Finish serially in double: O(N), and it keeps the loss independent of the thread count.
  double total = 0.0, rows = 0.0;
  int flags = 0;
  for (int64_t b = 0; b < N; ++b) {
    total += slots[b * kRowSlots + kRowCount];
    rows += slots[b * kRowSlots + kRowCount] > 0.0f ? 1.0 : 0.0;
    flags |= (slots[b * kRowSlots + kRowBadAdv] != 0.0f ? kBadAdvantages : 0) |
             (slots[b * kRowSlots + kRowBadWeight] != 0.0f ? kBadWeights : 0);
  }
  const AggPlan plan{agg_base, agg_per_row_count, agg_total_count, agg_nonempty_rows};
  const AggCounts counts{static_cast<float>(total), static_cast<float>(rows)};
  float* scale = as_ptr<float>(row_scale);
  double sums[kOutSlots] = {0.0, 0.0, 0.0, 0.0, 0.0};
  for (int64_t b = 0; b < N; ++b) {
    scale[b] = add_row_to_outputs(slots.data() + b * kRowSlots, plan, counts, sums);
  }
  write_outputs(sums, total, as_ptr<float>(out_loss), as_ptr<float>(out_stats));
  return flags;
}

template <class TL>
void scale_rows(TL* coef, const float* row_scale, float g, int64_t N, int64_t T) {
#pragma omp parallel for schedule(static) if (N * T > kParallelMinTokens)
  for (int64_t b = 0; b < N; ++b) {
    const float s = g * row_scale[b];
    TL* row = coef + b * T;
#pragma omp simd
    for (int64_t t = 0; t < T; ++t) store_at(row, t, load_at(row, t) * s);
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
        "Fused GRPO loss forward: loss into out_loss, the 4 metrics into out_stats, alpha_b into row_scale, "
        "per-token gradient coefficients into coef (0 = skip); returns bad-input flags",
        py::kw_only(), py::arg("n"), py::arg("t"), py::arg("logp"), py::arg("old"), py::arg("ref"),
        py::arg("mask"), py::arg("mask_dtype"), py::arg("adv"), py::arg("adv_per_token"), py::arg("w"),
        py::arg("w_per_token"), py::arg("coef"), py::arg("out_loss"), py::arg("out_stats"), py::arg("row_scale"),
        py::arg("dtype"), py::arg("clip_lo"), py::arg("clip_hi"), py::arg("delta"), py::arg("beta"),
        py::arg("kl_estimator"), py::arg("kl_clamp_d"), py::arg("kl_clamp_v"), py::arg("bias_corrected"), py::arg("sequence"), py::arg("agg_base"),
        py::arg("agg_per_row_count"), py::arg("agg_total_count"), py::arg("agg_nonempty_rows"));
  m.def("grpo_loss_bwd", &harmo::grpo_loss_bwd, py::call_guard<py::gil_scoped_release>(),
        "Scale the stored coefficients by grad_output * row_scale in place", py::kw_only(), py::arg("coef"), py::arg("row_scale"), py::arg("grad_output"), py::arg("n"), py::arg("t"),
        py::arg("dtype"));
  m.attr("grpo_row_slot_codes") = harmo::code_table(harmo::kGrpoRowSlotCodes);
  m.attr("grpo_bad_input_codes") = harmo::code_table(harmo::kGrpoBadInputCodes);
}
