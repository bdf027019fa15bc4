"""Typed parameters of feature extraction (``params:feature_extraction``).

Build them with ``ExtractionConfig.model_validate(params)`` so that a bad value or a typo'd
key fails before the run starts, with the offending field named in the error.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ExtractionConfig(BaseModel):
    """How images are decoded, batched and run through a backbone, and how the cache is sharded.

    Attributes:
        batch_size: Images per forward pass.
        num_workers: DataLoader processes that read and decode images (0: in the main process).
        device: ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``.
        precision: ``auto`` (bf16 where the hardware runs it natively, else fp32), ``fp32``,
            ``bf16`` or ``fp16`` (CUDA only).
        channels_last: Run the model and its inputs in NHWC memory format (faster convolutions
            on tensor cores and oneDNN).
        compile: ``torch.compile`` the extractor: ``true`` (every backbone), ``false``, or the
            backbone kinds to compile (e.g. ``[resnet]``: where it pays on this hardware). A
            backbone is compiled once per process (later passes over the same identity, e.g.
            validation after extraction, reuse it) and the last, smaller batch is padded so
            it never recompiles. Falls back to eager with a logged warning.
        compile_min_images: Compile only for a pass over at least this many images: below
            that the compilation (tens of seconds on a CPU) costs more than it saves.
        shard_index: Which slice of the content hashes this run extracts (fan-out).
        num_shards: Into how many slices the content hashes are split.
        rows_per_shard: Rows per cache shard file; also the size of the write buffer.
        progress: Show a tqdm progress bar.
    """

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(32, ge=1)
    num_workers: int = Field(2, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: bool = True
    compile: bool | list[str] = False
    compile_min_images: int = Field(512, ge=0)
    shard_index: int = Field(0, ge=0)
    num_shards: int = Field(1, ge=1)
    rows_per_shard: int = Field(2048, ge=1)
    progress: bool = True

    def compiles(self, kind: str, n_images: int) -> bool:
        """Whether a pass of ``n_images`` through a backbone of ``kind`` is compiled."""
        wanted = self.compile if isinstance(self.compile, bool) else kind in self.compile
        return wanted and n_images >= self.compile_min_images

    @model_validator(mode="after")
    def _shard_index_in_range(self) -> ExtractionConfig:
        if not self.shard_index < self.num_shards:
            raise ValueError(
                f"shard_index={self.shard_index} is out of range for num_shards="
                f"{self.num_shards}; fan-out workers use shard_index 0..{self.num_shards - 1}"
            )
        return self
