// Forward splatting kernel: one thread block per image row.
//
// Every source pixel moves only horizontally, so all of a row's splats land in the same row. A block
// therefore keeps the row's accumulators (r, g, b weighted sums, the z-buffer weight sum and the
// bilinear coverage: 5 floats per pixel) in shared memory, splats into them with shared atomics and
// writes the normalised result straight to the outputs. Global memory sees each input read once and
// each output written once: 32 B per pixel in fp32, no scratch buffers and no global atomics.
//
// Per row: (0) clear the accumulators and reduce the row minimum of the finite disparities;
// (1) splat, pixel by pixel (the disparity row is read a second time, from L1/L2);
// (2) normalise and store.
//
// Measured on an H100 and dropped (bench/README.md): prefetching each thread's pixels into
// registers before the barrier (fewer resident blocks, ~10% slower); merging neighbouring lanes'
// corners through warp shuffles (no gain); batching the compare-and-swaps that fp32 atomicAdd on
// shared memory compiles to on sm_90 (2.2-2.4x slower than atomicAdd's own spin loops).

#include "splat.h"

// c10's stream header rather than ATen/cuda/CUDAContext.h, which pulls in cuSPARSE/cuBLAS headers
// that minimal CUDA toolkits lack.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace sc3d {
namespace {

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;
// Accumulator floats per pixel: r, g, b, weight sum, coverage.
constexpr int kAccumPerPixel = 5;
constexpr int kMaxThreads = 1024;
// Shared memory besides the accumulators: one partial minimum per warp, plus the 1 KB that sm_80+
// reserves per block (reported in the static size by cuobjdump); kept out of the width budget.
constexpr int kStaticSmemBytes = (kMaxThreads / kWarp) * sizeof(float) + 1024;
// Default block size: about 4 pixels per thread, rounded up to a multiple of 128 threads: 512 for
// 1080p rows and 1024 for 4K rows, the fastest of 128..1024 measured on an H100 (bench/README.md).
constexpr int kPixelsPerThread = 4;
constexpr int kThreadStep = 128;

struct RowParams {
  int64_t rows;
  int height;
  int width;
  bool reference_edges;
  float log2_base;
  float max_exponent;
  float eps;
};

// c10's Half/BFloat16 convert to and from float with round-to-nearest-even, like torch's .to().
template <typename T>
__device__ __forceinline__ float to_float(T v) {
  return static_cast<float>(v);
}
template <typename T>
__device__ __forceinline__ T from_float(float v) {
  return static_cast<T>(v);
}

// Shared-memory floats needed for a row of `width` pixels; rounded to whole float4s so that the
// accumulators can be cleared with 16-byte stores.
__host__ __device__ __forceinline__ int64_t accum_floats(int64_t width) {
  return (kAccumPerPixel * width + 3) / 4 * 4;
}

// Block-wide minimum, returned to every thread. Contains a __syncthreads (which also orders the
// clearing of the accumulators before the splats).
__device__ __forceinline__ float block_min(float v, float* warp_min) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v = fminf(v, __shfl_xor_sync(kFullMask, v, offset));
  if (threadIdx.x % kWarp == 0) warp_min[threadIdx.x / kWarp] = v;
  __syncthreads();
  float m = INFINITY;
  const int nwarps = blockDim.x / kWarp;
  for (int i = 0; i < nwarps; ++i) m = fminf(m, warp_min[i]);
  return m;
}

