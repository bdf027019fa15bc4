"""Choose the device and the autocast dtype of a run, and say why in the log."""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class CudaUnavailableError(RuntimeError, ValueError):
    """CUDA was asked for on a machine without it.

    A ``RuntimeError`` (the machine, not the value, is at fault) that is also a ``ValueError``,
    which training raised for it before the two resolvers became one.
    """


def resolve_device(name: str, key: str = "feature_extraction.device") -> torch.device:
    """Turn a ``device`` parameter into a torch device.

    Args:
        name: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
        key: The parameter the name comes from, named in logs and errors
            (e.g. ``ensemble_training.device``).

    Returns:
        The device to run the model on.

    Raises:
        ValueError: if the name is not one of the allowed values.
        CudaUnavailableError: if CUDA is requested but not available.
    """
    if name == "auto":
        if torch.cuda.is_available():
            device = torch.device("cuda")
            logger.info("%s=auto: using %s (%s)", key, device, torch.cuda.get_device_name(device))
        else:
            device = torch.device("cpu")
            logger.warning(
                "%s=auto: no CUDA GPU is available (torch.cuda.is_available() is False); "
                "falling back to CPU, which is much slower for large backbones",
                key,
            )
        return device
    if name == "cpu":
        logger.info("%s=cpu: using the CPU as configured", key)
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise CudaUnavailableError(
                f"{key}={name!r} was requested but CUDA is not available (no CUDA GPU; torch "
                f"{torch.__version__}, CUDA build {torch.version.cuda}); set {key} to 'auto' or "
                "'cpu', or run on a machine with a GPU and a CUDA build of torch"
            )
        device = torch.device(name)
        logger.info("%s=%s: using %s", key, name, torch.cuda.get_device_name(device))
        return device
    raise ValueError(f"{key}={name!r} is not supported; {key} must be one of 'auto', 'cpu', 'cuda'")


def cpu_native_bf16() -> tuple[bool, str]:
    """Whether this CPU runs bf16 natively (AMX or AVX512-BF16), and what was detected."""
    capability = torch.backends.cpu.get_cpu_capability()
    checks = {
        "AMX": getattr(torch.cpu, "_is_amx_tile_supported", None),
        "AVX512-BF16": getattr(torch.cpu, "_is_avx512_bf16_supported", None),
    }
    found = [name for name, check in checks.items() if check is not None and check()]
    if found:
        return True, f"CPU capability {capability} with {' and '.join(found)}"
    return False, f"CPU capability {capability}, no AMX or AVX512-BF16"


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """Turn the ``precision`` parameter into an autocast dtype for a device.

    Args:
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        device: The device the model runs on.

    Returns:
        ``torch.bfloat16`` or ``torch.float16`` to run under autocast, or ``None`` for plain
        fp32 without autocast.

    Raises:
        ValueError: for an unknown precision, fp16 off CUDA, or bf16 on a GPU without it.
    """
    if precision not in PRECISIONS:
        raise ValueError(
            f"precision={precision!r} is not supported; feature_extraction.precision must be "
            f"one of {', '.join(map(repr, PRECISIONS))}"
        )
    on_cuda = device.type == "cuda"
    if precision == "fp32":
        logger.info("precision=fp32 on %s: no autocast", device)
        return None
    if precision == "fp16":
        if not on_cuda:
            raise ValueError(
                f"precision='fp16' is only supported on CUDA, but the device is {device}; set "
                "feature_extraction.precision to 'auto', 'bf16' or 'fp32'"
            )
        logger.info("precision=fp16 on %s: autocast to float16", device)
        return torch.float16
    if precision == "bf16":
        if on_cuda and not torch.cuda.is_bf16_supported():
            raise ValueError(
                f"precision='bf16' was requested but {torch.cuda.get_device_name(device)} has no "
                "bf16 support; set feature_extraction.precision to 'fp16', 'fp32' or 'auto'"
            )
        if device.type == "cpu":
            native, why = cpu_native_bf16()
            if not native:
                logger.warning(
                    "precision=bf16 on a CPU without native bf16 (%s): it is emulated and "
                    "likely slower than fp32",
                    why,
                )
        logger.info("precision=bf16 on %s: autocast to bfloat16", device)
        return torch.bfloat16
    # auto
    if on_cuda:
        if torch.cuda.is_bf16_supported():
            logger.info("precision=auto on %s: bf16 (the GPU supports it)", device)
            return torch.bfloat16
        logger.warning(
            "precision=auto on %s: the GPU has no bf16 support, falling back to fp32 "
            "(set precision: fp16 to trade accuracy for speed)",
            device,
        )
        return None
    if device.type == "cpu":
        native, why = cpu_native_bf16()
        if native:
            logger.info("precision=auto on cpu: bf16 (%s)", why)
            return torch.bfloat16
        logger.info("precision=auto on cpu: fp32 (%s; bf16 would be emulated)", why)
        return None
    logger.info("precision=auto on %s: fp32", device)
    return None


def precision_name(dtype: torch.dtype | None) -> str:
    """``fp32``, ``bf16`` or ``fp16`` for a resolved autocast dtype."""
    if dtype is None:
        return "fp32"
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
