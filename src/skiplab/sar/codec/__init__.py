"""The SAR codec: the autoencoder's latent quantised, entropy-coded and written to a file.

- :mod:`.quantize` -- uniform latent quantisation to ``b`` bits (``LatentQuantizer`` in the
  training loop, ``UniformQuantizer`` for files);
- :mod:`.rate_model` -- the rate term: a factorised Laplace prior over the quantised latent;
- :mod:`.model` -- the codec models ``sar_codec_*`` (quantiser in the loop, rate term;
  registered with :func:`skiplab.models.register_model` on import);
- :mod:`.entropy` -- lossless coding of the symbols (raw, zlib, lzma, ANS via constriction);
- :mod:`.latent_file` -- the compressed scene, the versioned ``.sarl`` file.

The first four need only the core; the ``.sarl`` file codes whole scenes through
:mod:`skiplab.sar.inference`.
"""
