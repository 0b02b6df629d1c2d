// General fast-math and half-precision helpers for the CPU and CUDA kernels: a branch-free fp32
// exp, a NaN-propagating clamp, and element loads/stores of fp32/fp16/bf16 written with selects, so
// the loops that use them vectorise.
#pragma once
#include <cmath>
#include <cstdint>

#include "common/dtypes.h"

namespace harmo {

// NaN-propagating clamp with torch.clamp's semantics (fminf/fmaxf would swallow a NaN).
HARMO_HD float clamp_nan(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

// exp(x) in fp32. On the host, libm's expf is an opaque call (and floorf does not vectorise
// without -ffast-math), so this is Cephes' expf (about 1 ulp) written without branches:
// x = k ln2 + f with k rounded by the 1.5 * 2^23 shifter trick, exp(x) = 2^k exp(f), 2^k split
// into two factors so that results down to the subnormal range come out right. A NaN x stays
// NaN through clamp_nan and the polynomial.
HARMO_HD float exp_f32(float x) {
#ifdef __CUDA_ARCH__
  return expf(x);
#else
  const float shifter = 12582912.0f;
  const float xc = clamp_nan(x, -104.0f, 89.0f);
  const float shifted = xc * 1.44269504088896341f + shifter;
  const float k = shifted - shifter;
  const int32_t ki = static_cast<int32_t>(float_to_bits(shifted) - float_to_bits(shifter));
  const float f = (xc - k * 0.693359375f) + k * 2.12194440e-4f;
  const float z = f * f;
  float p = 1.9875691500e-4f;
  p = p * f + 1.3981999507e-3f;
  p = p * f + 8.3334519073e-3f;
  p = p * f + 4.1665795894e-2f;
  p = p * f + 1.6666665459e-1f;
  p = p * f + 5.0000001201e-1f;
  p = p * z + f + 1.0f;
  const int32_t k1 = ki >> 1;
  const int32_t k2 = ki - k1;
  const float s1 = bits_to_float(static_cast<uint32_t>(k1 + 127) << 23);
  const float s2 = bits_to_float(static_cast<uint32_t>(k2 + 127) << 23);
  return p * s1 * s2;
#endif
}

// Element loads/stores for vectorised loops. dtypes.h's fp16/bf16 conversions branch on special
// values and pass 2-byte structs by value, both of which keep GCC from vectorising the loop around
// them; these read and write the raw 16-bit words with selects. Same results, NaN kept as NaN.
HARMO_HD float half_bits_to_float(uint32_t h) {
  // Scale the shifted exponent/mantissa by 2^112: exact for normals and subnormals alike.
  float mag = bits_to_float((h & 0x7fffu) << 13) * 5.192296858534828e33f;
  mag = (h & 0x7c00u) == 0x7c00u ? bits_to_float(0x7f800000u | ((h & 0x3ffu) << 13)) : mag;
  return bits_to_float(float_to_bits(mag) | ((h & 0x8000u) << 16));
}

HARMO_HD uint16_t float_to_bf16_bits(float x) {
  const uint32_t u = float_to_bits(x);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;  // round to nearest even
  const uint32_t quiet = (u >> 16) | 0x40u;
  return static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? quiet : rounded);
}

HARMO_HD float load_at(const float* p, int64_t i) { return p[i]; }
HARMO_HD float load_at(const bf16_t* p, int64_t i) {
  return bits_to_float(static_cast<uint32_t>(reinterpret_cast<const uint16_t*>(p)[i]) << 16);
}
HARMO_HD float load_at(const f16_t* p, int64_t i) {
  return half_bits_to_float(reinterpret_cast<const uint16_t*>(p)[i]);
}

HARMO_HD void store_at(float* p, int64_t i, float x) { p[i] = x; }
HARMO_HD void store_at(bf16_t* p, int64_t i, float x) { reinterpret_cast<uint16_t*>(p)[i] = float_to_bf16_bits(x); }
HARMO_HD void store_at(f16_t* p, int64_t i, float x) { p[i] = from_float<f16_t>(x); }  // rare dtype: scalar is fine

}  // namespace harmo
