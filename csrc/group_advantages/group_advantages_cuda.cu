// CUDA kernels of group_advantages: one warp per group (lanes stride over the group's rows),
// statistics in double with warp shuffles; batch scale adds a one-block combination of the group
// summaries and an elementwise rescale.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "common/dtypes.h"
#include "common/groups.h"
#include "common/registry.h"
#include "group_advantages/group_advantages_math.h"

namespace harmo {
namespace advantages {
namespace {

constexpr int kWarp = 32;
constexpr int kThreads = 256;
constexpr int kCombineThreads = 1024;

__device__ __forceinline__ double warp_sum(double v) {
  for (int s = kWarp / 2; s > 0; s >>= 1) v += __shfl_xor_sync(0xffffffffu, v, s);
  return v;
}

__device__ __forceinline__ long long warp_min(long long v) {
  for (int s = kWarp / 2; s > 0; s >>= 1) {
    const long long o = __shfl_xor_sync(0xffffffffu, v, s);
    v = o < v ? o : v;
  }
  return v;
}

template <class T>
__global__ void group_kernel(const T* __restrict__ rewards, float* __restrict__ out, GroupLayout groups, Scale scale,
                             double eps, bool unbiased, Summary* __restrict__ summaries) {
  const int64_t g = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (g >= groups.num_groups) return;  // whole warps leave together: g is uniform within a warp
  const int64_t begin = groups.begin(g), end = groups.end(g);

  long long first = end;  // the pivot: the group's first non-NaN reward in row order
  for (int64_t k = begin + lane; k < end; k += kWarp) {
    if (is_present(to_float(rewards[groups.row(k)]))) {
      first = k;
      break;
    }
  }
  first = warp_min(first);
  const double pivot = first < end ? static_cast<double>(to_float(rewards[groups.row(first)])) : 0.0;

  double count = 0.0, sum = 0.0;
  for (int64_t k = begin + lane; k < end; k += kWarp) {
    const float r = to_float(rewards[groups.row(k)]);
    if (is_present(r)) {
      count += 1.0;
      sum += static_cast<double>(r) - pivot;
    }
  }
  count = warp_sum(count);
  const double shift_mean = count > 0.0 ? warp_sum(sum) / count : 0.0;

  double inv = 1.0;
  if (scale != Scale::none) {
    double m2 = 0.0;
    for (int64_t k = begin + lane; k < end; k += kWarp) {
      const float r = to_float(rewards[groups.row(k)]);
      const double d = static_cast<double>(r) - pivot - shift_mean;
      m2 += is_present(r) ? d * d : 0.0;
    }
    m2 = warp_sum(m2);
    if (scale == Scale::group) {
      inv = inverse_denominator(scale, std_from_m2(m2, count, unbiased), eps);
    } else if (lane == 0) {
      summaries[g] = Summary{count, pivot + shift_mean, m2};  // rescaled once the batch std is known
    }
  }
  for (int64_t k = begin + lane; k < end; k += kWarp) {
    const int64_t row = groups.row(k);
    const float r = to_float(rewards[row]);
    out[row] = advantage(is_present(r), static_cast<double>(r) - pivot, shift_mean, inv);
  }
}

// One block: M2_batch = sum_g M2_g + sum_g n_g (mean_g - mean)^2, then 1 / (std + eps) into *inv.
__global__ void batch_inverse_std_kernel(const Summary* __restrict__ summaries, int64_t num_groups, double eps,
                                         bool unbiased, double* __restrict__ inv) {
  __shared__ double a[kCombineThreads];
  __shared__ double b[kCombineThreads];
  double n = 0.0, total = 0.0;
  for (int64_t g = threadIdx.x; g < num_groups; g += blockDim.x) {
    n += summaries[g].count;
    total += summaries[g].count * summaries[g].mean;
  }
  a[threadIdx.x] = n;
  b[threadIdx.x] = total;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      a[threadIdx.x] += a[threadIdx.x + s];
      b[threadIdx.x] += b[threadIdx.x + s];
    }
    __syncthreads();
  }
  const double count = a[0];
  const double mean = count > 0.0 ? b[0] / count : 0.0;
  __syncthreads();
  double m2 = 0.0;
  for (int64_t g = threadIdx.x; g < num_groups; g += blockDim.x) m2 += between_group_m2(summaries[g], mean);
  a[threadIdx.x] = m2;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) a[threadIdx.x] += a[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) *inv = inverse_denominator(Scale::batch, std_from_m2(a[0], count, unbiased), eps);
}

