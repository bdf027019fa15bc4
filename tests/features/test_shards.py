"""Gathering the shards' extraction reports into the branch's one report."""

from __future__ import annotations

import pytest

from deepfake_kedro.features import (
    MissingShardsError,
    ShardMismatchError,
    gather_reports,
    shard_key,
)
from deepfake_kedro.features.shards import parse_shard_key

IDENTITY = {"kind": "spectral", "image_size": 64}


def _report(index: int, count: int, *, extracted: int, cached: int = 0, **extra) -> dict:
    return {
        "kind": "spectral",
        "identity": IDENTITY,
        "n_manifest": 40,
        "n_unique": 40,
        "n_in_shard": extracted + cached,
        "n_cached": cached,
        "n_extracted": extracted,
        "n_shard_files_written": 1 if extracted else 0,
        "seconds": 2.0,
        "images_per_s": extracted / 2.0,
        "device": "cpu",
        "shard_index": index,
        "num_shards": count,
        "augmentation": {"views": 1, "n_extracted": extracted},
        **extra,
    }


def test_shard_keys_sort_in_shard_order_and_parse_back():
    keys = [shard_key(i, 12) for i in (10, 2, 0)]
    assert sorted(keys) == [shard_key(0, 12), shard_key(2, 12), shard_key(10, 12)]
    assert parse_shard_key(shard_key(3, 4)) == (3, 4)
    assert parse_shard_key("report") is None and parse_shard_key("shard-1-of-x") is None


def test_counts_add_up_over_the_shards_and_each_shard_is_kept():
    reports = {
        shard_key(0, 2): _report(0, 2, extracted=15, cached=5),
        shard_key(1, 2): _report(1, 2, extracted=20),
        # An earlier run with another shard count: not part of this extraction.
        shard_key(0, 3): _report(0, 3, extracted=99),
    }
    gathered = gather_reports(reports, 2, branch="spectral")
    assert gathered["n_extracted"] == 35 and gathered["n_cached"] == 5
    assert gathered["n_in_shard"] == 40 == gathered["n_unique"]
    assert gathered["augmentation"] == {"views": 1, "n_extracted": 35}
    assert gathered["seconds"] == 4.0 and gathered["images_per_s"] == 8.75
    assert gathered["num_shards"] == 2 and "shard_index" not in gathered
    assert [s["shard_index"] for s in gathered["shards"]] == [0, 1]
    assert [s["n_extracted"] for s in gathered["shards"]] == [15, 20]
    assert gathered["identity"] == IDENTITY


def test_one_shard_is_its_own_report_with_the_shard_listed():
    report = _report(0, 1, extracted=40)
    gathered = gather_reports({shard_key(0, 1): report}, 1, branch="spectral")
    assert {k: v for k, v in gathered.items() if k != "shards"} == {
        k: v for k, v in report.items() if k != "shard_index"
    }


def test_a_missing_shard_is_named_with_how_to_run_it():
    with pytest.raises(MissingShardsError, match=r"clip: extraction shard\(s\) \[1, 2\] of 3"):
        gather_reports({shard_key(0, 3): _report(0, 3, extracted=1)}, 3, branch="clip")
    with pytest.raises(MissingShardsError, match="shard_index=<i>"):
        gather_reports({}, 1, branch="clip")


def test_shards_of_different_extractions_are_refused():
    other = _report(1, 2, extracted=20, identity={"kind": "spectral", "image_size": 128})
    reports = {shard_key(0, 2): _report(0, 2, extracted=20), shard_key(1, 2): other}
    with pytest.raises(ShardMismatchError, match="disagree on 'identity'"):
        gather_reports(reports, 2, branch="spectral")
