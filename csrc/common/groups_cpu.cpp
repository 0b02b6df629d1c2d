// The CSR form of arbitrary group ids on the CPU (harmo_fast/ops/_groups.py layout): rows sorted
// stably by id and the offsets where each group starts. A counting sort when the ids span a small
// range (prompt indices, the usual case), a stable comparison sort otherwise; both avoid the cost
// of a general torch.sort call on the critical path.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "common/dtypes.h"
#include "common/registry.h"

namespace harmo {
namespace {

template <class I>
int64_t build_groups(const I* ids, int64_t n, int64_t* order, int64_t* offsets) {
  if (n == 0) {
    offsets[0] = 0;
    return 0;
  }
  const auto [lo_it, hi_it] = std::minmax_element(ids, ids + n);
  const int64_t lo = static_cast<int64_t>(*lo_it), hi = static_cast<int64_t>(*hi_it);
  int64_t num_groups = 0;
  // hi - lo as unsigned: int64 ids may span more than INT64_MAX.
  const uint64_t span = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);
  if (span < static_cast<uint64_t>(4 * n + 1024)) {
    std::vector<int64_t> start(static_cast<size_t>(span) + 1, 0);
    for (int64_t i = 0; i < n; ++i) ++start[static_cast<size_t>(static_cast<int64_t>(ids[i]) - lo)];
    int64_t pos = 0;
    for (int64_t& s : start) {
      const int64_t count = s;
      s = pos;
      if (count > 0) offsets[num_groups++] = pos;
      pos += count;
    }
    for (int64_t i = 0; i < n; ++i) order[start[static_cast<size_t>(static_cast<int64_t>(ids[i]) - lo)]++] = i;
  } else {
    std::iota(order, order + n, int64_t{0});
    std::stable_sort(order, order + n, [ids](int64_t a, int64_t b) { return ids[a] < ids[b]; });
    for (int64_t k = 0; k < n; ++k) {
      if (k == 0 || ids[order[k]] != ids[order[k - 1]]) offsets[num_groups++] = k;
    }
  }
  offsets[num_groups] = n;
  return num_groups;
}

// order: n int64, offsets: n + 1 int64 (room for n groups); returns the number of groups.
int64_t group_layout_cpu(std::uintptr_t ids, int dtype, int64_t n, std::uintptr_t order, std::uintptr_t offsets) {
  switch (static_cast<DType>(dtype)) {
    case DType::i32: return build_groups(as_ptr<const int32_t>(ids), n, as_ptr<int64_t>(order), as_ptr<int64_t>(offsets));
    case DType::i64: return build_groups(as_ptr<const int64_t>(ids), n, as_ptr<int64_t>(order), as_ptr<int64_t>(offsets));
    default: throw std::invalid_argument("group_layout: group_ids must be int32 or int64");
  }
}

}  // namespace
}  // namespace harmo

HARMO_BIND(group_layout) {
  m.def("group_layout", &harmo::group_layout_cpu, pybind11::kw_only(), pybind11::arg("ids"), pybind11::arg("dtype"), pybind11::arg("n"),
        pybind11::arg("order"), pybind11::arg("offsets"), pybind11::call_guard<pybind11::gil_scoped_release>(),
        "CSR groups of n ids: rows stably sorted by id into order (n), group starts into offsets (n + 1); "
        "returns the number of groups.");
}
