"""Input-transform defenses: JPEG, median, Gaussian blur, bit depth, TV minimization, random
resize-and-pad. All take and return images ``[B, C, H, W]`` in [0, 1]."""
from __future__ import annotations

import io
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from defenses.base import InputDefense, forward_as


class JPEG(InputDefense):
    """JPEG compression (Dziugaite et al. 2016; Guo et al. 2018) through PIL, one image at a time.

    Pixels are quantized with ``round(x * 255)`` to uint8, encoded with PIL's default settings
    at ``quality`` (4:2:0 chroma subsampling for RGB) and decoded. One-channel images use mode
    ``L``, three-channel ``RGB``; any other channel count is compressed channel by channel in
    mode ``L``. Because PIL itself runs the codec the output equals PIL's
    ``Image.save(format="JPEG", quality=q)`` + reload **exactly** (tolerance 0, in units of
    1/255). Non-differentiable: the naive gradient is zero; BPDA uses the identity.

    Args:
        quality: JPEG quality in [1, 95].
    """

    name = "jpeg"
    differentiable = False

    def __init__(self, quality: int = 75) -> None:
        super().__init__()
        if not 1 <= int(quality) <= 95 or int(quality) != quality:
            raise ValueError(f"jpeg quality must be an integer in [1, 95], got {quality}")
        self.quality = int(quality)

    def spec(self) -> str:  # noqa: D102
        return f"jpeg:{self.quality}"

    def transform(self, x: Tensor) -> Tensor:  # noqa: D102
        import numpy as np
        from PIL import Image  # lazy: PIL only when JPEG is used

        u8 = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
        if u8.shape[1] == 3:
            planes = u8.permute(0, 2, 3, 1).unsqueeze(1)  # [B, 1, H, W, 3]
        else:
            planes = u8.unsqueeze(-1)  # [B, C, H, W, 1]
        out = torch.empty_like(planes)
        for b in range(planes.shape[0]):
            for c in range(planes.shape[1]):
                arr = planes[b, c].numpy()
                mode = "RGB" if arr.shape[-1] == 3 else "L"
                img = Image.fromarray(arr if mode == "RGB" else arr[..., 0], mode=mode)
                buf = io.BytesIO()
                img.save(buf, format="JPEG", quality=self.quality)
                buf.seek(0)
                dec = torch.from_numpy(np.array(Image.open(buf).convert(mode)))
                out[b, c] = dec.reshape(out[b, c].shape)
        out = out.squeeze(1).permute(0, 3, 1, 2) if u8.shape[1] == 3 else out.squeeze(-1)
        return out.to(device=x.device, dtype=x.dtype) / 255


def _symmetric_pad(x: Tensor, p: int) -> Tensor:
    """Pad H and W by ``p`` with scipy's ``mode="reflect"`` (edge pixel repeated: d c b a | a b c d)."""
    h, w = x.shape[-2:]
    if p > min(h, w):
        raise ValueError(f"padding {p} exceeds image size {h}x{w}")

    def idx(n: int) -> Tensor:
        i = torch.arange(-p, n + p, device=x.device)
        return torch.where(i < 0, -i - 1, torch.where(i >= n, 2 * n - 1 - i, i))

    return x.index_select(-2, idx(h)).index_select(-1, idx(w))


