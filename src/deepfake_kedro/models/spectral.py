"""Weight-free forensic features ("v1"): spectrum, periodic peaks, JPEG grid, noise residual.

No group assumes where a manipulated region lies: every statistic is either global, a
distribution over 16x16 blocks (so it does not change when the blocks are permuted), or
measured on a region found in the image itself. Horizontal flips and circular shifts by
whole blocks leave the block and region groups unchanged up to the pixels at the image
border. The groups and what each assumes:

- ``radial_spectrum``: azimuthally averaged log power spectrum of the grey high-pass
  residual, mean-removed (Durall et al. 2020, "Watch your up-convolution"): up-sampling
  layers bend the high-frequency tail. Assumes nothing about the image's layout.
- ``periodic_peaks``: log ratio of the energy at N/2 and N/4 (x, y, both diagonals) to the
  median of its neighbourhood, in the residual's spectrum and in the spectrum of the
  first-difference magnitude. Zero insertion and transposed convolutions leave peaks in the
  former; nearest up-sampling cancels the N/2 bin there but makes first differences
  vanish at every other pixel, a peak in the latter. Assumes the pixel grid of the crop is
  the image's (no resize before extraction).
- ``blockiness``: mean absolute luma difference across columns (rows) at each of the 8
  phases of an 8x8 grid relative to all phases, sorted (so a shifted or second grid is
  seen wherever it lies) plus the phase aligned with the crop's grid. Assumes the crop
  starts on the image's 8x8 JPEG grid (the preprocessing crops on a 16 px grid).
- ``dct_periodicity``: on the crop's own 8x8 grid and on the grid found by the
  blockiness, the magnitude of the characteristic function of ten low-frequency AC DCT
  coefficients at periods 2..16, i.e. the Fourier magnitudes of each coefficient
  histogram. Quantisation with step q puts the coefficients on multiples of q (peaks at
  every divisor of q), so a last compression coarser than a camera's shows at its step;
  a second quantisation leaves the periodic gaps and peaks of double quantisation.
- ``noise``: per RGB channel log std and log kurtosis of the residual; log std of the luma
  and chroma residuals over 16x16 blocks summarised by quantiles and max/median (a pasted
  region has other noise than its frame); and a per-image fit of block noise on brightness
  and texture (camera noise depends on the signal, pasted texture does not): slopes and
  quantiles of the misfit. Assumes one camera noise model per image.
- ``block_maps``: distributions over blocks of the per-block maps (see ``BLOCK_MAPS``):
  sharpness (residual against edge strength), fine-to-mid band energy, log-chromaticity
  (log R/G, log B/G: independent of brightness and shading) and the 8x8 blocking strength,
  each by its median, 10-90% spread and both tails; plus, for every map, how much
  neighbouring blocks differ (90th percentile of |map(block) - map(neighbour)|): a pasted,
  blurred or recompressed region makes a step where its edge lies. Assumes nothing about
  where.
- ``anomalous_region``: the region found from the image: blocks are scored by how far
  their noise-type maps (``REGION_MAPS``: the noise misfit, sharpness, band ratio, chroma
  noise and blocking) lie from the image's own median, in units of the image's own spread
  (median absolute deviation), averaged over 3x3 blocks; the ``REGION_FRACTION`` of blocks
  with the highest score is the region and the blocks touching it are its ring. Features:
  the mean robust z-score of every map in the region and in the ring (a self-blended or
  pasted region carries a colour, brightness, sharpness and noise shift its frame does
  not; the ring holds the blending boundary), the score's median, 90th percentile and max,
  region minus rest, and the region's compactness (share of its blocks' neighbours inside
  it: a manipulated region is one piece, natural outliers are scattered). Assumes at most
  one region per image stands out, of any shape, anywhere.
- ``resampling``: blockiness at periods 2 and 4 (the pixel phase of 2x/4x up-sampling),
  residual autocorrelation at small lags and its even/odd parity (Popescu & Farid 2005),
  Laplacian-pyramid energies, the noise level per brightness bin (camera noise depends on
  the signal) and the chroma residual's correlation and energy.

Everything is computed in float32 on the images' device, vectorised over the batch, and
finite for any input (flat images included).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

FEATURE_VERSION = 4
"""Bump whenever a change here would change the features (invalidates the feature cache)."""

RADIAL_BINS = 64
PEAK_POSITIONS = ("x/2", "y/2", "diag/2", "x/4", "y/4", "diag/4", "antidiag/4")
# Low-frequency AC modes (row, col): the ones JPEG quantises most finely, so their
# quantisation step tells the quality of the last compression.
DCT_MODES = ((0, 1), (1, 0), (1, 1), (0, 2), (2, 0), (2, 1), (1, 2), (2, 2), (0, 3), (3, 0))
DCT_PERIODS = tuple(range(2, 17))
AUTOCORR_LAGS = (
    (0, 1),
    (1, 0),
    (1, 1),
    (1, -1),
    (0, 2),
    (2, 0),
    (2, 2),
    (0, 3),
    (3, 0),
    (0, 4),
    (4, 0),
)
PYRAMID_LEVELS = 4
NLF_BINS = 6
NOISE_BLOCK = 16
MIN_SIDE = 32
# Per-block maps, in the order of the ``block_maps`` tensor (see _block_maps).
BLOCK_MAPS = (
    "noise_y",
    "noise_cb",
    "noise_cr",
    "noise_misfit",
    "sharpness",
    "fine_to_mid",
    "chroma_rg",
    "chroma_bg",
    "brightness",
    "blocking",
)
# Maps summarised by their distribution in ``block_maps``: noise_y/cb/cr and the misfit have
# theirs in ``noise``; brightness is content, not a trace (only its steps are used).
DISTRIBUTION_MAPS = ("sharpness", "fine_to_mid", "chroma_rg", "chroma_bg", "blocking")
# Maps a camera makes the same all over a photo (once brightness and texture are accounted
# for), so a block far from the image's median on them is suspect; colour and brightness
# vary with the scene and are measured in the region, not used to find it.
REGION_MAPS = ("noise_misfit", "sharpness", "fine_to_mid", "noise_cb", "noise_cr", "blocking")
REGION_FRACTION = 0.125  # share of the blocks in the anomalous region
ROBUST_FLOOR = 0.02  # smallest spread of a map (log units) its z-scores are taken against
Z_CLIP = 6.0

FEATURE_GROUPS: dict[str, int] = {
    "radial_spectrum": RADIAL_BINS,
    "periodic_peaks": 2 * len(PEAK_POSITIONS),
    "blockiness": 2 * (8 + 1),
    # on the crop's own 8x8 grid and on the grid with the strongest blocking, + max over modes
    "dct_periodicity": 2 * (len(DCT_MODES) + 1) * len(DCT_PERIODS),
    "noise": 3 * 2 + 3 * 4 + 5,
    "block_maps": 4 * len(DISTRIBUTION_MAPS) + len(BLOCK_MAPS),
    "anomalous_region": 2 * len(BLOCK_MAPS) + 5,
    "resampling": 2 * (2 + 4)
    + PYRAMID_LEVELS
    + (PYRAMID_LEVELS - 1)
    + NLF_BINS
    + (len(AUTOCORR_LAGS) + 2)
    + 4
    + 1,
}
FEATURE_DIM = sum(FEATURE_GROUPS.values())

_EPS = 1e-6
# JPEG (JFIF) RGB -> YCbCr, so DCT coefficients are in the units the quantisers used.
_YCBCR = torch.tensor(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]
)


def feature_slices() -> dict[str, slice]:
    """Column range of each feature group in the output of :func:`spectral_features`."""
    slices, start = {}, 0
    for name, size in FEATURE_GROUPS.items():
        slices[name] = slice(start, start + size)
        start += size
    return slices


def spectral_features(images: torch.Tensor) -> torch.Tensor:
    """Forensic features of a batch of images.

    Args:
        images: uint8 (or float in 0..255) ``[B, 3, H, W]``, H and W >= 32.

    Returns:
        float32 ``[B, FEATURE_DIM]``.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape [B, 3, H, W], got {tuple(images.shape)}")
    if min(images.shape[-2:]) < MIN_SIDE:
        raise ValueError(
            f"spectral features need images of at least {MIN_SIDE} px, got {tuple(images.shape[-2:])}"
        )
    # float32 whatever the caller's autocast says: FFTs, logs and 4th moments lose too much
    # in bf16/fp16 and the features must not depend on the runtime precision.
    with torch.autocast(device_type=images.device.type, enabled=False):
        rgb = images.float().contiguous()
        ycc = torch.einsum("ck,bkhw->bchw", _YCBCR.to(rgb.device), rgb)
        planes = torch.cat([rgb, ycc], dim=1)  # R G B Y Cb Cr, 0..255 units
        residual = planes - _blur3(planes)
        luma, res_y = ycc[:, 0], residual[:, 3]
        maps = _block_maps(rgb, luma, residual)
        groups = [
            _radial_spectrum(res_y),
            _periodic_peaks(res_y, luma),
            *_jpeg_grid(luma),
            _noise_statistics(residual, maps),
            _block_map_statistics(maps.maps),
            _anomalous_region(maps.maps),
            _resampling(luma, res_y, residual[:, 4]),
        ]
        features = torch.cat(groups, dim=1)
    return torch.nan_to_num(features, nan=0.0, posinf=0.0, neginf=0.0)


