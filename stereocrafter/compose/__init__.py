"""Stage 4: what the viewer gets. Frame packings (``packing``: side-by-side, top-bottom), ``anaglyph`` glasses,
VR180 (``spatial_media``) and the splatting ``preview`` grid."""
