"""The Gatys losses, normalised so that the same weights give the same look at any image size and network.

Notation: F is a layer's rectified feature map reshaped to (C, N) with N = H*W pixels, m a region mask (all ones
without regions) resampled to that layer, and ``|A|^2`` the sum of squares of A's entries.

- Gram matrix: ``G = (F m)(F m)^T / sum(m)``, the mean outer product of the feature vectors over the region
  (jcjohnson's neural-style divides by C*H*W instead; the constant 1/C cancels below).
- Style loss of a layer (``loss=gram``): the relative squared error ``|G - G_s|^2 / |G_s|^2``.
- ``loss=meanstd``: channel means mu and standard deviations sd,
  ``(|mu - mu_s|^2 + |sd - sd_s|^2) / (|mu_s|^2 + |sd_s|^2)``.
- Content loss of a layer: ``|F - F_c|^2 / |F_c|^2``, relative again.
- Total variation: the mean over pixels of the squared differences between neighbours, image in [0, 1].

Total: ``content_weight * content + STYLE_FACTOR * style_weight * style + tv_weight * tv``. STYLE_FACTOR = 0.1 is a
fixed constant chosen by looking at pictures, so that content:style = 1:100 (the source blog's ratio, the default)
gives the classic Gatys look: 1:10 keeps most of the photo, 1:1000 leaves little more than the painting's texture
(see docs/style-ratios.jpg).

Because every term is a ratio of means, it does not grow with the number of pixels (256 px and 1024 px give the
same numbers for the same picture), and it does not depend on the network's activation scale, so the same
weights work with the Caffe and the torchvision VGG-19. Layer weights are normalised to sum to 1, and so are the
weights of several blended styles, so ``style_weight`` keeps its meaning whatever the number of layers or styles.
Everything here runs in float32, even when the network runs under bf16 autocast, except the Gram matrices'
product, which takes bf16 features as they are and accumulates in float32 (see ``gram``).
"""

from __future__ import annotations

EPS = 1e-12
STYLE_FACTOR = 0.1


def gram(feat, mask=None):
    """(1, C, H, W) features -> (C, C) Gram matrix: mean outer product over the pixels (weighted by ``mask``)."""
    # bf16 features (autocast) stay bf16 into the product, which accumulates in fp32 (oneDNN, cuBLAS); only the
    # (C, C) result is cast. Measured at 512x384, the default layers, 2 threads: 0.076 s an iteration (forward and
    # backward) against 0.253 s through a float32 copy of the features, the Gram's relative error 0.12 %.
    f = feat.flatten(2)[0]  # (C, N)
    if mask is None:
        return (f @ f.t()).float() / f.shape[1]
    m = mask.to(f.dtype).flatten()
    return ((f * m) @ f.t()).float() / mask.float().sum().clamp_min(EPS)


def mean_std(feat, mask=None):
    """Channel means and standard deviations over the pixels (weighted by ``mask``), as a (2, C) tensor."""
    import torch

    f = feat.float().flatten(2)[0]
    if mask is None:
        mu = f.mean(1)
        var = (f - mu[:, None]).pow(2).mean(1)
    else:
        m = mask.float().flatten()
        s = m.sum().clamp_min(EPS)
        mu = (f * m).sum(1) / s
        var = ((f - mu[:, None]).pow(2) * m).sum(1) / s
    return torch.stack([mu, (var + 1e-8).sqrt()])


def style_statistic(kind: str):
    return gram if kind == "gram" else mean_std


def relative_error(x, target, target_norm=None):
    """``|x - target|^2 / |target|^2``; ``target_norm`` may be given precomputed."""
    if target_norm is None:
        target_norm = target.pow(2).sum()
    return (x - target).pow(2).sum() / (target_norm + EPS)


def content_loss(feat, target, target_norm=None):
    return relative_error(feat.float(), target, target_norm)


def tv_loss(x):
    """Mean squared difference between horizontal and vertical neighbours of a (1, 3, H, W) image."""
    loss = x.new_zeros(())
    if x.shape[-1] > 1:
        loss = loss + (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()
    if x.shape[-2] > 1:
        loss = loss + (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean()
    return loss


def temporal_loss(x, target, mask):
    """Ruder et al.'s temporal loss: the mean squared difference between ``x`` and the previous result warped to
    this frame, over the pixels the flow sees (``mask`` (1, 1, H, W) in {0, 1}) and the channels."""
    diff = (x.float() - target).pow(2) * mask
    return diff.sum() / (mask.sum() * x.shape[1]).clamp_min(1.0)


def downsample_mask(mask, size, pool: str = "max"):
    """Resample a (1, 1, H, W) mask to a layer's (h, w) the way the network shrinks its maps (2x2 pooling)."""
    import torch.nn.functional as F

    m = mask
    while m.shape[-2] > size[0] or m.shape[-1] > size[1]:
        m = F.avg_pool2d(m, 2, 2, ceil_mode=True)
    if tuple(m.shape[-2:]) != tuple(size):
        m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
    return m