# ------------------------------------------------------------------------------ helpers


def _blur3(x: torch.Tensor) -> torch.Tensor:
    """Binomial 3x3 blur (reflect padding); x minus this is a high-pass with zero DC gain."""
    # Separable shifted sums: several times faster on CPU than a depthwise conv2d.
    p = F.pad(x, (1, 1, 1, 1), mode="reflect")
    p = (p[..., :-2] + 2 * p[..., 1:-1] + p[..., 2:]) / 4
    return (p[..., :-2, :] + 2 * p[..., 1:-1, :] + p[..., 2:, :]) / 4


def _log_ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.log(a + _EPS) - torch.log(b + _EPS)


def _power_spectrum(x: torch.Tensor) -> torch.Tensor:
    """|rfft2|^2 / (H W) of [B, H, W] (Parseval: its mean is the mean square of x)."""
    h, w = x.shape[-2:]
    return torch.fft.rfft2(x, norm="backward").abs().square() / (h * w)


@functools.lru_cache(maxsize=16)
def _radial_weights(h: int, w: int, device: torch.device) -> torch.Tensor:
    """[H*(W//2+1), RADIAL_BINS] weights averaging an rfft2 spectrum over radius rings.

    Triangular weights at least one frequency step wide, so no ring is empty even for
    small images; radius 1 is the Nyquist frequency along an axis, the rings span 0..sqrt(2).
    """
    fy = np.fft.fftfreq(h)[:, None] / 0.5
    fx = np.fft.rfftfreq(w)[None, :] / 0.5
    radius = np.sqrt(fy**2 + fx**2).reshape(-1)
    centres = (np.arange(RADIAL_BINS) + 0.5) * math.sqrt(2) / RADIAL_BINS
    half_width = max(math.sqrt(2) / RADIAL_BINS, 2.0 / min(h, w))
    weights = np.clip(1 - np.abs(radius[:, None] - centres[None, :]) / half_width, 0, None)
    weights[radius == 0] = 0  # DC carries brightness, not traces
    weights /= np.maximum(weights.sum(0, keepdims=True), 1e-12)
    return torch.from_numpy(weights.astype(np.float32)).to(device)