template <typename frame_t, typename disp_t>
__global__ void __launch_bounds__(kMaxThreads)
    splat_rows_kernel(const frame_t* __restrict__ frames, const disp_t* __restrict__ disparity,
                      frame_t* __restrict__ right, frame_t* __restrict__ occlusion, const RowParams p) {
  extern __shared__ float4 smem4[];
  __shared__ float warp_min[kMaxThreads / kWarp];
  float* const acc_rgb = reinterpret_cast<float*>(smem4);  // [width][3], interleaved like the frames
  float* const acc_weight = acc_rgb + 3 * p.width;         // [width]
  float* const acc_cover = acc_weight + p.width;           // [width]
  const int n_vec = static_cast<int>(accum_floats(p.width) / 4);
  const int nthreads = blockDim.x;
  const float last_col = static_cast<float>(p.width - 1);

  for (int64_t row = blockIdx.x; row < p.rows; row += gridDim.x) {
    const int y = static_cast<int>(row % p.height);
    const disp_t* const disp_row = disparity + row * p.width;
    const frame_t* const rgb_row = frames + row * p.width * 3;

    // (0)
    for (int i = threadIdx.x; i < n_vec; i += nthreads) smem4[i] = make_float4(0.f, 0.f, 0.f, 0.f);
    float local_min = INFINITY;
    for (int x = threadIdx.x; x < p.width; x += nthreads) {
      const float d = to_float(disp_row[x]);
      if (isfinite(d)) local_min = fminf(local_min, d);
    }
    const float row_min = block_min(local_min, warp_min);

    // (1) With reference_edges the reference's rule also drops the whole bottom source row.
    const bool row_splats = !(p.reference_edges && y + 1 > p.height - 1);
    for (int x = threadIdx.x; row_splats && x < p.width; x += nthreads) {
      const float d = to_float(disp_row[x]);
      if (!isfinite(d)) continue;
      const float tx = static_cast<float>(x) - d;
      // Range tests in float: tx can be far outside int range.
      const float x0 = floorf(tx);
      const float frac = tx - x0;
      bool in_l = x0 >= 0.f && x0 <= last_col;
      bool in_r = x0 >= -1.f && x0 <= last_col - 1.f;
      // The reference kernel's rule: both corners inside, or nothing.
      if (p.reference_edges) in_l = in_r = x0 >= 0.f && x0 + 1.f <= last_col;
      // A zero bilinear weight adds exactly nothing, so skipping it is exact and saves atomics.
      const float bw_l = 1.f - frac;
      const float bw_r = frac;
      in_l = in_l && bw_l != 0.f;
      in_r = in_r && bw_r != 0.f;
      if (!in_l && !in_r) continue;
      const float zw = exp2f(fminf(d - row_min, p.max_exponent) * p.log2_base);
      const float r = to_float(rgb_row[3 * x]);
      const float g = to_float(rgb_row[3 * x + 1]);
      const float b = to_float(rgb_row[3 * x + 2]);
      const int ix0 = static_cast<int>(x0);
      if (in_l) {
        const float w = zw * bw_l;
        atomicAdd(&acc_rgb[3 * ix0], r * w);
        atomicAdd(&acc_rgb[3 * ix0 + 1], g * w);
        atomicAdd(&acc_rgb[3 * ix0 + 2], b * w);
        atomicAdd(&acc_weight[ix0], w);
        atomicAdd(&acc_cover[ix0], bw_l);
      }
      if (in_r) {
        const float w = zw * bw_r;
        atomicAdd(&acc_rgb[3 * ix0 + 3], r * w);
        atomicAdd(&acc_rgb[3 * ix0 + 4], g * w);
        atomicAdd(&acc_rgb[3 * ix0 + 5], b * w);
        atomicAdd(&acc_weight[ix0 + 1], w);
        atomicAdd(&acc_cover[ix0 + 1], bw_r);
      }
    }
    __syncthreads();

    // (2) The colour is written in flat [width*3] order so that consecutive lanes store consecutive
    // elements (coalesced) and read consecutive shared words (no bank conflicts).
    frame_t* const right_row = right + row * p.width * 3;
    for (int e = threadIdx.x; e < 3 * p.width; e += nthreads) {
      const float den = fmaxf(acc_weight[e / 3], p.eps);
      right_row[e] = from_float<frame_t>(acc_rgb[e] / den);
    }
    frame_t* const occ_row = occlusion + row * p.width;
    for (int x = threadIdx.x; x < p.width; x += nthreads) {
      occ_row[x] = from_float<frame_t>(1.f - fminf(fmaxf(acc_cover[x], 0.f), 1.f));
    }
    __syncthreads();  // the next row clears the accumulators
  }
}

