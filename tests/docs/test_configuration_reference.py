"""docs/configuration.md documents every key of conf/base (so the reference never rots)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = (ROOT / "docs" / "configuration.md").read_text()
DOCS = ROOT / "docs"


def leaf_keys(value: object, prefix: str = "") -> list[str]:
    """Dotted keys of the leaves; an empty mapping (`min_metrics: {}`) is a leaf."""
    if isinstance(value, dict) and value:
        return [k for name, sub in value.items() for k in leaf_keys(sub, f"{prefix}{name}.")]
    return [prefix.rstrip(".")]


def documented(key: str, text: str = REFERENCE) -> bool:
    return f"`{key}`" in text


def section(heading: str) -> str:
    start = REFERENCE.index(heading)
    end = REFERENCE.find("\n## ", start + 1)
    return REFERENCE[start:end if end != -1 else None]


def test_every_parameter_is_documented():
    files = sorted((ROOT / "conf" / "base").glob("parameters_*.yml"))
    assert files
    missing = [
        f"{path.name}: {key}"
        for path in files
        for key in leaf_keys(yaml.safe_load(path.read_text()) or {})
        if not documented(key)
    ]
    assert not missing, "add these parameters to docs/configuration.md:\n" + "\n".join(missing)


def test_every_api_setting_and_global_is_documented():
    api = section("## Training API (`conf/base/api.yml`)")
    missing = [k for k in yaml.safe_load((ROOT / "conf/base/api.yml").read_text())
               if not documented(k, api)]
    missing += [k for k in leaf_keys(yaml.safe_load((ROOT / "conf/base/globals.yml").read_text()))
                if not documented(k)]
    assert not missing, f"add these keys to docs/configuration.md: {missing}"


def test_documented_parameter_keys_exist():
    """The reverse: a row for a parameter that was renamed or removed is stale."""
    groups = {}
    for path in (ROOT / "conf" / "base").glob("parameters_*.yml"):
        groups.update(yaml.safe_load(path.read_text()) or {})
    known = set()
    for key in leaf_keys(groups):
        parts = key.split(".")
        known.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    # Fields with a default in the typed config but no line in the YAML.
    known |= {"ensemble_training.fusion.stack_fraction",
              "feature_extraction.backbones.<branch>.hub_timeout_s",
              "feature_extraction.backbones.<branch>.enabled",
              "feature_extraction.backbones.<branch>.options",
              "feature_extraction.backbones.<branch>.lr_scale"}
    rows = re.findall(r"^\| `([a-z_]+\.[a-z_.<>]+)` \|", REFERENCE, flags=re.MULTILINE)
    parameter_rows = [r for r in rows if r.split(".")[0] in groups]
    assert parameter_rows
    stale = [r for r in parameter_rows if r not in known]
    assert not stale, f"docs/configuration.md documents unknown parameters: {stale}"


def test_docs_links_resolve():
    """Relative links between the docs (and to the repository) point at existing files."""
    broken = []
    for page in sorted(DOCS.glob("*.md")):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.name} -> {target}")
    assert not broken, f"broken links: {broken}"
