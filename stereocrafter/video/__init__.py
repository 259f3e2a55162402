"""Video files: streaming frames in and segments out (``video_io``, encoder choice in ``encoders``), lossless 16-bit
depth videos (``depth_file``) and shots of a film (``scenes``)."""
