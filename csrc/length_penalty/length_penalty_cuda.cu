// CUDA kernel of length_penalty: one warp per group; the anchor (shortest correct length) by a warp
// min, then the penalty per row from the shared math.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "common/dtypes.h"
#include "common/groups.h"
#include "common/registry.h"
#include "length_penalty/length_penalty_math.h"

namespace harmo {
namespace length_penalty {
namespace {

constexpr int kWarp = 32;
constexpr int kThreads = 256;

template <class L>
__global__ void length_penalty_kernel(const L* __restrict__ lengths, const uint8_t* __restrict__ correct,
                                      float* __restrict__ out, GroupLayout groups, double p_max, double tau,
                                      Shape shape) {
  const int64_t g = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (g >= groups.num_groups) return;  // g is uniform within a warp
  const int64_t begin = groups.begin(g), end = groups.end(g);
  long long anchor = LLONG_MAX;
  bool any_correct = false;
  for (int64_t k = begin + lane; k < end; k += kWarp) {
    const int64_t row = groups.row(k);
    if (correct[row]) {
      any_correct = true;
      const long long len = static_cast<long long>(lengths[row]);
      anchor = len < anchor ? len : anchor;
    }
  }
  for (int s = kWarp / 2; s > 0; s >>= 1) {
    const long long o = __shfl_xor_sync(0xffffffffu, anchor, s);
    anchor = o < anchor ? o : anchor;
  }
  const bool has_anchor = __any_sync(0xffffffffu, any_correct);
  for (int64_t k = begin + lane; k < end; k += kWarp) {
    const int64_t row = groups.row(k);
    out[row] = penalty(static_cast<int64_t>(lengths[row]), correct[row] != 0, has_anchor, anchor, p_max, tau, shape);
  }
}

void length_penalty_cuda(std::uintptr_t lengths, int dtype, std::uintptr_t correct, std::uintptr_t out, int64_t n,
                         int64_t num_groups, int64_t group_size, std::uintptr_t order, std::uintptr_t offsets,
                         double p_max, double tau, int shape, std::uintptr_t stream_handle) {
  if (shape < 0 || shape > static_cast<int>(Shape::step)) throw std::invalid_argument("length_penalty: bad shape code");
  if (n == 0 || num_groups == 0) return;
  const GroupLayout groups = make_group_layout(num_groups, group_size, order, offsets);
  const auto stream = reinterpret_cast<cudaStream_t>(stream_handle);
  const auto blocks = static_cast<unsigned>((num_groups * kWarp + kThreads - 1) / kThreads);
  const auto* c = as_ptr<const uint8_t>(correct);
  auto* o = as_ptr<float>(out);
  const Shape s = static_cast<Shape>(shape);
  switch (static_cast<DType>(dtype)) {
    case DType::i32:
      length_penalty_kernel<<<blocks, kThreads, 0, stream>>>(as_ptr<const int32_t>(lengths), c, o, groups, p_max, tau, s);
      break;
    case DType::i64:
      length_penalty_kernel<<<blocks, kThreads, 0, stream>>>(as_ptr<const int64_t>(lengths), c, o, groups, p_max, tau, s);
      break;
    default: throw std::invalid_argument("length_penalty: lengths must be int32 or int64");
  }
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw std::runtime_error(std::string("length_penalty: launch failed: ") + cudaGetErrorString(err));
}

}  // namespace
}  // namespace length_penalty
}  // namespace harmo

HARMO_BIND(length_penalty) {
  m.def("length_penalty", &harmo::length_penalty::length_penalty_cuda, pybind11::kw_only(),
        pybind11::arg("lengths"), pybind11::arg("dtype"),
        pybind11::arg("correct"), pybind11::arg("out"), pybind11::arg("n"), pybind11::arg("num_groups"),
        pybind11::arg("group_size"), pybind11::arg("order"), pybind11::arg("offsets"), pybind11::arg("p_max"),
        pybind11::arg("tau"), pybind11::arg("shape"), pybind11::arg("stream"),
        pybind11::call_guard<pybind11::gil_scoped_release>(),
        "Length penalty on the device (fp32 out). Raw addresses and the stream in.");
  m.attr("length_penalty_shape_codes") = harmo::code_table(harmo::length_penalty::kShapeCodes);
}
