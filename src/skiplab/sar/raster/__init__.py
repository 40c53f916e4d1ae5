"""A SAR scene on disk and in physical units.

- :mod:`.io` -- read and write single-channel rasters (GeoTIFF/TIFF, PNG, ``.npy``), their
  georeferencing tags and no-data value (``Raster``, ``read_raster``, ``write_raster``);
- :mod:`.sink` -- a raster written strip by strip, for scenes larger than memory;
- :mod:`.radiometry` -- intensity / amplitude / dB and the normalised log-intensity a
  network sees, with its exact inverse (``Radiometry``);
- :mod:`.scene_radiometry` -- the normalisation taken from the scene itself (any calibration);
- :mod:`.speckle` -- Gamma speckle and synthetic scenes with their clean versions.

Nothing here imports the rest of :mod:`skiplab.sar`.
"""
