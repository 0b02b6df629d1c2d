// How the N rows of a batch split into groups, in one form for every kernel: contiguous blocks of
// `size` rows (the fast, common case), or CSR lists built in Python from arbitrary group ids.
#pragma once
#include <cstdint>

#include "common/dtypes.h"

namespace harmo {

struct GroupLayout {
  int64_t num_groups;
  int64_t size;            // > 0: group g is rows [g * size, (g + 1) * size)
  const int64_t* order;    // size == 0: group g is rows order[offsets[g] .. offsets[g + 1])
  const int64_t* offsets;

  HARMO_HD int64_t begin(int64_t g) const { return size > 0 ? g * size : offsets[g]; }
  HARMO_HD int64_t end(int64_t g) const { return size > 0 ? (g + 1) * size : offsets[g + 1]; }
  HARMO_HD int64_t row(int64_t k) const { return size > 0 ? k : order[k]; }
};

inline GroupLayout make_group_layout(int64_t num_groups, int64_t size, std::uintptr_t order,
                                     std::uintptr_t offsets) {
  return GroupLayout{num_groups, size, reinterpret_cast<const int64_t*>(order),
                     reinterpret_cast<const int64_t*>(offsets)};
}

// A GroupLayout whose form is fixed at compile time, so CPU loops over contiguous groups carry
// no indirection and no runtime branch.
template <bool kContiguous>
struct Rows {
  const GroupLayout& groups;
  int64_t begin(int64_t g) const { return kContiguous ? g * groups.size : groups.offsets[g]; }
  int64_t end(int64_t g) const { return kContiguous ? (g + 1) * groups.size : groups.offsets[g + 1]; }
  int64_t row(int64_t k) const {
    if constexpr (kContiguous) return k;
    else return groups.order[k];
  }
};

}  // namespace harmo
