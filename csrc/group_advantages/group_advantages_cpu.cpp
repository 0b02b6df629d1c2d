// CPU kernels of group_advantages: statistics then output per group, OpenMP over groups once the
// batch is large enough to pay for the fork/join.
#include <stdexcept>
#include <vector>

#include "common/dtypes.h"
#include "common/groups.h"
#include "common/registry.h"
#include "group_advantages/group_advantages_math.h"

namespace harmo {
namespace advantages {
namespace {

// Below this many rows one thread finishes before a parallel region would have started.
constexpr int64_t kParallelMinRows = int64_t{1} << 15;

struct Moments {
  double count = 0.0;       // non-NaN rewards
  double pivot = 0.0;       // the group's first non-NaN reward (0 when it has none)
  double shift_mean = 0.0;  // mean of (r - pivot)
  double m2 = 0.0;          // sum of squared deviations from the mean
};

template <class T, class R>
Moments group_moments(const T* rewards, const R& rows, int64_t g, bool need_m2) {
  const int64_t begin = rows.begin(g), end = rows.end(g);
  Moments m;
  int64_t first = begin;
  while (first < end && !is_present(to_float(rewards[rows.row(first)]))) ++first;
  if (first == end) return m;
  m.pivot = to_float(rewards[rows.row(first)]);
  double sum = 0.0;
  for (int64_t k = first; k < end; ++k) {
    const float r = to_float(rewards[rows.row(k)]);
    if (is_present(r)) {
      m.count += 1.0;
      sum += static_cast<double>(r) - m.pivot;
    }
  }
  m.shift_mean = sum / m.count;
  if (need_m2) {
    for (int64_t k = first; k < end; ++k) {
      const float r = to_float(rewards[rows.row(k)]);
      if (is_present(r)) {
        const double d = static_cast<double>(r) - m.pivot - m.shift_mean;
        m.m2 += d * d;
      }
    }
  }
  return m;
}

template <class T, class R>
void write_group(const T* rewards, float* out, const R& rows, int64_t g, const Moments& m, double inv_denom) {
  const int64_t end = rows.end(g);
  for (int64_t k = rows.begin(g); k < end; ++k) {
    const int64_t row = rows.row(k);
    const float r = to_float(rewards[row]);
    out[row] = advantage(is_present(r), static_cast<double>(r) - m.pivot, m.shift_mean, inv_denom);
  }
}

template <class T, class R>
void general_group(const T* rewards, float* out, const R& rows, int64_t g, Scale scale, double eps, bool unbiased) {
  const Moments m = group_moments(rewards, rows, g, scale == Scale::group);
  write_group(rewards, out, rows, g, m, inverse_denominator(scale, std_from_m2(m.m2, m.count, unbiased), eps));
}

// One contiguous group of a compile-time size, branch-free so that the compiler vectorises the
// loop over groups (several groups per vector register, where the general loops handle one). The
// pivot is the first reward; a NaN anywhere makes every output of the group NaN, and such groups
// are redone on the NaN-aware path.
template <int64_t kG, bool kDivideByStd, class T>
HARMO_HD void fixed_group(const T* group, float* out, double eps, bool unbiased) {
  const double pivot = to_float(group[0]);
  double sum = 0.0;
  for (int64_t k = 0; k < kG; ++k) sum += static_cast<double>(to_float(group[k])) - pivot;
  const double shift_mean = sum / static_cast<double>(kG);
  double inv = 1.0;
  if constexpr (kDivideByStd) {
    double m2 = 0.0;
    for (int64_t k = 0; k < kG; ++k) {
      const double d = static_cast<double>(to_float(group[k])) - pivot - shift_mean;
      m2 += d * d;
    }
    inv = inverse_denominator(Scale::group, std_from_m2(m2, static_cast<double>(kG), unbiased), eps);
  }
  for (int64_t k = 0; k < kG; ++k)
    out[k] = static_cast<float>((static_cast<double>(to_float(group[k])) - pivot - shift_mean) * inv);
}

template <int64_t kG, bool kDivideByStd, class T>
void run_fixed(const T* rewards, float* out, const GroupLayout& groups, double eps, bool unbiased, bool parallel) {
  const int64_t num_groups = groups.num_groups;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t g = 0; g < num_groups; ++g) fixed_group<kG, kDivideByStd>(rewards + g * kG, out + g * kG, eps, unbiased);
  const Scale scale = kDivideByStd ? Scale::group : Scale::none;
  for (int64_t g = 0; g < num_groups; ++g) {
    if (!is_present(out[g * kG])) general_group(rewards, out, Rows<true>{groups}, g, scale, eps, unbiased);
  }
}

template <int64_t kG, class T>
void run_fixed(const T* rewards, float* out, const GroupLayout& groups, Scale scale, double eps, bool unbiased,
               bool parallel) {
  if (scale == Scale::group) return run_fixed<kG, true>(rewards, out, groups, eps, unbiased, parallel);
  run_fixed<kG, false>(rewards, out, groups, eps, unbiased, parallel);
}

template <class T, class R>
void run_general(const T* rewards, float* out, const R& rows, int64_t num_groups, Scale scale, double eps,
                 bool unbiased, bool parallel) {
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t g = 0; g < num_groups; ++g) general_group(rewards, out, rows, g, scale, eps, unbiased);
}

// Batch scale: the mean stays per group, the std is over every non-NaN reward of the batch, so
// the statistics of all groups come first and the output second.
template <class T, class R>
void run_batch(const T* rewards, float* out, const R& rows, int64_t num_groups, double eps, bool unbiased,
               bool parallel) {
  std::vector<Moments> moments(static_cast<size_t>(num_groups));
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t g = 0; g < num_groups; ++g) moments[g] = group_moments(rewards, rows, g, true);
  double count = 0.0, total = 0.0;
  for (const Moments& m : moments) {
    count += m.count;
    total += m.count * (m.pivot + m.shift_mean);
  }
  const double batch_mean = count > 0.0 ? total / count : 0.0;
  double m2 = 0.0;
  for (const Moments& m : moments) m2 += between_group_m2(Summary{m.count, m.pivot + m.shift_mean, m.m2}, batch_mean);
  const double inv = inverse_denominator(Scale::batch, std_from_m2(m2, count, unbiased), eps);
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t g = 0; g < num_groups; ++g) write_group(rewards, out, rows, g, moments[g], inv);
}

