import pandas as pd
import pytest

from deepfake_kedro.ingestion import SplitConfig, split_by_source


def _manifest(
    n_mixed: int = 60, n_real_only: int = 20, n_fake_only: int = 20, prefix: str = ""
) -> pd.DataFrame:
    """Sources of varied sizes: mixed (real + fakes), real-only and fake-only."""
    rows = []
    for s in range(n_mixed):
        rows += [{"source_id": f"{prefix}m{s}", "label": "real"}]
        rows += [{"source_id": f"{prefix}m{s}", "label": "fake"}] * (1 + s % 3)
    for s in range(n_real_only):
        rows += [{"source_id": f"{prefix}r{s}", "label": "real"}] * (1 + s % 4)
    for s in range(n_fake_only):
        rows += [{"source_id": f"{prefix}f{s}", "label": "fake"}] * (1 + s % 2)
    frame = pd.DataFrame(rows)
    frame["image_path"] = [f"{prefix}img{i}.png" for i in range(len(frame))]
    return frame


def _assignment(split: pd.DataFrame) -> dict[str, str]:
    return split.groupby("source_id")["split"].first().to_dict()


def test_no_source_crosses_splits_and_rows_keep_order() -> None:
    manifest = _manifest()
    split = split_by_source(manifest, SplitConfig())
    assert split["image_path"].tolist() == manifest["image_path"].tolist()
    assert set(split["split"]) == {"train", "val", "test"}
    assert split.groupby("source_id")["split"].nunique().max() == 1
    assert "split" not in manifest.columns  # input is not modified


def test_fractions_are_respected() -> None:
    config = SplitConfig(train=0.6, val=0.2, test=0.2)
    split = split_by_source(_manifest(), config)
    shares = split["split"].value_counts(normalize=True)
    for name, fraction in config.fractions.items():
        assert shares[name] == pytest.approx(fraction, abs=0.03)


def test_each_split_keeps_the_class_balance() -> None:
    split = split_by_source(_manifest(), SplitConfig())
    overall = (split["label"] == "fake").mean()
    for _, part in split.groupby("split"):
        assert set(part["label"]) == {"real", "fake"}
        assert (part["label"] == "fake").mean() == pytest.approx(overall, abs=0.06)


def test_deterministic_for_a_seed() -> None:
    manifest = _manifest()
    first = split_by_source(manifest, SplitConfig(seed=7))
    again = split_by_source(manifest.sample(frac=1, random_state=1), SplitConfig(seed=7))
    other = split_by_source(manifest, SplitConfig(seed=8))
    assert _assignment(first) == _assignment(again)
    assert _assignment(first) != _assignment(other)


def test_adding_sources_keeps_most_old_assignments() -> None:
    old = _manifest()
    grown = pd.concat([old, _manifest(6, 2, 2, prefix="new-")], ignore_index=True)
    before, after = _assignment(split_by_source(old, SplitConfig())), _assignment(
        split_by_source(grown, SplitConfig())
    )
    kept = sum(before[s] == after[s] for s in before) / len(before)
    assert kept >= 0.85


def test_validated_fixture_manifest_splits(validated) -> None:
    split = split_by_source(validated, SplitConfig())
    counts = pd.crosstab(split["split"], split["label"])
    assert (counts > 0).all().all() and counts.shape == (3, 2)


def test_too_few_sources_raises_clearly() -> None:
    manifest = _manifest(n_mixed=2, n_real_only=0, n_fake_only=5)
    with pytest.raises(ValueError) as info:
        split_by_source(manifest, SplitConfig())
    message = str(info.value)
    assert "too few sources to split: 7 sources, 2 with real and 7 with fake images" in message
    assert "train=0.7, val=0.15, test=0.15" in message and "Add sources" in message


def test_split_lacking_a_label_raises_clearly() -> None:
    # Three sources with real images, but the two real-only ones are in one stratum that is
    # too small to reach every split.
    manifest = _manifest(n_mixed=1, n_real_only=2, n_fake_only=10)
    with pytest.raises(ValueError, match=r"has no real images .*Add sources of the missing label"):
        split_by_source(manifest, SplitConfig())


def test_unvalidated_labels_are_refused() -> None:
    manifest = _manifest()
    manifest.loc[0, "label"] = "Real"
    with pytest.raises(ValueError, match=r"labels \['Real'\] are not one of real, fake"):
        split_by_source(manifest, SplitConfig())
