"""What a trained run of the autoencoder ablation measures on test tiles
(:mod:`skiplab.sar.ablation.experiment`): PSNR, SSIM, ENL and the ratio image of its best.pt,
a codec's rate through its entropy-coded latent, the model's cost, and the references that
make the numbers readable (a constant image, a box filter, average pooling)."""

from __future__ import annotations

from pathlib import Path

import torch

from .config import AblationConfig


@torch.no_grad()
def coded_tiles(model, x: torch.Tensor, bits: int, batch_size: int = 16) -> tuple[torch.Tensor, float]:
    """A codec model's reconstructions of tiles ``x`` through its written code, and the
    measured rate: the latents of all tiles quantised to ``bits`` (one range per channel,
    :class:`~skiplab.sar.codec.quantize.UniformQuantizer`), entropy-coded (the shortest coder,
    :func:`~skiplab.sar.codec.entropy.encode_symbols`) and decoded; bpp = (payload + range + coder
    id bytes) x 8 / pixels -- the latent file without its per-scene header."""
    from ..codec.entropy import decode_symbols, encode_symbols
    from ..codec.quantize import UniformQuantizer

    z = torch.cat([model.encode(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    quantizer = UniformQuantizer.fit(z, bits)
    symbols = quantizer.quantize(z.numpy())
    coder, payload = encode_symbols(symbols, bits)
    z_hat = torch.from_numpy(quantizer.dequantize(decode_symbols(coder, payload, symbols.shape, bits)))
    pred = torch.cat([model.decode(z_hat[i : i + batch_size]) for i in range(0, len(z_hat), batch_size)])
    nbytes = len(payload) + UniformQuantizer.nbytes(z.shape[1]) + 1
    return pred, 8.0 * nbytes / x[:, 0].numel()


@torch.no_grad()
def evaluate_run(run_dir: Path, test, batch_size: int = 16) -> tuple[dict, torch.Tensor]:
    """PSNR, SSIM (normalised domain), ENL of input and output on the input's homogeneous
    windows, ratio-image mean/variance, of ``checkpoints/best.pt`` on the test tiles in fp32;
    and the reconstructions. A codec (``sar_codec_*``) reconstructs through its entropy-coded
    latent at its ``eval_bits`` and ``bpp`` is that code's measured rate; an unquantised
    autoencoder's ``bpp`` is its float32 latent's (no entropy coding: not a codec rate)."""
    from ..model.checkpoint import load_autoencoder
    from ..codec.model import QuantizedAutoencoder
    from ..training.metrics import reconstruction_metrics

    ae = load_autoencoder(run_dir / "checkpoints" / "best.pt")
    x = test.tiles
    if isinstance(ae.model, QuantizedAutoencoder):
        pred, bpp = coded_tiles(ae.model, x, ae.model.eval_bits, batch_size)
    else:
        pred = torch.cat([ae.model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
        bpp = float(ae.model.bits_per_pixel(x.shape[-1]))
    metrics = reconstruction_metrics(pred, x, test.radiometry, enl_size=min(16, x.shape[-1] // 4))
    per_image = metrics.pop("per_image")
    metrics["psnr_per_image"] = per_image["psnr"]
    metrics["bpp"] = bpp
    return metrics, pred


def model_cost(config: AblationConfig, variant: str) -> dict:
    """Parameters, MACs of one forward of a training tile, and the compression figures."""
    from ...models import create_model
    from ...summary import summarize

    model = create_model(variant, in_chans=1, **config.kwargs_for(variant))
    size = (1, config.tile, config.tile)
    return dict(
        params=sum(p.numel() for p in model.parameters()),
        macs=summarize(model, size).macs,
        compression=model.compression_ratio(config.tile),
        bits_per_pixel=model.bits_per_pixel(config.tile),
    )


def constant_baseline(train, tiles) -> float:
    """PSNR of a constant image at the training tiles' mean (normalised) level on ``tiles``:
    what a model that learnt only the mean level would score."""
    from ..training.metrics import psnr

    return float(psnr(torch.full_like(tiles.tiles, float(train.tiles.mean())), tiles.tiles).mean())


def reference_rows(train, tiles, factor: int) -> dict[str, dict]:
    """PSNR and SSIM of three references on ``tiles`` that make the variants' numbers
    readable: a constant image at the training mean level (what learning only the level
    scores), a 3x3 box filter (a simple despeckler, no compression: the input's own pixels),
    and ``factor``-fold average pooling upsampled bilinearly (a linear code of one value per
    ``factor``² pixels, ``factor`` = the autoencoder's stride)."""
    import torch.nn.functional as F
    from ..training.metrics import psnr, ssim_per_image

    x = tiles.tiles
    guesses = {
        "constant image (training mean level)": torch.full_like(x, float(train.tiles.mean())),
        "3x3 box filter (despeckle, uncompressed)": F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), 3, 1),
        f"{factor}x average pool + bilinear ({factor * factor}x fewer values)": F.interpolate(
            F.avg_pool2d(x, factor), scale_factor=factor, mode="bilinear", align_corners=False
        ),
    }
    return {
        name: dict(psnr=float(psnr(g, x).mean()), ssim=float(ssim_per_image(g, x).mean()))
        for name, g in guesses.items()
    }
