"""Everything SAR: the codec side (this session) -- per-scene radiometry, latent quantisation,
entropy coding, the binary latent file, standard codecs (JPEG, JPEG 2000) and the
rate-distortion comparison. Submodules are imported on demand (``skiplab.sar.quantize`` ...).
"""
