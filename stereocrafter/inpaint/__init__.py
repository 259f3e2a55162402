"""Stage 3: filling the disocclusion holes. One interface (``inpaint_model``) for two models: StereoCrafter
(``inpaint_pipeline``, streamed by ``inpaint_stream``, UNet loading in ``inpaint_unet``) and StereoCrafter2
(``inpaint2_pipeline``); ``temporal_chunks`` and ``tiling`` plan and blend their chunks and tiles."""
