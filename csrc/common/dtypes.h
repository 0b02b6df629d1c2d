// Element types shared by the CPU and CUDA kernels. Half types are stored as raw 16-bit words
// and converted in registers, so the same __host__ __device__ math reads fp32, fp16 and bf16.
#pragma once
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define HARMO_HD __host__ __device__ __forceinline__
#else
#define HARMO_HD inline
#endif

namespace harmo {

// Codes passed from Python (harmo_fast/_native.py keeps the same table, checked against dtype_codes).
enum class DType : int { f32 = 0, f16 = 1, bf16 = 2, f64 = 3, i32 = 4, i64 = 5, b8 = 6 };

// One entry of a code table the modules export to Python as {name: code} (common/registry.h
// code_table), so that every Python copy of a C++ enum is tested against the enum itself.
struct NamedCode {
  const char* name;
  int code;
};

// b8 is any one-byte 0/1 element: torch.bool and uint8 masks alike.
inline constexpr NamedCode kDTypeCodes[] = {
    {"f32", static_cast<int>(DType::f32)}, {"f16", static_cast<int>(DType::f16)}, {"bf16", static_cast<int>(DType::bf16)},
    {"f64", static_cast<int>(DType::f64)}, {"i32", static_cast<int>(DType::i32)}, {"i64", static_cast<int>(DType::i64)},
    {"b8", static_cast<int>(DType::b8)},
};

struct bf16_t { uint16_t bits; };
struct f16_t { uint16_t bits; };

HARMO_HD float bits_to_float(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

HARMO_HD uint32_t float_to_bits(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

HARMO_HD float to_float(float x) { return x; }
HARMO_HD float to_float(double x) { return static_cast<float>(x); }
HARMO_HD float to_float(bf16_t x) { return bits_to_float(static_cast<uint32_t>(x.bits) << 16); }

HARMO_HD float to_float(f16_t x) {
  const uint32_t sign = (static_cast<uint32_t>(x.bits) & 0x8000u) << 16;
  const uint32_t exp = (x.bits >> 10) & 0x1fu;
  const uint32_t man = x.bits & 0x3ffu;
  if (exp == 0x1fu) return bits_to_float(sign | 0x7f800000u | (man << 13));  // inf / nan
  if (exp != 0) return bits_to_float(sign | ((exp + 112u) << 23) | (man << 13));
  // Subnormal (or zero): value = man * 2^-24, exact in fp32.
  const float mag = static_cast<float>(man) * 5.9604644775390625e-8f;
  return sign ? -mag : mag;
}

template <class T>
HARMO_HD T from_float(float x);

template <>
HARMO_HD float from_float<float>(float x) { return x; }

template <>
HARMO_HD double from_float<double>(float x) { return static_cast<double>(x); }

template <>
HARMO_HD bf16_t from_float<bf16_t>(float x) {
  uint32_t u = float_to_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16_t{static_cast<uint16_t>((u >> 16) | 0x40u)};
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return bf16_t{static_cast<uint16_t>(u >> 16)};
}

template <>
HARMO_HD f16_t from_float<f16_t>(float x) {
  const uint32_t u = float_to_bits(x);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t absu = u & 0x7fffffffu;
  if (absu > 0x7f800000u) return f16_t{static_cast<uint16_t>(sign | 0x7e00u)};  // nan
  if (absu >= 0x477ff000u) return f16_t{static_cast<uint16_t>(sign | 0x7c00u)};  // overflow -> inf
  if (absu < 0x38800000u) {  // result is subnormal or zero: round man * 2^24 to nearest even
    const float mag = bits_to_float(absu) * 16777216.0f;
    float r = static_cast<float>(static_cast<int>(mag));
    const float frac = mag - r;
    if (frac > 0.5f || (frac == 0.5f && (static_cast<int>(r) & 1))) r += 1.0f;
    return f16_t{static_cast<uint16_t>(sign | static_cast<uint16_t>(r))};
  }
  uint32_t v = absu - (112u << 23);
  v += 0xfffu + ((v >> 13) & 1u);
  return f16_t{static_cast<uint16_t>(sign | (v >> 13))};
}

}  // namespace harmo

// Runs BODY with scalar_t bound to the element type named by a DType code (fp32/fp16/bf16).
#define HARMO_DISPATCH_FLOATING(code, scalar_t, ...)                                   \
  [&] {                                                                                  \
    switch (static_cast<::harmo::DType>(code)) {                                         \
      case ::harmo::DType::f32: { using scalar_t = float; return __VA_ARGS__(); }        \
      case ::harmo::DType::f16: { using scalar_t = ::harmo::f16_t; return __VA_ARGS__(); } \
      case ::harmo::DType::bf16: { using scalar_t = ::harmo::bf16_t; return __VA_ARGS__(); } \
      default: throw std::invalid_argument("harmo_fast: unsupported floating dtype code"); \
    }                                                                                    \
  }()
