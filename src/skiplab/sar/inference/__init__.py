"""A trained SAR autoencoder applied to whole scenes.

- :mod:`.grid` -- the tile grid over a scene and the blending of overlapping windows;
- :mod:`.scene` -- scenes tiled, reconstructed, blended and streamed in strips
  (``reconstruct_scene``, ``reconstruct_array``);
- :mod:`.latent` -- the float latent file (``.npz``): ``encode_scene``, ``decode_latent``.

The compressed (quantised, entropy-coded) scene is :mod:`skiplab.sar.codec.latent_file`.
"""
