"""Weight-free forensic features ("v1"): spectrum, periodic peaks, JPEG grid, noise residual.

Each group targets one kind of fake in the data (see ``deepfake_kedro.demo.manipulations``):

- ``radial_spectrum``: azimuthally averaged log power spectrum of the grey high-pass
  residual, mean-removed (Durall et al. 2020, "Watch your up-convolution"): up-sampling
  layers bend the high-frequency tail.
- ``periodic_peaks``: log ratio of the energy at N/2 and N/4 (x, y, both diagonals) to the
  median of its neighbourhood, in the residual's spectrum and in the spectrum of the
  first-difference magnitude. Zero insertion and transposed convolutions leave peaks in the
  former; nearest up-sampling cancels the N/2 bin there but makes first differences
  vanish at every other pixel, a peak in the latter.
- ``blockiness``: mean absolute luma difference across columns (rows) at each of the 8
  phases of an 8x8 grid relative to all phases, sorted (so a shifted or second grid is
  seen wherever it lies) plus the phase aligned with the crop's grid.
- ``dct_periodicity``: on the crop's own 8x8 grid and on the grid found by the
  blockiness, the magnitude of the characteristic function of ten low-frequency AC DCT
  coefficients at periods 2..16, i.e. the Fourier magnitudes of each coefficient
  histogram. Quantisation with step q puts the coefficients on multiples of q (peaks at
  every divisor of q), so a last compression coarser than a camera's shows at its step;
  a second quantisation leaves the periodic gaps and peaks of double quantisation.
- ``noise``: per RGB channel log std and log kurtosis of the residual; log std of the luma
  and chroma residuals over 16x16 blocks summarised by quantiles and max/median (a blended
  face has other noise and sharpness than its frame); and a per-image fit of block noise on
  brightness and texture (camera noise depends on the signal, pasted texture does not):
  slopes and quantiles of the misfit.
- ``centre_surround``: for face-centred crops, mean block noise (luma, Cb, Cr) and
  sharpness (residual against edge strength) of the centre, the ring where a blending mask
  fades and the surround, as three contrasts (centre-surround, ring-surround, ring-centre).
  Self-blending changes the inner face only, so it stops matching its frame.
- ``face_contrast``: mean colour (Cb, Cr), brightness, noise, Laplacian and band-pass energy
  and sharpness of a central face ellipse against a ring around it, with their spread. A
  self-blended face carries a colour, brightness and sharpness shift the frame does not.
- ``face_reference``: the face judged against references inside the same photo. Skin is
  segmented by log-chromaticity (log R/G, log B/G: independent of brightness, shading and
  gamma) close to the median of a central face box; the neck (skin at the bottom of the
  crop) has the face's albedo but lies outside any face-swap or blending mask. Features: face
  box minus neck chromaticity (a self-blended face is colour-jittered, its neck is not),
  chromaticity spread of both, their brightness ratio; and three brightness-normalised
  high-pass maps (log1p of |residual| over local brightness at scales 1, 1-2 and 2-4 px: the
  skin texture a blur or sharpening jitter changes) averaged over the face box, the skin of
  the face rows, the neck, the top of the crop and the whole crop, with their differences.
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

import numpy as np
import torch
import torch.nn.functional as F

FEATURE_VERSION = 3
"""Bump whenever a change here would change the features (invalidates the feature cache)."""

RADIAL_BINS = 64
PEAK_POSITIONS = ("x/2", "y/2", "diag/2", "x/4", "y/4", "diag/4", "antidiag/4")
# Low-frequency AC modes (row, col): the ones JPEG quantises most finely, so their
# quantisation step tells the quality of the last compression.
DCT_MODES = ((0, 1), (1, 0), (1, 1), (0, 2), (2, 0), (2, 1), (1, 2), (2, 2), (0, 3), (3, 0))
DCT_PERIODS = tuple(range(2, 17))
AUTOCORR_LAGS = ((0, 1), (1, 0), (1, 1), (1, -1), (0, 2), (2, 0), (2, 2), (0, 3), (3, 0), (0, 4), (4, 0))
PYRAMID_LEVELS = 4
NLF_BINS = 6
NOISE_BLOCK = 16
MIN_SIDE = 32
# Radii (fraction of the side, from the centre) splitting blocks into face centre, blend
# ring and surround, for face-centred crops: the demo's faces sit at 0.5 +- 0.1 with a
# half-width of 0.15-0.23 of the side, as in usual face-forensics crops.
REGION_RADII = (0.18, 0.32)

FEATURE_GROUPS: dict[str, int] = {
    "radial_spectrum": RADIAL_BINS,
    "periodic_peaks": 2 * len(PEAK_POSITIONS),
    "blockiness": 2 * (8 + 1),
    # on the crop's own 8x8 grid and on the grid with the strongest blocking, + max over modes
    "dct_periodicity": 2 * (len(DCT_MODES) + 1) * len(DCT_PERIODS),
    "noise": 3 * 2 + 3 * 4 + 5,
    "centre_surround": 3 * 4,
    "face_contrast": 7 * 3,
    "face_reference": 3 + 2 * 2 + 1 + 5 * 3 + 4 * 3 + 2 + 2,
    "resampling": 2 * (2 + 4) + PYRAMID_LEVELS + (PYRAMID_LEVELS - 1) + NLF_BINS
    + (len(AUTOCORR_LAGS) + 2) + 4 + 1,
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
        groups = [
            _radial_spectrum(res_y),
            _periodic_peaks(res_y, luma),
            *_jpeg_grid(luma),
            *_noise_statistics(planes, residual),
            *_face_groups(rgb, ycc, res_y),
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


def _block_log_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log std and mean of [B, C, H, W] over non-overlapping 16x16 blocks -> [B, C, n]."""
    b, c, h, w = x.shape
    s = NOISE_BLOCK
    hb, wb = h // s, w // s
    blocks = x[:, :, : hb * s, : wb * s].reshape(b, c, hb, s, wb, s).permute(0, 1, 2, 4, 3, 5)
    blocks = blocks.reshape(b, c, hb * wb, s * s)
    std, mean = torch.std_mean(blocks, dim=3, correction=0)
    return torch.log(std + 1e-3), mean


