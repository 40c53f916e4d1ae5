"""Rate-distortion of SAR autoencoders against the codecs people use (``skiplab sar-rd``).

- :mod:`.codecs` -- JPEG, JPEG 2000 and average pooling at a matched, measured bit rate;
- :mod:`.lee` -- the Lee filter, the despeckling reference;
- :mod:`.measure` -- every method on the same tiles at measured bpp (``rate_distortion``);
- :mod:`.report` -- ``rd.json``, ``rd.md`` and ``rd.png``.
"""
