"""Training views in plane form (:mod:`pipelines.decode.planes`) -> normalised RGB tensors, on the
training device: the scaling, flip and colour conversion the decode task did not do.

For each row the crop's source region ``region = (x, y, w, h)`` of the ``S x S`` luma buffer is
resampled to ``crop x crop`` (bilinear, pixel centres as in libswscale's scaler, the region's
edge pixels repeated beyond it), mirrored when ``flip``, with the frames as channels of one
``grid_sample`` per plane: one grid per row serves all its frames. Chroma is sampled from the
half-size ``uv`` buffers at the same picture positions, with H.264's default chroma siting
(co-sited with even luma columns, centred between luma rows), so upsampling chroma and scaling
are one resampling. Then the row's YUV -> RGB matrix (BT.601 or BT.709, limited or full range,
:data:`pipelines.decode.planes.YUV_CODES`), clamped to ``[0, 255]``, and the normalisation
``(x/255 - mean)/std`` of :class:`training.device.inputs.DeviceInputs`.

The result is the same part of the picture at the same scale as the loader's RGB paths, not the
same bits: no rounding to 8 bits, and bilinear chroma instead of libswscale's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pipelines.decode.planes import YUV_CODES

_SAMPLE = dict(mode="bilinear", padding_mode="border", align_corners=False)
_KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


def _matrix(matrix: str, full: bool) -> tuple[list[list[float]], list[float]]:
    """``(M, offset)`` with ``rgb = M @ [y, u, v] + offset`` on 8-bit code values."""
    kr, kb = _KR_KB[matrix]
    kg = 1.0 - kr - kb
    ys, cs = (1.0, 1.0) if full else (255.0 / 219.0, 255.0 / 224.0)
    y0 = 0.0 if full else 16.0
    m = [
        [ys, 0.0, 2 * (1 - kr) * cs],
        [ys, -2 * kb * (1 - kb) / kg * cs, -2 * kr * (1 - kr) / kg * cs],
        [ys, 2 * (1 - kb) * cs, 0.0],
    ]
    offset = [-(ys * y0) - 128.0 * (row[1] + row[2]) for row in m]
    return m, offset


def yuv_tables() -> tuple[torch.Tensor, torch.Tensor]:
    """``(M, offset)`` of every :data:`YUV_CODES` value: float64 ``(4, 3, 3)`` and ``(4, 3)``."""
    mats, offs = [None] * len(YUV_CODES), [None] * len(YUV_CODES)
    for (matrix, rng), code in YUV_CODES.items():
        mats[code], offs[code] = _matrix(matrix, rng == "full")
    return torch.tensor(mats, dtype=torch.float64), torch.tensor(offs, dtype=torch.float64)


class PlaneConverter:
    """Plane-form pathways -> normalised float32 ``(B, 3, T, crop, crop)`` on ``device``.

    Args:
        crop_size: output side.
        scale, bias: the normalisation ``x * scale + bias`` on 8-bit RGB, ``(1, 3, 1, 1, 1)``
            tensors on ``device`` (:class:`training.device.inputs.DeviceInputs` makes them).
        memory_format: of the returned tensors.
    """

    def __init__(
        self,
        crop_size: int,
        scale: torch.Tensor,
        bias: torch.Tensor,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        self.crop = int(crop_size)
        device = scale.device
        mats, offs = yuv_tables()
        # Fold the normalisation in after the clamp: keep the RGB matrix on its own.
        self.mats, self.offs = mats.float().to(device), offs.float().to(device)
        self.scale, self.bias, self.memory_format = scale, bias, memory_format
        self.centres = (
            torch.arange(self.crop, dtype=torch.float32, device=device) + 0.5
        ) / self.crop

    def grids(
        self, region: torch.Tensor, flip: torch.Tensor, side: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The luma and chroma sampling grids ``(B, crop, crop, 2)`` of ``grid_sample``
        (``align_corners=False``) for buffers of side ``side`` and ``side/2``."""
        x, y, w, h = (region[:, k : k + 1].float() for k in range(4))
        xs = x + self.centres * w - 0.5  # luma pixel coordinates of each output column
        xs = torch.where(flip.view(-1, 1), xs.flip(1), xs)
        ys = y + self.centres * h - 0.5
        xs = torch.minimum(torch.maximum(xs, x), x + w - 1)  # the box's edge pixels repeat
        ys = torch.minimum(torch.maximum(ys, y), y + h - 1)
        # Chroma sample c sits on luma column 2c (left-sited) and between luma rows 2c, 2c+1.
        last_x, last_y = torch.ceil((x + w) / 2) - 1, torch.ceil((y + h) / 2) - 1
        cx = torch.minimum(xs / 2, last_x)
        cy = torch.minimum(((ys - 0.5) / 2).clamp(min=0), last_y)
        luma = _grid(_normalised(xs, side), _normalised(ys, side))
        return luma, _grid(_normalised(cx, side / 2), _normalised(cy, side / 2))

    def __call__(
        self,
        y: torch.Tensor,
        uv: torch.Tensor,
        region: torch.Tensor,
        flip: torch.Tensor,
        yuv: torch.Tensor,
    ) -> torch.Tensor:
        """``y`` uint8 ``(B, T, S, S)``, ``uv`` uint8 ``(B, T, 2, S/2, S/2)``, ``region`` int
        ``(B, 4)``, ``flip`` bool ``(B,)``, ``yuv`` int ``(B,)`` -> normalised float32
        ``(B, 3, T, crop, crop)``."""
        b, t, side = y.shape[0], y.shape[1], y.shape[2]
        luma_grid, chroma_grid = self.grids(region, flip, side)
        c = self.crop
        luma = F.grid_sample(y.float(), luma_grid, **_SAMPLE)
        uv = uv.reshape(b, t * 2, side // 2, side // 2).float()
        chroma = F.grid_sample(uv, chroma_grid, **_SAMPLE).view(b, t, 2, c, c)
        planes = torch.stack((luma, chroma[:, :, 0], chroma[:, :, 1]), dim=1)  # (B, 3, T, c, c)
        codes = yuv.long()
        rgb = torch.einsum("bkj,bjthw->bkthw", self.mats[codes], planes)
        rgb = rgb.add_(self.offs[codes].view(b, 3, 1, 1, 1)).clamp_(0.0, 255.0)
        out = torch.addcmul(self.bias, rgb, self.scale)
        return out.contiguous(memory_format=self.memory_format)


def _normalised(coords: torch.Tensor, side: float) -> torch.Tensor:
    """Pixel-centre coordinates in a buffer of ``side`` pixels -> ``grid_sample``'s [-1, 1]."""
    return (coords + 0.5) * (2.0 / side) - 1.0


def _grid(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """``(B, crop)`` column and row coordinates -> a ``(B, crop, crop, 2)`` grid."""
    b, c = xs.shape
    return torch.stack((xs.view(b, 1, c).expand(b, c, c), ys.view(b, c, 1).expand(b, c, c)), -1)
