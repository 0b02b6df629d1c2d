// Length-penalty math shared by the CPU and CUDA kernels (docs/SPEC.md §1): within a group, an
// incorrect response shorter than the shortest correct one (the anchor L*) gets
// -p_max * g((L* - L) / L*; tau); every other response, and every response of a group without a
// correct one, gets 0. Computed in double so that the boundary d == tau is decided exactly as the
// float64 torch reference decides it.
#pragma once
#include <cmath>
#include <cstdint>

#include "common/dtypes.h"

namespace harmo {
namespace length_penalty {

// Codes passed from Python: harmo_fast/ops/length_penalty.py SHAPES keeps the same table, checked
// against the exported length_penalty_shape_codes.
enum class Shape : int { linear = 0, exp = 1, step = 2 };
inline constexpr NamedCode kShapeCodes[] = {
    {"linear", static_cast<int>(Shape::linear)},
    {"exp", static_cast<int>(Shape::exp)},
    {"step", static_cast<int>(Shape::step)},
};

HARMO_HD double shape_value(Shape shape, double d, double tau) {
  switch (shape) {
    case Shape::linear: return fmin(1.0, d / tau);
    case Shape::exp: return 1.0 - exp(-d / tau);
    default: return d >= tau ? 1.0 : 0.0;
  }
}

// The penalty of one response given its group's anchor (has_anchor: the group has a correct one).
// Branch-free (a select at the end), so the CPU loop over a group vectorises.
HARMO_HD float penalty(int64_t length, bool correct, bool has_anchor, int64_t anchor, double p_max, double tau,
                       Shape shape) {
  const bool penalised = !correct && has_anchor && length < anchor;
  const double d = static_cast<double>(anchor - length) / static_cast<double>(anchor > 0 ? anchor : 1);
  // 0.0 - x rather than -x: a zero penalty is +0, never -0.
  return penalised ? static_cast<float>(0.0 - p_max * shape_value(shape, d, tau)) : 0.0f;
}

}  // namespace length_penalty
}  // namespace harmo
