"""Command line: ``python -m deepfake_kedro.demo --out data/01_raw --n-images 1000``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from deepfake_kedro.demo.generator import MANIPULATIONS, DemoConfig, write_demo_dataset

logger = logging.getLogger("deepfake_kedro.demo")


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the demo dataset; return the exit code (2 for bad settings or an existing manifest).

    Args:
        argv: Command-line arguments without the program name; defaults to `sys.argv[1:]`.
    """
    defaults = DemoConfig()
    parser = argparse.ArgumentParser(
        prog="python -m deepfake_kedro.demo",
        description="Write a deterministic synthetic real/fake image dataset (PNG + manifest.csv).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--out", type=Path, default=Path("data/01_raw"), help="output folder")
    add("--n-images", type=int, default=defaults.n_images, help="reals + fakes")
    add("--image-size", type=int, default=defaults.image_size, help="side in pixels")
    add("--seed", type=int, default=defaults.seed, help="dataset seed")
    add("--fake-fraction", type=float, default=defaults.fake_fraction, help="share of fakes")
    add("--manipulations", nargs="+", choices=MANIPULATIONS, default=list(MANIPULATIONS),
        help="fake methods")
    add("--force", action="store_true", help="overwrite an existing manifest.csv")
    add("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    try:
        config = DemoConfig(n_images=args.n_images, image_size=args.image_size, seed=args.seed,
                            fake_fraction=args.fake_fraction, manipulations=args.manipulations)
    except ValidationError as exc:
        logger.error("Invalid demo dataset settings:\n%s", exc)
        return 2
    manifest = args.out / "manifest.csv"
    if manifest.is_file() and manifest.stat().st_size > 0 and not args.force:
        logger.error("%s already exists; refusing to overwrite it. Pass --force to regenerate it "
                     "or choose another --out.", manifest)
        return 2
    write_demo_dataset(args.out, config, progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