def _radial_spectrum(res_y: torch.Tensor) -> torch.Tensor:
    power = _power_spectrum(res_y).flatten(1)
    h, w = res_y.shape[-2:]
    profile = torch.log(power @ _radial_weights(h, w, res_y.device) + _EPS)
    return profile - profile.mean(dim=1, keepdim=True)


@functools.lru_cache(maxsize=16)
def _peak_indices(h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat rfft2 indices of each peak's 3x3 centre and of its ring at distance 2..4.

    Frequencies outside the stored half plane are mapped through conjugate symmetry.
    """
    wr = w // 2 + 1
    targets = {
        "x/2": (0, w / 2),
        "y/2": (h / 2, 0),
        "diag/2": (h / 2, w / 2),
        "x/4": (0, w / 4),
        "y/4": (h / 4, 0),
        "diag/4": (h / 4, w / 4),
        "antidiag/4": (-h / 4, w / 4),
    }

    def flat(ky: np.ndarray, kx: np.ndarray) -> np.ndarray:
        kx = np.mod(kx, w)
        mirror = kx > w // 2  # P(ky, kx) = P(-ky, w - kx) for a real signal
        ky = np.where(mirror, -ky, ky)
        kx = np.where(mirror, w - kx, kx)
        return np.mod(ky, h) * wr + kx

    dy, dx = np.mgrid[-4:5, -4:5]
    cheb = np.maximum(np.abs(dy), np.abs(dx))
    centre_off, ring_off = (dy[cheb <= 1], dx[cheb <= 1]), (dy[cheb >= 2], dx[cheb >= 2])
    centres, rings = [], []
    for name in PEAK_POSITIONS:
        cy, cx = (int(round(v)) for v in targets[name])
        centres.append(flat(cy + centre_off[0], cx + centre_off[1]))
        rings.append(flat(cy + ring_off[0], cx + ring_off[1]))
    as_tensor = lambda a: torch.from_numpy(np.stack(a).astype(np.int64)).to(device)  # noqa: E731
    return as_tensor(centres), as_tensor(rings)


def _periodic_peaks(res_y: torch.Tensor, luma: torch.Tensor) -> torch.Tensor:
    h, w = res_y.shape[-2:]
    centre_idx, ring_idx = _peak_indices(h, w, res_y.device)
    # Nearest up-sampling repeats pixel pairs: first differences vanish at one parity and
    # not the other, a period-2 pattern in their magnitude (the symmetric high-pass
    # residual does not show it).
    diff_x = F.pad((luma[:, :, 1:] - luma[:, :, :-1]).abs(), (0, 1))
    diff_y = F.pad((luma[:, 1:, :] - luma[:, :-1, :]).abs(), (0, 0, 0, 1))
    envelope = diff_x + diff_y
    out = []
    for signal in (res_y, envelope - envelope.mean(dim=(1, 2), keepdim=True)):
        power = _power_spectrum(signal).flatten(1)
        peak = power[:, centre_idx].amax(dim=2)  # [B, n_positions]
        background = power[:, ring_idx].median(dim=2).values
        out.append(_log_ratio(peak, background))
    return torch.cat(out, dim=1)


def _phase_profile(diff: torch.Tensor) -> torch.Tensor:
    """Mean |diff| per phase mod 8 along the last axis: [B, N] -> [B, 8]."""
    n = diff.shape[-1] // 8 * 8
    return diff[:, :n].reshape(diff.shape[0], -1, 8).mean(dim=1)


def _jpeg_grid(luma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Blockiness per grid phase and DCT coefficient periodicity on the strongest grid."""
    b, h, w = luma.shape
    # Column (row) profiles: boundary k sits between pixel k and k+1, so phase 7 is the
    # 8x8 grid of the crop itself (the preprocessing keeps crops on a 16 px grid).
    col = _phase_profile((luma[:, :, 1:] - luma[:, :, :-1]).abs().mean(dim=1))
    row = _phase_profile((luma[:, 1:, :] - luma[:, :-1, :]).abs().mean(dim=2))
    blockiness = []
    for profile in (col, row):
        rel = _log_ratio(profile, profile.mean(dim=1, keepdim=True))
        blockiness += [rel.sort(dim=1, descending=True).values, rel[:, 7:8]]

    # Blocks start one pixel after the strongest boundary; the crop's own grid starts at 0.
    strongest = torch.stack([(row.argmax(dim=1) + 1) % 8, (col.argmax(dim=1) + 1) % 8], dim=1)
    periodicity = [
        _dct_periodicity(luma, torch.zeros_like(strongest)),
        _dct_periodicity(luma, strongest),
    ]
    return torch.cat(blockiness, dim=1), torch.cat(periodicity, dim=1)


def _dct_periodicity(luma: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
    """|E exp(2 pi i c / q)| per DCT mode and period q on the 8x8 grid at ``origin`` (y, x)."""
    b, h, w = luma.shape
    hc, wc = (h - 7) // 8 * 8, (w - 7) // 8 * 8
    iy = origin[:, 0, None] + torch.arange(hc, device=luma.device)
    ix = origin[:, 1, None] + torch.arange(wc, device=luma.device)
    crop = luma[torch.arange(b, device=luma.device)[:, None, None], iy[:, :, None], ix[:, None, :]]
    blocks = (crop - 128.0).reshape(b, hc // 8, 8, wc // 8, 8).permute(0, 1, 3, 2, 4)
    # Only a few DCT-II coefficients are used: project each flattened block on their bases.
    selected = blocks.reshape(b, -1, 64) @ _dct_mode_basis(luma.device).T  # [B, n_blocks, M]
    # Zeros are multiples of every period and would flatten all peaks towards 1.
    weight = (selected.abs() >= 1.0).float()
    periods = torch.tensor(DCT_PERIODS, dtype=torch.float32, device=luma.device)
    angle = selected[..., None] * (2 * math.pi / periods)  # [B, n_blocks, M, P]
    count = weight.sum(dim=1)[..., None].clamp_min(1.0)
    re = (torch.cos(angle) * weight[..., None]).sum(dim=1) / count
    im = (torch.sin(angle) * weight[..., None]).sum(dim=1) / count
    periodicity = torch.sqrt(re.square() + im.square() + _EPS**2)  # [B, M, P]
    return torch.cat([periodicity.flatten(1), periodicity.amax(dim=1)], dim=1)


@functools.lru_cache(maxsize=8)
def _dct_mode_basis(device: torch.device) -> torch.Tensor:
    """[M, 64] orthonormal 8x8 DCT-II basis images (as JPEG) of the modes in DCT_MODES."""
    n = torch.arange(8, dtype=torch.float64)
    dct = torch.cos((2 * n[None, :] + 1) * n[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    dct[0] /= math.sqrt(2)
    basis = torch.stack([torch.outer(dct[r], dct[c]).flatten() for r, c in DCT_MODES])
    return basis.float().to(device)


# --------------------------------------------------------------------------- block maps


class BlockMaps(NamedTuple):
    """Per-block maps of a batch, and the per-image noise model the misfit is taken from."""

    maps: torch.Tensor
    """``[B, len(BLOCK_MAPS), hb, wb]`` over non-overlapping NOISE_BLOCK x NOISE_BLOCK blocks."""
    coef: torch.Tensor
    """``[B, 2]``: slopes of block noise on brightness and texture."""


def _blocks(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, hb, wb, S, S] blocks of side S = NOISE_BLOCK (remainder dropped)."""
    b, c, h, w = x.shape
    s = NOISE_BLOCK
    hb, wb = h // s, w // s
    return x[:, :, : hb * s, : wb * s].reshape(b, c, hb, s, wb, s).permute(0, 1, 2, 4, 3, 5)


def _block_log_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log std and mean of [B, C, H, W] over each block -> [B, C, hb, wb] each."""
    blocks = _blocks(x)
    std, mean = torch.std_mean(blocks.reshape(*blocks.shape[:4], -1), dim=4, correction=0)
    return torch.log(std + 1e-3), mean


def _block_log_rms(x: torch.Tensor) -> torch.Tensor:
    return torch.log(_blocks(x).square().mean(dim=(4, 5)).sqrt() + 1e-3)


def _block_maps(rgb: torch.Tensor, luma: torch.Tensor, residual: torch.Tensor) -> BlockMaps:
    """The BLOCK_MAPS of each image (every operation is symmetric, so the maps of a flipped
    image are the flipped maps)."""
    noise, _ = _block_log_std(residual[:, 3:])  # luma, Cb, Cr residual
    low = luma[:, None] - residual[:, 3:4]  # binomial low-pass of the luma
    texture, brightness = _block_log_std(low)
    misfit, coef = _noise_fit(noise[:, 0], brightness[:, 0], texture[:, 0])
    # Sharpness: residual noise against the edge strength of the low-pass image (central
    # differences, so that no direction is preferred).
    padded = F.pad(low, (1, 1, 1, 1), mode="replicate")
    edges = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]).abs() + (
        padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]
    ).abs()
    sharpness = noise[:, :1] - _block_log_std(edges)[0]
    # Finest band (the residual) against the next one: blur lowers it, sharpening raises it.
    fine_to_mid = _block_log_rms(residual[:, 3:4]) - _block_log_rms(low - _blur3(_blur3(low)))
    log_rgb = torch.log(rgb + 4.0)  # +4: dark pixels' chromaticity is mostly noise
    chroma = torch.stack([log_rgb[:, 0] - log_rgb[:, 1], log_rgb[:, 2] - log_rgb[:, 1]], dim=1)
    maps = torch.cat(
        [
            noise,
            misfit[:, None],
            sharpness,
            fine_to_mid,
            _blocks(chroma).mean(dim=(4, 5)),
            torch.log(brightness + 4.0),
            _block_blocking(luma),
        ],
        dim=1,
    )
    return BlockMaps(maps, coef)


def _noise_fit(
    noise: torch.Tensor, brightness: torch.Tensor, texture: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ridge fit of block noise on brightness and texture, per image: signed misfit, slopes.

    Centred, so an image without variation gets zero slopes whatever its brightness.
    """
    b, hb, wb = noise.shape
    design = torch.stack([brightness.flatten(1) / 255.0, texture.flatten(1)], dim=2)  # [B, n, 2]
    design = design - design.mean(dim=1, keepdim=True)
    target = noise.flatten(1)
    target = (target - target.mean(dim=1, keepdim=True))[..., None]
    gram = design.transpose(1, 2) @ design
    ridge = 1e-3 * design.shape[1] * torch.eye(2, device=noise.device)
    coef = torch.linalg.solve(gram + ridge, design.transpose(1, 2) @ target)  # [B, 2, 1]
    misfit = (target - design @ coef)[..., 0]
    return misfit.view(b, hb, wb), coef[..., 0]


def _block_blocking(luma: torch.Tensor) -> torch.Tensor:
    """Log ratio of the luma steps across the crop's 8x8 grid to those inside its blocks.

    Only pixel pairs inside a block are used (the grid line between pixels 7 and 8 of each
    block), so a flipped image's map is the flipped map.
    """
    blocks = _blocks(luma[:, None])[:, 0]  # [B, hb, wb, S, S]
    across_cols = (blocks[..., :, 1:] - blocks[..., :, :-1]).abs()  # pair k: pixels k, k+1
    across_rows = (blocks[..., 1:, :] - blocks[..., :-1, :]).abs()
    on_grid = torch.arange(NOISE_BLOCK - 1, device=luma.device) % 8 == 7
    boundary = across_cols[..., on_grid].mean(dim=(3, 4)) + across_rows[..., on_grid, :].mean(
        dim=(3, 4)
    )
    inside = across_cols[..., ~on_grid].mean(dim=(3, 4)) + across_rows[..., ~on_grid, :].mean(
        dim=(3, 4)
    )
    return (torch.log(boundary + 0.05) - torch.log(inside + 0.05))[:, None]


def _noise_statistics(residual: torch.Tensor, maps: BlockMaps) -> torch.Tensor:
    """The ``noise`` group (see the module docstring)."""
    res_rgb = residual[:, :3].flatten(2)
    m2 = res_rgb.square().mean(dim=2)
    m4 = res_rgb.square().square().mean(dim=2)
    log_std = 0.5 * torch.log(m2 + _EPS)
    log_kurtosis = torch.log((m4 + _EPS) / (m2.square() + _EPS))

    # Local noise level of luma, Cb, Cr residuals.
    block_log_std = maps.maps[:, :3].flatten(2)  # [B, 3, n]
    q = torch.tensor([0.1, 0.5, 0.9], device=residual.device)
    quantiles = torch.quantile(block_log_std, q, dim=2).permute(1, 2, 0)  # [B, 3, 3]
    spread = block_log_std.amax(dim=2) - quantiles[..., 1]  # log(max / median)
    local = torch.cat([quantiles, spread[..., None]], dim=2).flatten(1)

    misfit = maps.maps[:, BLOCK_MAPS.index("noise_misfit")].flatten(1).abs()
    misfit_q = torch.quantile(misfit, torch.tensor([0.5, 0.9], device=residual.device), dim=1).T
    fit = torch.cat([maps.coef, misfit_q, misfit.amax(dim=1, keepdim=True)], dim=1)
    return torch.cat([log_std, log_kurtosis, local, fit], dim=1)


def _map_indices(names: tuple[str, ...]) -> list[int]:
    return [BLOCK_MAPS.index(name) for name in names]


def _block_map_statistics(maps: torch.Tensor) -> torch.Tensor:
    """The ``block_maps`` group: distributions over blocks and steps between neighbours."""
    values = maps[:, _map_indices(DISTRIBUTION_MAPS)].flatten(2)  # [B, D, n]
    q10, q50, q90 = torch.quantile(
        values, torch.tensor([0.1, 0.5, 0.9], device=maps.device), dim=2
    ).unbind(0)
    distribution = torch.stack(
        [q50, q90 - q10, values.amax(dim=2) - q90, q10 - values.amin(dim=2)], dim=2
    ).flatten(1)
    steps = torch.cat(
        [
            (maps[..., 1:, :] - maps[..., :-1, :]).abs().flatten(2),
            (maps[..., :, 1:] - maps[..., :, :-1]).abs().flatten(2),
        ],
        dim=2,
    )
    return torch.cat([distribution, torch.quantile(steps, 0.9, dim=2)], dim=1)


def _anomalous_region(maps: torch.Tensor) -> torch.Tensor:
    """The ``anomalous_region`` group: a region found from the image's own statistics."""
    b, _, hb, wb = maps.shape
    flat = maps.flatten(2)  # [B, M, n]
    median = flat.median(dim=2, keepdim=True).values
    mad = (flat - median).abs().median(dim=2, keepdim=True).values
    z = ((flat - median) / (1.4826 * mad + ROBUST_FLOOR)).clamp(-Z_CLIP, Z_CLIP)

    score = z[:, _map_indices(REGION_MAPS)].square().mean(dim=1).view(b, 1, hb, wb)
    score = F.avg_pool2d(score, 3, 1, 1, count_include_pad=False).flatten(1)  # [B, n]
    k = max(1, round(REGION_FRACTION * hb * wb))
    region = torch.zeros_like(score).scatter_(1, score.topk(k, dim=1).indices, 1.0)
    grown = F.max_pool2d(region.view(b, 1, hb, wb), 3, 1, 1).flatten(1)
    ring, rest = grown - region, 1.0 - grown

    def mean_z(mask: torch.Tensor) -> torch.Tensor:
        return (z * mask[:, None]).sum(dim=2) / mask.sum(dim=1, keepdim=True).clamp_min(1.0)

    cross = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]], device=maps.device)
    neighbours = F.conv2d(region.view(b, 1, hb, wb), cross.view(1, 1, 3, 3), padding=1)
    compactness = (neighbours.flatten(1) * region).sum(dim=1) / (4.0 * k)
    region_score = (score * region).sum(dim=1) / k
    rest_score = (score * rest).sum(dim=1) / rest.sum(dim=1).clamp_min(1.0)
    q50, q90 = torch.quantile(score, torch.tensor([0.5, 0.9], device=maps.device), dim=1)
    summary = torch.stack(
        [
            torch.log1p(q50),
            torch.log1p(q90),
            torch.log1p(score.amax(dim=1)),
            torch.log1p(region_score) - torch.log1p(rest_score),
            compactness,
        ],
        dim=1,
    )
    return torch.cat([mean_z(region), mean_z(ring), summary], dim=1)


