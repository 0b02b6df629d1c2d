// CPU kernel of length_penalty: per group, the anchor (shortest correct length), then the output;
// OpenMP over groups once the batch is large enough to pay for the fork/join.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "common/dtypes.h"
#include "common/groups.h"
#include "common/registry.h"
#include "length_penalty/length_penalty_math.h"

namespace harmo {
namespace length_penalty {
namespace {

constexpr int64_t kParallelMinRows = int64_t{1} << 15;

// One pass before the parallel region (an exception must not leave an OpenMP region).
template <class L>
void check_nonnegative(const L* lengths, int64_t n) {
  L smallest = 0;
  for (int64_t i = 0; i < n; ++i) smallest = lengths[i] < smallest ? lengths[i] : smallest;
  if (smallest < 0)
    throw std::invalid_argument("length_penalty: lengths must be >= 0, got " + std::to_string(static_cast<int64_t>(smallest)));
}

// The shape is a template argument so the per-row loop carries no switch and vectorises (the
// per-row divide is kept: it decides d == tau exactly like the reference).
template <Shape kShape, class L, class R>
void run_groups(const L* lengths, const uint8_t* correct, float* out, int64_t n, const R& rows, int64_t num_groups,
                double p_max, double tau) {
#pragma omp parallel for schedule(static) if (n >= kParallelMinRows)
  for (int64_t g = 0; g < num_groups; ++g) {
    const int64_t begin = rows.begin(g), end = rows.end(g);
    int64_t anchor = INT64_MAX;
    uint8_t any_correct = 0;
    for (int64_t k = begin; k < end; ++k) {
      const int64_t row = rows.row(k);
      const int64_t len = static_cast<int64_t>(lengths[row]);
      anchor = correct[row] && len < anchor ? len : anchor;
      any_correct |= correct[row];
    }
    for (int64_t k = begin; k < end; ++k) {
      const int64_t row = rows.row(k);
      out[row] = penalty(static_cast<int64_t>(lengths[row]), correct[row] != 0, any_correct != 0, anchor, p_max, tau, kShape);
    }
  }
}

template <class L, class R>
void run_shape(const L* lengths, const uint8_t* correct, float* out, int64_t n, const R& rows, int64_t num_groups,
               double p_max, double tau, Shape shape) {
  switch (shape) {
    case Shape::linear: return run_groups<Shape::linear>(lengths, correct, out, n, rows, num_groups, p_max, tau);
    case Shape::exp: return run_groups<Shape::exp>(lengths, correct, out, n, rows, num_groups, p_max, tau);
    default: return run_groups<Shape::step>(lengths, correct, out, n, rows, num_groups, p_max, tau);
  }
}

template <class L>
void run(const L* lengths, const uint8_t* correct, float* out, int64_t n, const GroupLayout& groups, double p_max,
         double tau, Shape shape) {
  check_nonnegative(lengths, n);
  if (groups.size > 0) return run_shape(lengths, correct, out, n, Rows<true>{groups}, groups.num_groups, p_max, tau, shape);
  run_shape(lengths, correct, out, n, Rows<false>{groups}, groups.num_groups, p_max, tau, shape);
}

void length_penalty_cpu(std::uintptr_t lengths, int dtype, std::uintptr_t correct, std::uintptr_t out, int64_t n,
                        int64_t num_groups, int64_t group_size, std::uintptr_t order, std::uintptr_t offsets,
                        double p_max, double tau, int shape) {
  if (shape < 0 || shape > static_cast<int>(Shape::step)) throw std::invalid_argument("length_penalty: bad shape code");
  const GroupLayout groups = make_group_layout(num_groups, group_size, order, offsets);
  const auto* c = as_ptr<const uint8_t>(correct);
  auto* o = as_ptr<float>(out);
  switch (static_cast<DType>(dtype)) {
    case DType::i32: return run(as_ptr<const int32_t>(lengths), c, o, n, groups, p_max, tau, static_cast<Shape>(shape));
    case DType::i64: return run(as_ptr<const int64_t>(lengths), c, o, n, groups, p_max, tau, static_cast<Shape>(shape));
    default: throw std::invalid_argument("length_penalty: lengths must be int32 or int64");
  }
}

}  // namespace
}  // namespace length_penalty
}  // namespace harmo

HARMO_BIND(length_penalty) {
  m.def("length_penalty", &harmo::length_penalty::length_penalty_cpu, pybind11::kw_only(),
        pybind11::arg("lengths"), pybind11::arg("dtype"),
        pybind11::arg("correct"), pybind11::arg("out"), pybind11::arg("n"), pybind11::arg("num_groups"),
        pybind11::arg("group_size"), pybind11::arg("order"), pybind11::arg("offsets"), pybind11::arg("p_max"),
        pybind11::arg("tau"), pybind11::arg("shape"), pybind11::call_guard<pybind11::gil_scoped_release>(),
        "Length penalty (fp32 out) of N responses; groups are contiguous (group_size > 0) or CSR (order, "
        "offsets). Raw addresses in.");
  m.attr("length_penalty_shape_codes") = harmo::code_table(harmo::length_penalty::kShapeCodes);
}
