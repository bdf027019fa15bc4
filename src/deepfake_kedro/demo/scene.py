"""Procedural "camera photos" of faces: the real images of the demo dataset.

A scene is built in linear light (1/f^alpha background, a few objects, a shaded face with
hair, eyes, brows, nose and mouth) and captured by a simple camera model: illumination
gradient and vignetting, optical blur, Poisson-Gaussian sensor noise, gamma, 8-bit
quantisation and one JPEG compression at camera quality. Face landmarks are returned so the
manipulations can build face masks.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from PIL import Image
from scipy import ndimage

# Linear-light skin albedo per group_a (light, medium, dark); the groups differ in face tone.
SKIN_ALBEDO = {"a0": (0.62, 0.45, 0.36), "a1": (0.45, 0.30, 0.21), "a2": (0.24, 0.15, 0.10)}
# group_b: illumination level, colour (RGB gains) and sensor full-well (photons at white).
# b1 is a dimmer, warmer indoor scene shot at a higher ISO, so it is also noisier.
ILLUMINATION = {"b0": (1.0, (1.0, 1.0, 1.03), 1500.0), "b1": (0.82, (1.08, 1.0, 0.86), 550.0)}
HAIR = ((0.04, 0.03, 0.025), (0.18, 0.10, 0.05), (0.45, 0.33, 0.18), (0.4, 0.4, 0.4),
        (0.35, 0.12, 0.05))
IRIS = ((0.20, 0.10, 0.04), (0.12, 0.22, 0.35), (0.15, 0.25, 0.12), (0.05, 0.04, 0.03))
# Camera JPEG: quality range and chroma subsampling (PIL: 0=4:4:4, 1=4:2:2, 2=4:2:0).
CAMERA_QUALITY = (88, 97)
SUBSAMPLING, SUBSAMPLING_P = (0, 1, 2), (0.2, 0.3, 0.5)


@dataclass(frozen=True)
class Photo:
    """A rendered real photo.

    Attributes:
        raw: uint8 HxWx3 camera output before its JPEG stage (what face manipulations start
            from, so that fakes carry one JPEG like reals).
        image: uint8 HxWx3 stored photo, after the camera JPEG.
        quality: JPEG quality the camera used.
        landmarks: (N, 2) float x, y pixels: jaw (17), brows (10), eyes (12), nose (5), mouth (8).
    """

    raw: np.ndarray
    image: np.ndarray
    quality: int
    landmarks: np.ndarray


def fractal_noise(
    rng: np.random.Generator, size: int, alpha: float, channels: int = 1
) -> np.ndarray:
    """Zero-mean, unit-std noise with power spectrum ~ 1/f^alpha, shape (channels, size, size)."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    freq = np.hypot(fx, fy)
    freq[0, 0] = np.inf
    shape = (channels, size, size // 2 + 1)
    spec = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * freq ** (-alpha / 2)
    field = np.fft.irfft2(spec, s=(size, size), axes=(-2, -1))
    field -= field.mean(axis=(-2, -1), keepdims=True)
    return (field / field.std(axis=(-2, -1), keepdims=True)).astype(np.float32)


def jpeg(image: np.ndarray, quality: int, subsampling: int = 2) -> np.ndarray:
    """Compress a uint8 RGB array to JPEG in memory and decode it again."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=int(quality), subsampling=subsampling)
    buf.seek(0)
    with Image.open(buf) as decoded:
        return np.asarray(decoded.convert("RGB"))


def camera_jpeg(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, int]:
    """The camera's single JPEG stage at a random camera quality; returns (pixels, quality)."""
    quality = int(rng.integers(CAMERA_QUALITY[0], CAMERA_QUALITY[1] + 1))
    return jpeg(image, quality, int(rng.choice(SUBSAMPLING, p=SUBSAMPLING_P))), quality


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float [0, 1] image to uint8 with rounding."""
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def render_photo(seed: int, group_a: str, group_b: str, size: int) -> Photo:
    """Render one real photo; deterministic for its arguments.

    Args:
        seed: Row seed.
        group_a: Skin-tone group (a0, a1, a2).
        group_b: Illumination/noise group (b0, b1).
        size: Side of the square image in pixels.

    Returns:
        The photo before and after the camera JPEG, with its face landmarks.
    """
    scene_rng, camera_rng = (np.random.default_rng([seed, stream]) for stream in (1, 2))
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    azimuth = scene_rng.uniform(0, 2 * np.pi)
    elevation = scene_rng.uniform(0.45, 1.1)
    light = np.array([np.cos(azimuth) * np.cos(elevation), np.sin(azimuth) * np.cos(elevation),
                      np.sin(elevation)], dtype=np.float32)
    scene = _background(scene_rng, size, x, y)
    landmarks = _draw_person(scene_rng, scene, size, group_a, x, y, light)
    raw = _capture(camera_rng, scene, group_b, light, size, x, y)
    image, quality = camera_jpeg(camera_rng, raw)
    return Photo(raw=raw, image=image, quality=quality, landmarks=landmarks)


Window = tuple[slice, slice]
FULL: Window = (slice(None), slice(None))


def _step(distance: np.ndarray) -> np.ndarray:
    """Anti-aliased (1 px) indicator of distance > 0."""
    return np.clip(distance + 0.5, 0.0, 1.0)


def _paint(canvas: np.ndarray, window: Window, mask: np.ndarray, colour: ArrayLike,
           alpha: float = 1.0, shade: np.ndarray | None = None) -> None:
    """Alpha-blend `colour` into canvas[window], in place.

    `colour` is RGB, or an image the size of the canvas or of the window. `shade`, a
    canvas-sized 2-D array, multiplies the colour (lighting on the face).
    """
    colour = np.asarray(colour, dtype=np.float32)
    if colour.ndim == 3 and colour.shape[:2] == canvas.shape[:2]:
        colour = colour[window]
    if shade is not None:
        colour = colour * shade[window][..., None]
    m = (mask * alpha)[..., None]
    canvas[window] = canvas[window] * (1 - m) + colour * m


def _random_colour(rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    colour = rng.uniform(lo, hi, 3)
    mean = colour.mean()
    return (mean + (colour - mean) * rng.uniform(0.2, 1.0)).astype(np.float32)


def _background(rng: np.random.Generator, size: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    fields = fractal_noise(rng, size, rng.uniform(1.8, 2.2), channels=4)
    tex = fields[0]
    img = _random_colour(rng, 0.08, 0.6) * (1 + 0.3 * tex)[..., None]
    img += 0.02 * np.moveaxis(fields[1:], 0, -1)
    if rng.random() < 0.6:  # a floor, table or horizon edge
        y0, slope = size * rng.uniform(0.55, 0.9), rng.uniform(-0.2, 0.2)
        region = _step(y - (y0 + slope * (x - size / 2)))
        texture = 1 + 0.3 * np.roll(tex, size // 3, axis=0)
        _paint(img, FULL, region, _random_colour(rng, 0.05, 0.6) * texture[..., None])
    for _ in range(int(rng.integers(0, 4))):  # frames, windows, doors
        x0, x1 = np.sort(rng.uniform(-0.1, 1.1, 2) * size)
        y0, y1 = np.sort(rng.uniform(-0.1, 1.1, 2) * size)
        region = _step(x - x0) * _step(x1 - x) * _step(y - y0) * _step(y1 - y)
        texture = 1 + rng.uniform(0.05, 0.3) * np.roll(tex, tuple(rng.integers(0, size, 2)), (0, 1))
        _paint(img, FULL, region, _random_colour(rng, 0.05, 0.7) * texture[..., None])
    if rng.random() < 0.35:  # shallow depth of field: the background is out of focus
        sigma = rng.uniform(0.5, 2.0) * size / 256
        img = ndimage.gaussian_filter(img, (sigma, sigma, 0))
    return np.clip(img, 0.0, None)


class _FaceFrame:
    """Coordinates in the face's frame: u across (units of a), v down (units of b), rolled."""

    def __init__(self, cx: float, cy: float, a: float, b: float, roll: float,
                 x: np.ndarray, y: np.ndarray) -> None:
        self.cx, self.cy, self.a, self.b, self.size = cx, cy, a, b, x.shape[0]
        self.cos, self.sin = np.cos(roll), np.sin(roll)
        dx, dy = x - cx, y - cy
        self.u = (dx * self.cos + dy * self.sin) / a
        self.v = (-dx * self.sin + dy * self.cos) / b

    def to_pixels(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        px, py = np.asarray(u) * self.a, np.asarray(v) * self.b
        return np.stack([self.cx + px * self.cos - py * self.sin,
                         self.cy + px * self.sin + py * self.cos], axis=-1)

    def window(self, u0: float, v0: float, ru: float, rv: float) -> Window:
        """Pixel bounding box of an ellipse (any tilt), clipped to the image."""
        (x0, y0), r = self.to_pixels(u0, v0), max(ru * self.a, rv * self.b) + 2

        def span(c: float) -> slice:
            return slice(int(np.clip(c - r, 0, self.size)), int(np.clip(c + r + 2, 0, self.size)))

        return span(y0), span(x0)

    def ellipse(self, u0: float, v0: float, ru: float, rv: float, tilt: float = 0.0,
                window: Window | None = None) -> np.ndarray:
        """Soft mask of an ellipse centred at (u0, v0) with radii (ru, rv) in face units."""
        window = window or self.window(u0, v0, ru, rv)
        pu, pv = (self.u[window] - u0) * self.a, (self.v[window] - v0) * self.b
        if tilt:
            pu, pv = pu * np.cos(tilt) + pv * np.sin(tilt), -pu * np.sin(tilt) + pv * np.cos(tilt)
        r = np.hypot(pu / (ru * self.a), pv / (rv * self.b))
        return np.clip((1 - r) * min(ru * self.a, rv * self.b) + 0.5, 0.0, 1.0)

    def blob(self, u0: float, v0: float, ru: float, rv: float,
             tilt: float = 0.0) -> tuple[Window, np.ndarray]:
        """(window, mask) of an ellipse, for `_paint`."""
        window = self.window(u0, v0, ru, rv)
        return window, self.ellipse(u0, v0, ru, rv, tilt, window)


def _draw_person(rng: np.random.Generator, img: np.ndarray, size: int, group_a: str,
                 x: np.ndarray, y: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Paint a head and shoulders into `img` (in place); return the face landmarks."""
    a = size * rng.uniform(0.15, 0.23)
    b = a * rng.uniform(1.2, 1.4)
    cx, cy = size * (0.5 + rng.uniform(-0.1, 0.1)), size * (0.47 + rng.uniform(-0.07, 0.07))
    yaw = rng.uniform(-0.12, 0.12)  # shifts the features sideways, as a turned head does
    f = _FaceFrame(cx, cy, a, b, rng.uniform(-0.25, 0.25), x, y)
    tex = fractal_noise(rng, size, 2.6, channels=2)
    skin = np.asarray(SKIN_ALBEDO[group_a]) * rng.uniform(0.88, 1.12) * rng.uniform(0.95, 1.05, 3)
    hair = np.asarray(HAIR[rng.integers(len(HAIR))]) * rng.uniform(0.8, 1.2)
    strands = ndimage.gaussian_filter(rng.standard_normal((size, size)), (size * 0.02, 0.6))
    hair_tex = hair * (1 + 0.3 * strands / (strands.std() + 1e-6) + 0.2 * tex[1])[..., None]

    # Body and neck, then hair behind the head.
    body = _step((1 - np.hypot((x - cx) / (2.4 * a), (y - cy - 2.3 * b) / (1.3 * b))) * a)
    _paint(img, FULL, body, _random_colour(rng, 0.04, 0.6) * (1 + 0.25 * tex[1])[..., None])
    neck = _step(0.45 * a - np.abs(x - cx)) * _step(y - cy)
    _paint(img, FULL, neck, skin * 0.65 * (1 + 0.04 * tex[0])[..., None])
    has_hair = rng.random() < 0.9
    hair_r = (1.12 + rng.uniform(0, 0.12), 1.05 + rng.uniform(0, 0.1))
    head = f.window(0, -0.12, *hair_r)
    if has_hair:
        _paint(img, head, f.ellipse(0, -0.12, *hair_r, window=head), hair_tex)

    # Face: Lambertian shading of an ellipsoid lit from `light`, plus a small specular lobe.
    u, v = f.u[head], f.v[head]
    nz = np.sqrt(np.clip(1 - u**2 - v**2, 0.02, 1))
    nx, ny = u * f.cos - v * f.sin, u * f.sin + v * f.cos
    norm = np.sqrt(nx**2 + ny**2 + nz**2)
    shade = np.zeros((size, size), np.float32)
    shade[head] = 0.3 + 0.8 * np.clip((nx * light[0] + ny * light[1] + nz * light[2]) / norm, 0, 1)
    half = (light + [0, 0, 1]) / np.linalg.norm(light + [0, 0, 1])
    spec = 0.05 * np.clip((nx * half[0] + ny * half[1] + nz * half[2]) / norm, 0, 1) ** 25
    pores = ndimage.gaussian_filter(rng.standard_normal(u.shape), 0.7)
    albedo = skin * (1 + 0.05 * tex[0][head] + 0.15 * pores)[..., None]
    for side in (-1, 1):  # cheeks are a little redder
        cheek = f.ellipse(side * 0.45 + yaw, 0.25, 0.3, 0.2, window=head)
        albedo += np.array([0.05, -0.01, -0.01]) * cheek[..., None]
    colour = albedo * shade[head][..., None] + spec[..., None]
    _paint(img, head, f.ellipse(0, 0, 1, 1, window=head), colour)

    eye_v, iris = -0.08 + rng.uniform(-0.04, 0.04), IRIS[rng.integers(len(IRIS))]
    eye_w, gaze = rng.uniform(0.14, 0.19), rng.uniform(-0.04, 0.04)
    points = []
    for side in (-1, 1):
        eu = side * 0.36 + yaw
        eye = f.window(eu, eye_v, eye_w * 1.1, 0.1)
        sclera = f.ellipse(eu, eye_v, eye_w, 0.075, window=eye)
        _paint(img, eye, sclera, [0.72, 0.69, 0.65], shade=shade)
        iris_r = 0.42 * eye_w
        disc = f.ellipse(eu + gaze, eye_v, iris_r, iris_r * a / b, window=eye)
        _paint(img, eye, sclera * disc, iris, shade=shade)
        pupil = f.ellipse(eu + gaze, eye_v, 0.4 * iris_r, 0.4 * iris_r * a / b, window=eye)
        _paint(img, eye, sclera * pupil, [0.01] * 3)
        lid = f.ellipse(eu, eye_v - 0.01, eye_w * 1.1, 0.09, window=eye)
        lid *= 1 - f.ellipse(eu, eye_v + 0.02, eye_w * 1.1, 0.09, window=eye)
        _paint(img, eye, lid, skin * 0.3, alpha=0.8, shade=shade)
        brow_v = eye_v - rng.uniform(0.17, 0.24)
        brow = f.blob(eu, brow_v, eye_w * 1.25, 0.035, tilt=-side * 0.12)
        _paint(img, *brow, hair * 0.8, alpha=0.85)
        t = np.linspace(0, 2 * np.pi, 6, endpoint=False)
        points += [f.to_pixels(eu + eye_w * np.cos(t), eye_v + 0.075 * np.sin(t)),
                   f.to_pixels(eu + np.linspace(-1.25, 1.25, 5) * eye_w, np.full(5, brow_v - 0.03))]

    # Nose: a shadow on the side away from the light and two nostrils.
    nose_u = yaw * 1.3
    nose_shadow = f.blob(nose_u - 0.04 * np.sign(light[0] + 1e-6), 0.13, 0.05, 0.18)
    _paint(img, *nose_shadow, skin * 0.7, alpha=0.5, shade=shade)
    for side in (-1, 1):
        _paint(img, *f.blob(nose_u + side * 0.07, 0.3, 0.035, 0.02), skin * 0.25, alpha=0.8)
    points.append(f.to_pixels(np.full(5, nose_u), np.linspace(-0.05, 0.3, 5)))

    mouth_u, mouth_v = yaw, 0.52 + rng.uniform(-0.04, 0.04)
    mouth_w, mouth_h = rng.uniform(0.22, 0.32), rng.uniform(0.05, 0.09)
    _paint(img, *f.blob(mouth_u, mouth_v, mouth_w, mouth_h), skin * [1.05, 0.55, 0.55], shade=shade)
    _paint(img, *f.blob(mouth_u, mouth_v, mouth_w * 0.9, 0.012), [0.05, 0.02, 0.02], alpha=0.9)
    t = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    points.append(f.to_pixels(mouth_u + mouth_w * np.cos(t), mouth_v + mouth_h * np.sin(t)))

    if has_hair:  # fringe over the forehead
        hairline = -0.5 + rng.uniform(-0.1, 0.1) + 0.3 * u**2
        fringe = f.ellipse(0, -0.12, *hair_r, window=head) * _step((hairline - v) * b)
        _paint(img, head, fringe, hair_tex)
    jaw = np.linspace(-0.15, np.pi + 0.15, 17)
    points.insert(0, f.to_pixels(0.97 * np.cos(jaw), 0.97 * np.sin(jaw)))
    return np.concatenate(points).astype(np.float32)


def _capture(rng: np.random.Generator, scene: np.ndarray, group_b: str, light: np.ndarray,
             size: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    level, tint, full_well = ILLUMINATION[group_b]
    level *= rng.uniform(0.85, 1.15)
    tint = np.asarray(tint, dtype=np.float32) * rng.uniform(0.96, 1.04, 3).astype(np.float32)
    xn, yn = 2 * x / size - 1, 2 * y / size - 1
    # Light falls off away from the light source; the lens darkens the corners.
    direction = light[:2] / (np.linalg.norm(light[:2]) + 1e-6)
    gradient = 1 + rng.uniform(0.05, 0.25) * (xn * direction[0] + yn * direction[1])
    vignette = 1 - rng.uniform(0.1, 0.35) * (xn**2 + yn**2) / 2
    linear = scene * (level * gradient * vignette)[..., None] * tint
    sigma = rng.uniform(0.3, 0.8)
    linear = ndimage.gaussian_filter(linear, (sigma, sigma, 0))
    photons = full_well * rng.uniform(0.6, 1.6)
    noisy = rng.poisson(np.clip(linear, 0, None) * photons) / photons
    noisy = noisy + rng.normal(0, rng.uniform(0.002, 0.006), noisy.shape)
    return to_uint8(np.clip(noisy, 0, 1) ** (1 / rng.uniform(2.0, 2.4)))