__global__ void rescale_kernel(float* __restrict__ out, int64_t n, const double* __restrict__ inv) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = static_cast<float>(static_cast<double>(out[i]) * *inv);
}

void check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw std::runtime_error(std::string("group_advantages: ") + what + " launch failed: " + cudaGetErrorString(err));
}

// Doubles of device workspace a call needs: batch scale keeps one Summary per group, then the
// batch's inverse std.
int64_t workspace_doubles(int64_t num_groups, int scale) {
  if (static_cast<Scale>(scale) != Scale::batch) return 0;
  return num_groups * static_cast<int64_t>(sizeof(Summary) / sizeof(double)) + 1;
}

void group_advantages_cuda(std::uintptr_t rewards, int dtype, std::uintptr_t out, int64_t n, int64_t num_groups,
                           int64_t group_size, std::uintptr_t order, std::uintptr_t offsets, int scale, double eps,
                           bool unbiased, std::uintptr_t workspace, std::uintptr_t stream_handle) {
  if (scale < 0 || scale > static_cast<int>(Scale::batch)) throw std::invalid_argument("group_advantages: bad scale code");
  if (num_groups == 0) return;
  const GroupLayout groups = make_group_layout(num_groups, group_size, order, offsets);
  const auto stream = reinterpret_cast<cudaStream_t>(stream_handle);
  const Scale s = static_cast<Scale>(scale);
  auto* summaries = as_ptr<Summary>(workspace);
  const int64_t blocks = (num_groups * kWarp + kThreads - 1) / kThreads;
  HARMO_DISPATCH_FLOATING(dtype, scalar_t, [&] {
    group_kernel<scalar_t><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
        as_ptr<const scalar_t>(rewards), as_ptr<float>(out), groups, s, eps, unbiased, summaries);
  });
  check_launch("group kernel");
  if (s != Scale::batch) return;
  auto* inv = reinterpret_cast<double*>(summaries + num_groups);
  batch_inverse_std_kernel<<<1, kCombineThreads, 0, stream>>>(summaries, num_groups, eps, unbiased, inv);
  check_launch("batch std kernel");
  rescale_kernel<<<static_cast<unsigned>((n + kThreads - 1) / kThreads), kThreads, 0, stream>>>(as_ptr<float>(out), n, inv);
  check_launch("rescale kernel");
}

}  // namespace
}  // namespace advantages
}  // namespace harmo

HARMO_BIND(group_advantages) {
  m.def("group_advantages", &harmo::advantages::group_advantages_cuda, pybind11::kw_only(),
        pybind11::arg("rewards"), pybind11::arg("dtype"),
        pybind11::arg("out"), pybind11::arg("n"), pybind11::arg("num_groups"), pybind11::arg("group_size"),
        pybind11::arg("order"), pybind11::arg("offsets"), pybind11::arg("scale"), pybind11::arg("eps"),
        pybind11::arg("unbiased"), pybind11::arg("workspace"), pybind11::arg("stream"),
        pybind11::call_guard<pybind11::gil_scoped_release>(),
        "Group-relative advantages on the device (fp32 out); workspace: group_advantages_workspace(...) "
        "doubles. Raw addresses and the stream in.");
  m.def("group_advantages_workspace", &harmo::advantages::workspace_doubles, pybind11::kw_only(),
        pybind11::arg("num_groups"), pybind11::arg("scale"),
        "Doubles of device workspace group_advantages needs for num_groups groups and a scale code");
  m.attr("advantage_scale_codes") = harmo::code_table(harmo::advantages::kScaleCodes);
}