template <class T>
void run(const T* rewards, float* out, int64_t n, const GroupLayout& groups, Scale scale, double eps, bool unbiased) {
  const bool parallel = n >= kParallelMinRows;
  if (groups.size <= 0) {
    const Rows<false> rows{groups};
    if (scale == Scale::batch) return run_batch(rewards, out, rows, groups.num_groups, eps, unbiased, parallel);
    return run_general(rewards, out, rows, groups.num_groups, scale, eps, unbiased, parallel);
  }
  const Rows<true> rows{groups};
  if (scale == Scale::batch) return run_batch(rewards, out, rows, groups.num_groups, eps, unbiased, parallel);
  // Group sizes common in GRPO get a compile-time-size kernel; other sizes take the general one.
  switch (groups.size) {
    case 2: return run_fixed<2>(rewards, out, groups, scale, eps, unbiased, parallel);
    case 4: return run_fixed<4>(rewards, out, groups, scale, eps, unbiased, parallel);
    case 8: return run_fixed<8>(rewards, out, groups, scale, eps, unbiased, parallel);
    case 16: return run_fixed<16>(rewards, out, groups, scale, eps, unbiased, parallel);
    case 32: return run_fixed<32>(rewards, out, groups, scale, eps, unbiased, parallel);
    case 64: return run_fixed<64>(rewards, out, groups, scale, eps, unbiased, parallel);
    default: return run_general(rewards, out, rows, groups.num_groups, scale, eps, unbiased, parallel);
  }
}

void group_advantages_cpu(std::uintptr_t rewards, int dtype, std::uintptr_t out, int64_t n, int64_t num_groups,
                          int64_t group_size, std::uintptr_t order, std::uintptr_t offsets, int scale, double eps,
                          bool unbiased) {
  if (scale < 0 || scale > static_cast<int>(Scale::batch)) throw std::invalid_argument("group_advantages: bad scale code");
  const GroupLayout groups = make_group_layout(num_groups, group_size, order, offsets);
  HARMO_DISPATCH_FLOATING(dtype, scalar_t, [&] {
    run(as_ptr<const scalar_t>(rewards), as_ptr<float>(out), n, groups, static_cast<Scale>(scale), eps, unbiased);
  });
}

}  // namespace
}  // namespace advantages
}  // namespace harmo

HARMO_BIND(group_advantages) {
  m.def("group_advantages", &harmo::advantages::group_advantages_cpu, pybind11::kw_only(),
        pybind11::arg("rewards"), pybind11::arg("dtype"),
        pybind11::arg("out"), pybind11::arg("n"), pybind11::arg("num_groups"), pybind11::arg("group_size"),
        pybind11::arg("order"), pybind11::arg("offsets"), pybind11::arg("scale"), pybind11::arg("eps"),
        pybind11::arg("unbiased"), pybind11::call_guard<pybind11::gil_scoped_release>(),
        "Group-relative advantages (fp32 out) of N rewards; groups are contiguous (group_size > 0) or CSR "
        "(order, offsets). Raw addresses in.");
  m.attr("advantage_scale_codes") = harmo::code_table(harmo::advantages::kScaleCodes);
}
