"""The Stable Video Diffusion parts that DepthCrafter and StereoCrafter share: loading (``svd_components``), VAE
and CLIP preprocessing (``svd_preprocess``), ``torch.compile`` (``compiled_svd``) and the faster or leaner blocks
(``frames_major_blocks``, ``lean_unet``, ``lean_attention``, ``single_key_attention``)."""
