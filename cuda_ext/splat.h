// Forward splatting of a left view into the right view: declarations shared by the binding
// (splat.cpp) and the kernel (splat_kernel.cu).
#pragma once

// Only ATen's tensor headers: splat_kernel.cu compiles much faster without torch/extension.h.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>

#include <cstdint>
#include <string>
#include <tuple>

namespace sc3d {

// Error messages format numbers with std::to_string, never through std::ostream (c10::str): on the
// H100 test image (torch 2.11.0 wheel, g++ 13.3) streaming an integer from this extension crashed
// inside libstdc++ (std::ostream::_M_insert<long>), turning every failed check into a segfault.
inline std::string num(int64_t value) { return std::to_string(value); }

inline std::string shape(at::IntArrayRef sizes) {
  std::string out = "[";
  for (size_t i = 0; i < sizes.size(); ++i) out += (i ? ", " : "") + std::to_string(sizes[i]);
  return out + "]";
}

// Largest row width (pixels) whose accumulators fit in one block's shared memory on `device_index`.
int64_t splat_max_width(int64_t device_index);

// frames [B,H,W,3] and disparity [B,H,W]: CUDA, contiguous, checked by the caller (splat.cpp).
// Returns right [B,H,W,3] and occlusion [B,H,W] in frames' dtype; threads <= 0 picks the block size
// from the width.
std::tuple<at::Tensor, at::Tensor> splat_cuda_launch(const at::Tensor& frames, const at::Tensor& disparity,
                                                     bool reference_edges, double log2_base, double max_exponent,
                                                     double eps, int64_t threads);

}  // namespace sc3d
