"""What training a SAR autoencoder sees and optimises (the ``reconstruct`` task).

- :mod:`.tiles` -- scenes cut into tiles, the tile dataset, its loader and augmentation;
- :mod:`.load` -- the ``sar:PATH`` and ``synthetic:sar`` data specs (registered on import);
- :mod:`.losses` -- L1, MSE, SSIM, MS-SSIM, Gamma NLL and the rate term (``build_loss``);
- :mod:`.metrics` -- PSNR, SSIM, ENL, ratio image, compression ratio and bits per pixel;
- :mod:`.task` -- the ``reconstruct`` task and its meter (registered on import).

Built on :mod:`skiplab.sar.raster` and, for the codec models' rate, :mod:`skiplab.sar.codec`.
"""
