// Group-relative advantage math shared by the CPU and CUDA kernels (docs/SPEC.md §2).
//
// Statistics are taken over a group's non-NaN rewards, in double. Deviations are measured from a
// pivot (the group's first non-NaN reward): a group of equal rewards then has deviations that are
// exactly 0, so its mean deviation and every advantage are exactly 0, with none of the rounding
// residue a plain fp32 mean leaves (TRL and verl leave up to 6e-4 and 5e-2 there).
#pragma once
#include <cmath>

#include "common/dtypes.h"

namespace harmo {
namespace advantages {

// Codes passed from Python: harmo_fast/ops/group_advantages.py SCALES keeps the same table, checked
// against the exported advantage_scale_codes.
enum class Scale : int { none = 0, group = 1, batch = 2 };
inline constexpr NamedCode kScaleCodes[] = {
    {"none", static_cast<int>(Scale::none)},
    {"group", static_cast<int>(Scale::group)},
    {"batch", static_cast<int>(Scale::batch)},
};

HARMO_HD bool is_present(float r) { return r == r; }

// A group's statistics: count of non-NaN rewards, mean and sum of squared deviations (M2).
struct Summary {
  double count;
  double mean;
  double m2;
};

// Standard deviation from M2; 0 where it is undefined (one value, or none): those groups have
// all-zero deviations, so their advantages are 0 whatever the denominator.
HARMO_HD double std_from_m2(double m2, double count, bool unbiased) {
  const double dof = unbiased ? count - 1.0 : count;
  return dof > 0.0 ? sqrt(m2 / dof) : 0.0;
}

// Combination of group summaries, one step of the exact decomposition
// M2_batch = sum_g M2_g + sum_g n_g (mean_g - mean_batch)^2, used once batch_mean is known.
HARMO_HD double between_group_m2(const Summary& s, double batch_mean) {
  const double d = s.mean - batch_mean;
  return s.m2 + s.count * d * d;
}

// 1 / divisor of the centred reward for a scale mode; 0 where the divisor is 0 (eps = 0 and a
// zero std), since every centred reward of such a group or batch is 0 and must stay 0.
HARMO_HD double inverse_denominator(Scale scale, double std_dev, double eps) {
  const double denom = scale == Scale::none ? 1.0 : std_dev + eps;
  return denom > 0.0 ? 1.0 / denom : 0.0;
}

// The advantage of one reward from its deviation from the pivot and the group's mean deviation.
HARMO_HD float advantage(bool present, double from_pivot, double shift_mean, double inv_denom) {
  return present ? static_cast<float>((from_pivot - shift_mean) * inv_denom) : 0.0f;
}

}  // namespace advantages
}  // namespace harmo
