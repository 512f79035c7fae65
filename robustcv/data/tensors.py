"""In-memory image datasets and the helpers that move whole splits as tensors."""
from __future__ import annotations

import torch
from torch.utils.data import Dataset, Subset, TensorDataset


class ImageTensorDataset(Dataset):
    """Images and targets held as two tensors; indexing is a tensor lookup.

    Images are stored as ``uint8`` (scaled to [0, 1] when read, 4x less memory, used for the
    torchvision sets and image folders) or as ``float32`` already in [0, 1].

    Args:
        images: ``[N, C, H, W]`` uint8 or float32.
        targets: ``[N]`` class indices or ``[N, H, W]`` masks (int64).
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor) -> None:
        if images.ndim != 4 or len(images) != len(targets):
            raise ValueError(f"images {tuple(images.shape)} and targets {tuple(targets.shape)} do not match")
        if images.dtype not in (torch.uint8, torch.float32):
            raise ValueError(f"images must be uint8 or float32, got {images.dtype}")
        self.images = images
        self.targets = targets.long()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int | torch.Tensor]:
        image = self.images[index]
        # A fresh tensor per item, as torchvision datasets give: in-place augmentation is safe.
        image = image.clone() if image.dtype == torch.float32 else _to_float(image)
        target = self.targets[index]
        return image, (int(target) if target.ndim == 0 else target)

    def subset(self, indices: torch.Tensor) -> "ImageTensorDataset":
        """A new in-memory dataset holding the rows ``indices`` (copied, so splits are independent)."""
        return ImageTensorDataset(self.images[indices], self.targets[indices])

    def float_images(self) -> torch.Tensor:
        """All images as float32 in [0, 1]; the stored tensor itself when it is already float."""
        return _to_float(self.images)


def _to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels scaled to [0, 1]; float images (assumed in [0, 1]) as float32."""
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images.float()


def as_tensors(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack a split into ``(X, Y)``: images ``[N, C, H, W]`` float32 in [0, 1], targets int64.

    In-memory datasets (``ImageTensorDataset``, ``TensorDataset`` and ``Subset`` of either) are
    answered without a per-item loop; float storage is returned as is (not copied — do not
    modify it in place). Any other dataset is read item by item.
    """
    if isinstance(dataset, Subset) and isinstance(dataset.dataset, (ImageTensorDataset, TensorDataset)):
        index = torch.as_tensor(dataset.indices, dtype=torch.long)
        images, targets = _storage(dataset.dataset)
        return _to_float(images[index]), targets[index]  # index first: convert only the rows kept
    if isinstance(dataset, (ImageTensorDataset, TensorDataset)):
        images, targets = _storage(dataset)
        return _to_float(images), targets
    return _stack_items(dataset)


def _storage(dataset: ImageTensorDataset | TensorDataset) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(dataset, ImageTensorDataset):
        return dataset.images, dataset.targets
    return dataset.tensors[0], dataset.tensors[1]


def _stack_items(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    items = [dataset[i] for i in range(len(dataset))]
    if not items:
        return torch.empty(0, 0, 0, 0), torch.empty(0, dtype=torch.long)
    images = torch.stack([torch.as_tensor(x, dtype=torch.float32) for x, _ in items])
    targets = torch.stack([torch.as_tensor(y).long() for _, y in items])
    return images, targets


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation over all pixels of ``images`` ``[N, C, H, W]``.

    Works chunk by chunk in float64 so uint8 storage is never expanded whole. A constant channel
    gets std 1 so normalizing by it stays finite.
    """
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, len(images), chunk):
        block = _to_float(images[start : start + chunk]).double()
        total += block.sum(dim=(0, 2, 3))
        squares += block.square().sum(dim=(0, 2, 3))
    count = max(images.shape[0] * images.shape[2] * images.shape[3], 1)
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    return tuple(round(v, 6) for v in mean.tolist()), tuple(round(v, 6) for v in std.tolist())
