"""``kedro lake check``: is the data lake of an environment reachable and complete?"""

from __future__ import annotations

import logging
from typing import Any

import click

from deepfake_kedro.commands._project import ENV_OPTION, project_context

MANIFEST_ENTRY = "raw_manifest"
IMAGES_ENTRY = "raw_images"

logger = logging.getLogger(__name__)


def lake_config(catalog: dict[str, Any], credentials: dict[str, Any], env: str, sample: int) -> Any:
    """A :class:`~deepfake_kedro.lake.LakeConfig` from an environment's catalog and credentials.

    Raises:
        click.ClickException: if the catalog lacks the manifest or image entries, or names
            credentials that credentials.yml does not define.
    """
    from deepfake_kedro.lake import LakeConfig

    missing = [name for name in (MANIFEST_ENTRY, IMAGES_ENTRY) if name not in catalog]
    if missing:
        raise click.ClickException(
            f"the catalog of env '{env}' has no {' or '.join(missing)} entry; the lake check "
            "reads the manifest and image root from them"
        )
    manifest, images = catalog[MANIFEST_ENTRY], catalog[IMAGES_ENTRY]
    creds_key = manifest.get("credentials")
    if isinstance(creds_key, str) and creds_key not in credentials:
        raise click.ClickException(
            f"catalog entry {MANIFEST_ENTRY} names credentials '{creds_key}', which "
            f"conf/{env}/credentials.yml does not define"
        )
    creds = credentials.get(creds_key, {}) if isinstance(creds_key, str) else (creds_key or {})
    fs_args = {
        k: v for k, v in (manifest.get("fs_args") or {}).items() if not k.startswith("open_args")
    }
    origin = (
        f"credentials '{creds_key}' in conf/{env}/credentials.yml"
        if isinstance(creds_key, str)
        else f"the {MANIFEST_ENTRY} catalog entry"
    )
    return LakeConfig(
        manifest_uri=str(manifest["filepath"]),
        image_root=str(images["path"]),
        storage_options={**fs_args, **creds},
        allowed_roots=tuple(images.get("allowed_roots") or ()),
        endpoint_source=f"client_kwargs.endpoint_url of {origin} (env AWS_ENDPOINT_URL)",
        credentials_source=f"key/secret of {origin} "
        "(env AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)",
        manifest_source=f"the {MANIFEST_ENTRY} filepath in conf/{env}/catalog.yml "
        "(or --params raw_manifest_path=...; lake prefix: DEEPFAKE_LAKE_PREFIX)",
        sample_images=sample,
    )


@click.group(name="lake")
def lake() -> None:
    """The data lake (S3) the pipelines read from and write to."""


@lake.command()
@ENV_OPTION
@click.option(
    "--sample-images",
    default=5,
    show_default=True,
    type=click.IntRange(min=0),
    help="How many manifest images to read.",
)
def check(env: str | None, sample_images: int) -> None:
    """Check endpoint, credentials, bucket, manifest and images; exit 1 on any failure.

    Run it with the environment you run the pipelines with: kedro lake check --env s3
    """
    from deepfake_kedro.lake import check_lake, format_results
    from deepfake_kedro.lake.connection import endpoint_of

    with project_context(env) as context:
        catalog = context.config_loader["catalog"]
        credentials = context.config_loader["credentials"]
        env_name = context.env or "local"
    config = lake_config(catalog, credentials, env_name, sample_images)
    endpoint = endpoint_of(config.storage_options)
    logger.info(
        "Checking the data lake of env '%s': %s on %s (the endpoint check stops after %g s)",
        env_name,
        config.manifest_uri,
        endpoint or "AWS S3",
        config.timeout_s,
    )
    results = check_lake(config)
    click.echo(format_results(results))
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise click.exceptions.Exit(1)
    click.echo(f"The data lake of env '{env_name}' is healthy.")