def _period_profile(luma: torch.Tensor, period: int, dim: int) -> torch.Tensor:
    """Sorted log share of the mean |first difference| at each phase mod ``period``."""
    diff = luma.diff(dim=dim).abs()
    n = diff.shape[dim] // period * period
    diff = diff.narrow(dim, 0, n)
    if dim == 2:
        profile = diff.reshape(diff.shape[0], diff.shape[1], n // period, period).mean(dim=(1, 2))
    else:
        profile = diff.reshape(diff.shape[0], n // period, period, diff.shape[2]).mean(dim=(1, 3))
    return _log_ratio(profile, profile.mean(dim=1, keepdim=True)).sort(dim=1).values


def _autocorrelation(residual: torch.Tensor) -> torch.Tensor:
    """Normalised autocorrelation at AUTOCORR_LAGS, plus the even-odd difference at lag 1."""
    r = residual - residual.mean(dim=(1, 2), keepdim=True)
    var = r.square().mean(dim=(1, 2)) + _EPS
    h, w = r.shape[1:]
    out = []
    for dy, dx in AUTOCORR_LAGS:
        a = r[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)]
        b = r[:, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
        out.append((a * b).mean(dim=(1, 2)) / var)
    # Up-sampling by 2 correlates pixel pairs at one parity more than at the other.
    horizontal = r[:, :, :-1] * r[:, :, 1:]
    vertical = r[:, :-1] * r[:, 1:]
    out.append(
        (horizontal[:, :, 0::2].mean(dim=(1, 2)) - horizontal[:, :, 1::2].mean(dim=(1, 2))) / var
    )
    out.append((vertical[:, 0::2].mean(dim=(1, 2)) - vertical[:, 1::2].mean(dim=(1, 2))) / var)
    return torch.stack(out, dim=1)


def _resampling(luma: torch.Tensor, res_y: torch.Tensor, res_cb: torch.Tensor) -> torch.Tensor:
    """The ``resampling`` group (see the module docstring)."""
    periods = [_period_profile(luma, period, dim) for dim in (2, 1) for period in (2, 4)]

    energies, current = [], luma
    for _ in range(PYRAMID_LEVELS):
        low = _blur3(current[:, None])[:, 0]
        energies.append(torch.log((current - low).square().mean(dim=(1, 2)) + _EPS))
        current = low[:, ::2, ::2]
    energies = torch.stack(energies, dim=1)

    # Noise level per brightness bin (local means and variances over 5x5 windows).
    local_mean = F.avg_pool2d(luma[:, None], 5, 1, 2, count_include_pad=False)[:, 0]
    local_var = F.avg_pool2d(res_y[:, None].square(), 5, 1, 2, count_include_pad=False)[:, 0]
    bins = (local_mean / 256 * NLF_BINS).long().clamp(0, NLF_BINS - 1).flatten(1)
    sums = torch.zeros(luma.shape[0], NLF_BINS, device=luma.device).scatter_add_(
        1, bins, local_var.flatten(1)
    )
    counts = torch.zeros_like(sums).scatter_add_(
        1, bins, torch.ones_like(sums[:, :1]).expand_as(local_var.flatten(1))
    )
    # log1p: a noiseless bin reads 0 whatever its brightness; sparse bins say nothing.
    noise_level = torch.where(
        counts > 50, torch.log1p(sums / counts.clamp(min=1) / 1e-2), torch.zeros_like(sums)
    )

    chroma_energy = torch.log(res_cb.square().mean(dim=(1, 2)) + _EPS) - energies[:, 0]
    return torch.cat(
        [
            *periods,
            energies,
            energies.diff(dim=1),
            noise_level,
            _autocorrelation(res_y),
            _autocorrelation(res_cb)[:, :4],
            chroma_energy[:, None],
        ],
        dim=1,
    )