class MedianFilter(InputDefense):
    """Per-channel median filter (spatial smoothing, Xu et al. 2018 "Feature Squeezing").

    Borders use scipy's ``mode="reflect"`` (the edge pixel is repeated), so the output equals
    ``scipy.ndimage.median_filter(x, size=(1, 1, k, k), mode="reflect")`` exactly, and ART's
    ``SpatialSmoothing``. Autograd flows to the selected (median) pixel, so it is declared
    differentiable; that gradient is sparse, so ``bpda`` uses the identity (Athalye et al.).

    Args:
        kernel: odd window size >= 1.
    """

    name = "median"

    def __init__(self, kernel: int = 3) -> None:
        super().__init__()
        if int(kernel) != kernel or kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"median kernel must be an odd integer >= 1, got {kernel}")
        self.kernel = int(kernel)

    def spec(self) -> str:  # noqa: D102
        return f"median:{self.kernel}"

    def transform(self, x: Tensor) -> Tensor:  # noqa: D102
        k = self.kernel
        if k == 1:
            return x.clone()
        padded = _symmetric_pad(x, k // 2)
        patches = padded.unfold(-2, k, 1).unfold(-2, k, 1)  # [B, C, H, W, k, k]
        return patches.reshape(*x.shape, k * k).median(dim=-1).values


def gaussian_kernel1d(kernel: int, sigma: float, dtype=torch.float32, device=None) -> Tensor:
    """Normalized 1-D Gaussian taps, as torchvision's ``gaussian_blur`` computes them."""
    half = (kernel - 1) * 0.5
    t = torch.linspace(-half, half, steps=kernel, dtype=dtype, device=device)
    pdf = torch.exp(-0.5 * (t / sigma).pow(2))
    return pdf / pdf.sum()


class GaussianBlur(InputDefense):
    """Separable Gaussian blur with torch ``reflect`` borders (matches torchvision's
    ``transforms.v2.functional.gaussian_blur``). Differentiable; ``bpda`` is the true gradient.

    Args:
        sigma: standard deviation in pixels (> 0).
        kernel: odd window size; default ``2 * ceil(3 * sigma) + 1``, capped to fit the image.
    """

    name = "blur"

    def __init__(self, sigma: float = 1.0, kernel: int | None = None) -> None:
        super().__init__()
        if not sigma > 0 or not math.isfinite(sigma):
            raise ValueError(f"blur sigma must be a positive number, got {sigma}")
        if kernel is not None and (int(kernel) != kernel or kernel < 1 or kernel % 2 == 0):
            raise ValueError(f"blur kernel must be an odd integer >= 1, got {kernel}")
        self.sigma = float(sigma)
        self.kernel = None if kernel is None else int(kernel)

    def spec(self) -> str:  # noqa: D102
        return f"blur:{self.sigma:g}" + ("" if self.kernel is None else f",{self.kernel}")

    def kernel_size(self, h: int, w: int) -> int:
        """Window size used for an ``h x w`` image (reflect padding needs ``k // 2 < min(h, w)``)."""
        k = self.kernel or 2 * math.ceil(3 * self.sigma) + 1
        return min(k, 2 * (min(h, w) - 1) + 1)

    def transform(self, x: Tensor) -> Tensor:  # noqa: D102
        b, c, h, w = x.shape
        k = self.kernel_size(h, w)
        g = gaussian_kernel1d(k, self.sigma, dtype=x.dtype, device=x.device)
        y = F.pad(x.reshape(b * c, 1, h, w), [k // 2] * 4, mode="reflect")
        y = F.conv2d(y, g.view(1, 1, 1, k))
        y = F.conv2d(y, g.view(1, 1, k, 1))
        return y.reshape(b, c, h, w)

    def bpda(self, x: Tensor) -> Tensor:  # noqa: D102
        return self(x)


class BitDepth(InputDefense):
    """Bit-depth reduction (Xu et al. 2018): ``round(x * (2**bits - 1)) / (2**bits - 1)``.

    Rounds half to even (``torch.round`` = ``numpy.rint``), so it equals the numpy formula and
    ART's ``FeatureSqueezing`` exactly. Its true gradient is zero almost everywhere; ``bpda``
    is the straight-through estimator (identity backward).

    Args:
        bits: bits per channel, 1..8.
    """

    name = "bitdepth"
    differentiable = False

    def __init__(self, bits: int = 4) -> None:
        super().__init__()
        if int(bits) != bits or not 1 <= bits <= 8:
            raise ValueError(f"bitdepth bits must be an integer in [1, 8], got {bits}")
        self.bits = int(bits)

    def spec(self) -> str:  # noqa: D102
        return f"bitdepth:{self.bits}"

    def transform(self, x: Tensor) -> Tensor:  # noqa: D102
        levels = 2**self.bits - 1
        return torch.round(x.clamp(0, 1) * levels) / levels


def _grad(u: Tensor) -> tuple[Tensor, Tensor]:
    """Forward differences with a zero last row/column (Neumann border)."""
    gx = torch.zeros_like(u)
    gy = torch.zeros_like(u)
    gx[..., :, :-1] = u[..., :, 1:] - u[..., :, :-1]
    gy[..., :-1, :] = u[..., 1:, :] - u[..., :-1, :]
    return gx, gy


def _div(px: Tensor, py: Tensor) -> Tensor:
    """Divergence, the negative adjoint of ``_grad``."""
    dx = torch.zeros_like(px)
    dy = torch.zeros_like(py)
    dx[..., :, 0] = px[..., :, 0]
    dx[..., :, 1:-1] = px[..., :, 1:-1] - px[..., :, :-2]
    dx[..., :, -1] = -px[..., :, -2]
    dy[..., 0, :] = py[..., 0, :]
    dy[..., 1:-1, :] = py[..., 1:-1, :] - py[..., :-2, :]
    dy[..., -1, :] = -py[..., -2, :]
    return dx + dy


def total_variation(x: Tensor) -> Tensor:
    """Isotropic total variation per image ``[B]`` (sum over channels and pixels)."""
    gx, gy = _grad(x)
    return (gx.pow(2) + gy.pow(2)).sqrt().flatten(1).sum(1)


class TVMinimization(InputDefense):
    """Total-variation denoising (Guo et al. 2018) by Chambolle's (2004) dual projection.

    Solves ``min_u 0.5 * ||u - x||^2 + weight * TV(u)`` per channel (isotropic TV) with
    ``iterations`` fixed-point steps (step 1/4), batched. Treated as non-differentiable (the
    unrolled iterations would be a deep, ill-conditioned graph): the naive gradient is zero,
    ``bpda`` uses the identity.

    Args:
        weight: TV weight in [0, 1] pixel units (0 returns the input).
        iterations: Chambolle iterations.
    """

    name = "tv"
    differentiable = False

    def __init__(self, weight: float = 0.05, iterations: int = 30) -> None:
        super().__init__()
        if not 0 <= weight < math.inf:
            raise ValueError(f"tv weight must be a number >= 0, got {weight}")
        if int(iterations) != iterations or iterations < 1:
            raise ValueError(f"tv iterations must be an integer >= 1, got {iterations}")
        self.weight, self.iterations = float(weight), int(iterations)

    def spec(self) -> str:  # noqa: D102
        return f"tv:{self.weight:g},{self.iterations}"

    def transform(self, x: Tensor) -> Tensor:  # noqa: D102
        if self.weight == 0:
            return x.clone()
        tau, lam = 0.25, self.weight
        px = torch.zeros_like(x)
        py = torch.zeros_like(x)
        for _ in range(self.iterations):
            gx, gy = _grad(_div(px, py) - x / lam)
            norm = 1 + tau * (gx.pow(2) + gy.pow(2)).sqrt()
            px = (px + tau * gx) / norm
            py = (py + tau * gy) / norm
        return (x - lam * _div(px, py)).clamp(0, 1)


class RandomResizePad(InputDefense):
    """Random resizing and padding (Xie et al. 2018, "Mitigating adversarial effects through
    randomization"), keeping the input size.

    Each image is shrunk by its own factor ``s ~ U[min_scale, 1]`` (bilinear) and placed at a
    uniformly random position on a zero canvas of the input size, in one batched
    ``grid_sample``. Differentiable and randomized: attack it with EOT (``eot_model``).
    Draws come from ``generator`` when given (reproducible), else from torch's global RNG.

    Args:
        min_scale: smallest shrink factor, in (0, 1].
        generator: optional ``torch.Generator`` for reproducible draws.
    """

    name = "randpad"
    randomized = True

    def __init__(self, min_scale: float = 0.8, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not 0 < min_scale <= 1:
            raise ValueError(f"randpad min_scale must be in (0, 1], got {min_scale}")
        self.min_scale = float(min_scale)
        self.generator = generator

    def spec(self) -> str:  # noqa: D102
        return f"randpad:{self.min_scale:g}"

    def transform(self, x: Tensor) -> Tensor:  # noqa: D102
        b = x.shape[0]
        u = torch.rand(b, 3, generator=self.generator, dtype=x.dtype, device="cpu").to(x.device)
        s = self.min_scale + (1 - self.min_scale) * u[:, 0]
        # The shrunk image spans [t - s, t + s] in normalized coordinates: keep it on the canvas.
        tx = (2 * u[:, 1] - 1) * (1 - s)
        ty = (2 * u[:, 2] - 1) * (1 - s)
        theta = torch.zeros(b, 2, 3, dtype=x.dtype, device=x.device)
        theta[:, 0, 0] = theta[:, 1, 1] = 1 / s
        theta[:, 0, 2] = -tx / s
        theta[:, 1, 2] = -ty / s
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out.clamp(0, 1)

    def bpda(self, x: Tensor) -> Tensor:  # noqa: D102
        return self(x)


__all__ = ["JPEG", "MedianFilter", "GaussianBlur", "BitDepth", "TVMinimization", "RandomResizePad",
           "total_variation", "gaussian_kernel1d", "forward_as"]
