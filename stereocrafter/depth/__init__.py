"""Stage 1: video depth. DepthCrafter (``depth_pipeline``, its UNet in ``depthcrafter_unet``), the light per-frame
model (``light_depth``) and depth ranges per shot (``shot_depth``)."""
