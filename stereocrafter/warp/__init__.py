"""Stage 2: depth to the right eye. ``disparity`` maps depth to pixels, ``splatting`` forward-splats the left view
(the CUDA kernel in ``splat_cuda`` or PyTorch) into a right view and an occlusion mask, ``stereo_warp`` runs it on a
clip, ``hole_fill`` fills the holes without a model."""