def _noise_statistics(
    planes: torch.Tensor, residual: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``noise`` and ``centre_surround`` groups."""
    res_rgb = residual[:, :3].flatten(2)
    m2 = res_rgb.square().mean(dim=2)
    m4 = res_rgb.square().square().mean(dim=2)
    log_std = 0.5 * torch.log(m2 + _EPS)
    log_kurtosis = torch.log((m4 + _EPS) / (m2.square() + _EPS))

    # Local noise level of luma, Cb, Cr residuals.
    block_log_std, _ = _block_log_std(residual[:, 3:])  # [B, 3, n]
    q = torch.tensor([0.1, 0.5, 0.9], device=planes.device)
    quantiles = torch.quantile(block_log_std, q, dim=2).permute(1, 2, 0)  # [B, 3, 3]
    spread = block_log_std.amax(dim=2) - quantiles[..., 1]  # log(max / median)
    local = torch.cat([quantiles, spread[..., None]], dim=2).flatten(1)

    # Ridge fit of block noise on brightness and texture, per image. Centred, so an image
    # without variation gets zero slopes whatever its brightness.
    noise = block_log_std[:, 0]
    low = planes[:, 3:4] - residual[:, 3:4]
    texture, brightness = _block_log_std(low)
    design = torch.stack([brightness[:, 0] / 255.0, texture[:, 0]], dim=2)  # [B, n, 2]
    design = design - design.mean(dim=1, keepdim=True)
    target = (noise - noise.mean(dim=1, keepdim=True))[..., None]
    gram = design.transpose(1, 2) @ design
    ridge = 1e-3 * design.shape[1] * torch.eye(2, device=planes.device)
    coef = torch.linalg.solve(gram + ridge, design.transpose(1, 2) @ target)  # [B, 2, 1]
    misfit = (target - design @ coef)[..., 0].abs()
    misfit_q = torch.quantile(misfit, torch.tensor([0.5, 0.9], device=planes.device), dim=1).T
    fit = torch.cat([coef[..., 0], misfit_q, misfit.amax(dim=1, keepdim=True)], dim=1)

    # Sharpness: residual noise against the edge strength of the low-pass image.
    edges = F.pad((low[..., 1:] - low[..., :-1]).abs(), (0, 1)) + F.pad(
        (low[..., 1:, :] - low[..., :-1, :]).abs(), (0, 0, 0, 1)
    )
    edge_log_std, _ = _block_log_std(edges)
    maps = torch.cat([block_log_std, block_log_std[:, :1] - edge_log_std], dim=1)  # [B, 4, n]
    h, w = planes.shape[-2:]
    regions = _region_weights(h // NOISE_BLOCK, w // NOISE_BLOCK, planes.device)  # [3, n]
    centre, ring, surround = (maps @ regions.T).unbind(dim=2)  # each [B, 4]
    contrasts = torch.cat([centre - surround, ring - surround, ring - centre], dim=1)
    return torch.cat([log_std, log_kurtosis, local, fit], dim=1), contrasts


@functools.lru_cache(maxsize=16)
def _region_weights(hb: int, wb: int, device: torch.device) -> torch.Tensor:
    """[3, hb*wb] averaging weights of the centre, ring and surround blocks.

    A region without blocks (tiny images) averages all blocks, so its contrasts are 0.
    """
    yy, xx = np.meshgrid(
        (np.arange(hb) + 0.5) / hb - 0.5, (np.arange(wb) + 0.5) / wb - 0.5, indexing="ij"
    )
    radius = np.hypot(yy, xx).reshape(-1)
    inner, outer = REGION_RADII
    masks = np.stack(
        [radius < inner, (radius >= inner) & (radius < outer), radius >= outer]
    ).astype(np.float64)
    masks[masks.sum(1) == 0] = 1.0
    return torch.from_numpy((masks / masks.sum(1, keepdims=True)).astype(np.float32)).to(device)


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
    out.append((horizontal[:, :, 0::2].mean(dim=(1, 2)) - horizontal[:, :, 1::2].mean(dim=(1, 2))) / var)
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
    sums = torch.zeros(luma.shape[0], NLF_BINS, device=luma.device).scatter_add_(1, bins, local_var.flatten(1))
    counts = torch.zeros_like(sums).scatter_add_(1, bins, torch.ones_like(sums[:, :1]).expand_as(local_var.flatten(1)))
    # log1p: a noiseless bin reads 0 whatever its brightness; sparse bins say nothing.
    noise_level = torch.where(
        counts > 50, torch.log1p(sums / counts.clamp(min=1) / 1e-2), torch.zeros_like(sums)
    )

    chroma_energy = torch.log(res_cb.square().mean(dim=(1, 2)) + _EPS) - energies[:, 0]
    return torch.cat(
        [*periods, energies, energies.diff(dim=1), noise_level, _autocorrelation(res_y),
         _autocorrelation(res_cb)[:, :4], chroma_energy[:, None]],
        dim=1,
    )


FACE_ELLIPSE = (0.5, 0.5, 0.2, 0.26)  # centre x, y and radii x, y as fractions of the crop


@functools.lru_cache(maxsize=16)
def _face_masks(hb: int, wb: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Blocks inside the central face ellipse, and in a ring (1.2-2 radii) around it."""
    cx, cy, rx, ry = FACE_ELLIPSE
    yy, xx = np.meshgrid((np.arange(hb) + 0.5) / hb, (np.arange(wb) + 0.5) / wb, indexing="ij")
    radius = np.hypot((xx - cx) / rx, (yy - cy) / ry).reshape(-1)
    centre, ring = radius < 0.8, (radius > 1.2) & (radius < 2.0)
    if not centre.any() or not ring.any():  # tiny images: no contrast rather than NaN
        centre = ring = np.ones_like(radius, dtype=bool)
    return torch.from_numpy(centre).to(device), torch.from_numpy(ring).to(device)


def _face_groups(
    rgb: torch.Tensor, ycc: torch.Tensor, res_y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``face_contrast`` and ``face_reference`` groups, sharing their smoothed luma."""
    luma = ycc[:, 0]
    smooth = _blur3(_blur3(luma[:, None]))[:, 0]  # sigma 1
    wide = smooth[:, None]
    for _ in range(6):  # sigma 2
        wide = _blur3(wide)
    wide = wide[:, 0]
    return _face_contrast(ycc, res_y, smooth, wide), _face_reference(rgb, luma, res_y, smooth, wide)


def _face_contrast(
    ycc: torch.Tensor, res_y: torch.Tensor, smooth: torch.Tensor, wide: torch.Tensor
) -> torch.Tensor:
    """The ``face_contrast`` group (see the module docstring)."""
    luma = ycc[:, 0]
    laplacian = F.pad(luma[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    laplacian = (
        laplacian[:, :-2, 1:-1] + laplacian[:, 2:, 1:-1] + laplacian[:, 1:-1, :-2]
        + laplacian[:, 1:-1, 2:] - 4 * luma
    )
    cells = lambda x: F.avg_pool2d(x[:, None], NOISE_BLOCK)[:, 0].flatten(1)  # noqa: E731
    energies = {
        "noise": cells(res_y.square()).sqrt(),
        "laplacian": cells(laplacian.square()).sqrt(),
        "band": cells((smooth - wide).square()).sqrt(),
    }
    signed = {
        "cb": cells(ycc[:, 1]),
        "cr": cells(ycc[:, 2]),
        "luma": cells(luma),
        "sharpness": torch.log(energies["laplacian"] + 1e-3) - torch.log(energies["band"] + 1e-3),
    }
    h, w = luma.shape[-2:]
    centre, ring = _face_masks(h // NOISE_BLOCK, w // NOISE_BLOCK, luma.device)
    out = []
    for values in energies.values():
        c, r = values[:, centre], values[:, ring]
        out += [torch.log(c.mean(1) + 1e-3) - torch.log(r.mean(1) + 1e-3),
                torch.log(c.std(1, correction=0) + 1e-3), torch.log(c.mean(1) + 1e-3)]
    for values in signed.values():
        c, r = values[:, centre], values[:, ring]
        out += [c.mean(1) - r.mean(1), c.std(1, correction=0), r.std(1, correction=0)]
    return torch.stack(out, dim=1)


# Face box (rows, cols as fractions of the crop) inside every demo face whatever its position
# and size (see FACE_ELLIPSE), and the smaller box whose median colour defines skin.
FACE_BOX = ((0.42, 0.57), (0.45, 0.55))
SKIN_SEED_BOX = ((0.42, 0.52), (0.46, 0.54))
SKIN_TOLERANCE = 0.1  # max |log-chromaticity - face median| of a skin pixel
FACE_ROWS = (0.30, 0.62)  # rows where skin is the face
NECK_ROW = 0.85  # rows below this where skin is the neck
TOP_ROW = 0.15  # rows above this: background or hair
MIN_REGION_PIXELS = 20


def _box(h: int, w: int, rows: tuple[float, float], cols: tuple[float, float],
         device: torch.device) -> torch.Tensor:
    mask = torch.zeros(h, w, dtype=torch.bool, device=device)
    mask[round(rows[0] * h) : round(rows[1] * h), round(cols[0] * w) : round(cols[1] * w)] = True
    return mask


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of [B, C, H, W] over a [B, H, W] mask (each mask holds pixels) -> [B, C]."""
    m = mask[:, None].float()
    return (x * m).sum(dim=(2, 3)) / m.sum(dim=(2, 3)).clamp_min(1.0)


def _masked_log_std(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask[:, None].float()
    mean = _masked_mean(x, mask)[..., None, None]
    var = ((x - mean).square() * m).sum(dim=(2, 3)) / m.sum(dim=(2, 3)).clamp_min(1.0)
    return 0.5 * torch.log(var + _EPS)


def _masked_median(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask[:, None], x, torch.nan).flatten(2).nanmedian(dim=2).values


def _face_reference(
    rgb: torch.Tensor, luma: torch.Tensor, res_y: torch.Tensor, smooth: torch.Tensor,
    wide: torch.Tensor,
) -> torch.Tensor:
    """The ``face_reference`` group (see the module docstring)."""
    b, _, h, w = rgb.shape
    device = rgb.device
    log_rgb = torch.log(rgb + 4.0)  # +4: dark pixels' chromaticity is mostly noise
    chroma = torch.stack([log_rgb[:, 0] - log_rgb[:, 1], log_rgb[:, 2] - log_rgb[:, 1]], dim=1)
    # Texture relative to brightness (skin texture is multiplicative); 0 where flat, so a
    # flat image reads the same at any brightness.
    scale = 0.01 * (wide + 2.0)
    texture = torch.stack(
        [torch.log1p(res_y.abs() / scale), torch.log1p((luma - smooth).abs() / scale),
         torch.log1p((smooth - wide).abs() / scale)],
        dim=1,
    )  # [B, 3, H, W]

    seed = _box(h, w, *SKIN_SEED_BOX, device).expand(b, h, w)
    face_colour = _masked_median(chroma, seed)
    skin = ((chroma - face_colour[..., None, None]).abs().amax(dim=1) < SKIN_TOLERANCE).float()
    # Opening (separable 5x5 min then max): isolated skin-coloured pixels are not skin.
    for sign in (-1.0, 1.0):
        skin = sign * F.max_pool2d(sign * skin[:, None], (1, 5), 1, (0, 2))[:, 0]
        skin = sign * F.max_pool2d(sign * skin[:, None], (5, 1), 1, (2, 0))[:, 0]
    skin = skin > 0.5
    rows = torch.arange(h, device=device)[:, None].expand(h, w)
    box = _box(h, w, *FACE_BOX, device).expand(b, h, w)
    regions = {
        "box": box,
        "face": skin & (rows >= round(FACE_ROWS[0] * h)) & (rows < round(FACE_ROWS[1] * h)),
        "neck": skin & (rows >= round(NECK_ROW * h)),
        "top": (rows < max(1, round(TOP_ROW * h))).expand(b, h, w),
        "all": torch.ones(b, h, w, dtype=torch.bool, device=device),
    }
    fractions = torch.stack([regions["face"].float().mean(dim=(1, 2)),
                             regions["neck"].float().mean(dim=(1, 2))], dim=1)
    for name in ("face", "neck"):  # no skin found: fall back to the box, contrasts become 0
        empty = regions[name].sum(dim=(1, 2)) < MIN_REGION_PIXELS
        regions[name] = torch.where(empty[:, None, None], box, regions[name])

    neck_colour = _masked_median(chroma, regions["neck"])
    colour_shift = face_colour - neck_colour
    brightness = torch.log(_masked_mean(luma[:, None], box) + 1.0) - torch.log(
        _masked_mean(luma[:, None], regions["neck"]) + 1.0
    )
    level_of = {name: _masked_mean(texture, mask) for name, mask in regions.items()}
    return torch.cat(
        [
            colour_shift, colour_shift.abs().sum(dim=1, keepdim=True),
            _masked_log_std(chroma, box), _masked_log_std(chroma, regions["neck"]), brightness,
            *level_of.values(),
            level_of["box"] - level_of["neck"], level_of["face"] - level_of["neck"],
            level_of["box"] - level_of["all"], level_of["box"] - level_of["top"],
            level_of["box"][:, :2] - level_of["box"][:, 1:],
            fractions,
        ],
        dim=1,
    )
