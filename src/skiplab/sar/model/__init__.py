"""The trained SAR autoencoder as a file.

- :mod:`.checkpoint` -- a checkpoint loaded with the radiometry it was trained with
  (``TrainedAutoencoder``, ``load_autoencoder``);
- :mod:`.default` -- the packaged default model (``load_default_model``, its card) in
  ``skiplab/sar/weights/``, and which model decodes a latent file;
- :mod:`.card` -- shipping another: strip a checkpoint, measure it on real scenes, write its card.
"""
