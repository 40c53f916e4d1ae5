"""The SAR codec: the autoencoder's latent quantised, entropy-coded and written to a file.

- :mod:`.quantize` -- uniform latent quantisation to ``b`` bits (``LatentQuantizer`` in the
  training loop, ``UniformQuantizer`` for files);
- :mod:`.rate_model` -- the rate term: a factorised Laplace prior over the quantised latent;
- :mod:`.model` -- the codec models ``sar_codec_*`` (quantiser in the loop, rate term;
  registered with :func:`skiplab.models.register_model` on import);
- :mod:`.entropy` -- lossless coding of the symbols (raw, zlib, lzma, ANS via constriction);
- :mod:`.latent_file` -- the compressed scene, the versioned ``.sarl`` file (version 1);

the hyperprior codec (Ballé et al. 2018), the one ``skiplab encode --quality Q`` uses:

- :mod:`.hyperprior` -- ``sar_hyperprior_*``: g_a, g_s, h_a, h_s and the two entropy models
  (registered on import), built from :mod:`.transforms` (GDN / residual / plain, :mod:`.gdn`);
- :mod:`.factorized_density` -- the learned factorised density of the hyper-latent z;
- :mod:`.gaussian_conditional` -- the Gaussian conditional of y and its scale table
  (:mod:`.lower_bound`: the bound's gradient);
- :mod:`.ans` -- ANS coding of both through constriction;
- :mod:`.sarl` -- the ``.sarl`` file version 2 (CRC-32, radiometric gain);
- :mod:`.shipped` -- the shipped quality levels and finding the codec of a file.

The first four need only the core; the ``.sarl`` file codes whole scenes through
:mod:`skiplab.sar.inference`.
"""
