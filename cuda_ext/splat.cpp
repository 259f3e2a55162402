// Python binding of the forward-splatting kernel: argument checks, then splat_kernel.cu.

#include <torch/extension.h>

#include <cmath>

#include "splat.h"

namespace {

bool is_supported_float(at::ScalarType type) {
  return type == at::kFloat || type == at::kHalf || type == at::kBFloat16;
}

std::tuple<at::Tensor, at::Tensor> splat(const at::Tensor& frames, const at::Tensor& disparity, bool reference_edges,
                                         double log2_base, double max_exponent, double eps, int64_t threads) {
  // Messages: see sc3d::num in splat.h.
  TORCH_CHECK(frames.is_cuda(), "splat: `frames` must be a CUDA tensor, got one on ", frames.device().str());
  TORCH_CHECK(frames.dim() == 4 && frames.size(3) == 3, "splat: `frames` must be [B, H, W, 3], got ",
              sc3d::shape(frames.sizes()));
  TORCH_CHECK(frames.is_contiguous(), "splat: `frames` must be contiguous");
  TORCH_CHECK(is_supported_float(frames.scalar_type()), "splat: `frames` must be float32, float16 or bfloat16, got ",
              c10::toString(frames.scalar_type()));
  TORCH_CHECK(disparity.is_cuda(), "splat: `disparity` must be a CUDA tensor, got one on ", disparity.device().str());
  TORCH_CHECK(disparity.device() == frames.device(), "splat: `disparity` is on ", disparity.device().str(),
              " but `frames` on ", frames.device().str());
  TORCH_CHECK(disparity.dim() == 3 && disparity.size(0) == frames.size(0) && disparity.size(1) == frames.size(1) &&
                  disparity.size(2) == frames.size(2),
              "splat: `disparity` must be [B, H, W] matching `frames` ", sc3d::shape(frames.sizes()), ", got ",
              sc3d::shape(disparity.sizes()));
  TORCH_CHECK(disparity.is_contiguous(), "splat: `disparity` must be contiguous");
  TORCH_CHECK(is_supported_float(disparity.scalar_type()),
              "splat: `disparity` must be float32, float16 or bfloat16, got ", c10::toString(disparity.scalar_type()));
  TORCH_CHECK(std::isfinite(log2_base) && std::isfinite(max_exponent) && eps > 0.0,
              "splat: `log2_base` and `max_exponent` must be finite and `eps` positive");
  return sc3d::splat_cuda_launch(frames, disparity, reference_edges, log2_base, max_exponent, eps, threads);
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Forward splatting of a left view into the right view (one thread block per row).";
  m.def("splat", &splat,
        "splat(frames [B,H,W,3], disparity [B,H,W], reference_edges, log2_base, max_exponent, eps, threads=0) "
        "-> (right [B,H,W,3], occlusion [B,H,W]) in frames' dtype; threads=0 picks the block size from the width.",
        py::arg("frames"), py::arg("disparity"), py::arg("reference_edges"), py::arg("log2_base"),
        py::arg("max_exponent"), py::arg("eps"), py::arg("threads") = 0);
  m.def("max_width", &sc3d::splat_max_width,
        "max_width(device_index) -> widest row (pixels) the kernel handles on that GPU.", py::arg("device_index"));
}