// Calls f with a value of the C++ type matching `type` (fp32, fp16 or bf16).
template <typename F>
void dispatch_float_type(at::ScalarType type, const char* what, F&& f) {
  switch (type) {
    case at::kFloat:
      f(float{});
      break;
    case at::kHalf:
      f(c10::Half{});
      break;
    case at::kBFloat16:
      f(c10::BFloat16{});
      break;
    default:
      TORCH_CHECK(false, "splat: `", what, "` must be float32, float16 or bfloat16, got ", c10::toString(type));
  }
}

}  // namespace

int64_t splat_max_width(int64_t device_index) {
  int optin = 0;
  C10_CUDA_CHECK(
      cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, static_cast<int>(device_index)));
  const int64_t avail = static_cast<int64_t>(optin) - kStaticSmemBytes;
  int64_t width = avail / (kAccumPerPixel * static_cast<int64_t>(sizeof(float)));
  while (width > 0 && accum_floats(width) * static_cast<int64_t>(sizeof(float)) > avail) --width;
  return width;
}

std::tuple<at::Tensor, at::Tensor> splat_cuda_launch(const at::Tensor& frames, const at::Tensor& disparity,
                                                     bool reference_edges, double log2_base, double max_exponent,
                                                     double eps, int64_t threads) {
  const c10::cuda::CUDAGuard guard(frames.device());
  const int64_t batch = frames.size(0);
  const int64_t height = frames.size(1);
  const int64_t width = frames.size(2);
  at::Tensor right = at::empty_like(frames);
  at::Tensor occlusion = at::empty({batch, height, width}, frames.options());
  const int64_t rows = batch * height;
  if (rows == 0 || width == 0) return {right, occlusion};

  const int64_t max_width = splat_max_width(frames.get_device());
  // Messages: see num() in splat.h.
  TORCH_CHECK(width <= max_width, "splat: `frames` width ", num(width), " exceeds the ", num(max_width),
              " pixels whose row accumulators fit in shared memory on this GPU; use the PyTorch fallback");
  TORCH_CHECK(height <= std::numeric_limits<int>::max(), "splat: `frames` height ", num(height), " is too large");
  if (threads <= 0) {
    const int64_t want = (width + kPixelsPerThread - 1) / kPixelsPerThread;
    threads = std::clamp<int64_t>((want + kThreadStep - 1) / kThreadStep * kThreadStep, kThreadStep, kMaxThreads);
  }
  TORCH_CHECK(threads % kWarp == 0 && threads >= kWarp && threads <= kMaxThreads,
              "splat: `threads` must be a multiple of 32 in [32, 1024], got ", num(threads));

  const RowParams params{rows,
                         static_cast<int>(height),
                         static_cast<int>(width),
                         reference_edges,
                         static_cast<float>(log2_base),
                         static_cast<float>(max_exponent),
                         static_cast<float>(eps)};
  const size_t smem = static_cast<size_t>(accum_floats(width)) * sizeof(float);
  // One block per row; rows beyond the grid limit are taken by the grid-stride loop.
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(rows, std::numeric_limits<int>::max()));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();

  // Disparity is read as float or in the frames' dtype; other pairs (rare) are converted first, which
  // keeps the number of compiled kernels down.
  const at::Tensor disp = disparity.scalar_type() == at::kFloat || disparity.scalar_type() == frames.scalar_type()
                              ? disparity
                              : disparity.to(at::kFloat);
  dispatch_float_type(frames.scalar_type(), "frames", [&](auto frame_tag) {
    using frame_t = decltype(frame_tag);
    auto run = [&](auto disp_tag) {
      using disp_t = decltype(disp_tag);
      auto kernel = splat_rows_kernel<frame_t, disp_t>;
      // Above 48 KB a block must opt in to more dynamic shared memory (per kernel; cheap, no sync).
      if (smem > 48 * 1024) {
        C10_CUDA_CHECK(
            cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
      }
      kernel<<<grid, static_cast<unsigned>(threads), smem, stream>>>(
          frames.data_ptr<frame_t>(), disp.data_ptr<disp_t>(), right.data_ptr<frame_t>(),
          occlusion.data_ptr<frame_t>(), params);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    if (disp.scalar_type() == at::kFloat) {
      run(float{});
    } else {
      run(frame_t{});
    }
  });
  return {right, occlusion};
}

}  // namespace sc3d
