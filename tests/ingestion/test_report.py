import io
import json

import pandas as pd
from matplotlib.figure import Figure

from deepfake_kedro.ingestion import data_quality_report, plot_data_quality


def _valid() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row": [1, 2, 4, 5, 6],
            "label": ["real", "fake", "fake", "real", "fake"],
            "source_id": ["s1", "s1", "s2", "s3", "s3"],
            "manipulation": ["none", "gan", "faceswap", "none", "gan"],
            "group_a": ["x", "x", "y", "y", "y"],
            "width": [64, 64, 128, 64, 100],
            "height": [64, 64, 96, 80, 100],
            "file_size": [1000, 1100, 3000, 1200, 2000],
            "captured_at": [
                "2024-01-02T00:00:00Z",
                "2024-01-01T00:00:00Z",
                "2024-03-01T00:00:00Z",
                "2024-02-01T00:00:00Z",
                "2024-01-05T00:00:00Z",
            ],
            "captured_at_source": ["manifest"] * 4 + ["file_mtime"],
        }
    )


def _problems() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row": [3, 3, 7],
            "image_path": ["a.png", "a.png", "b.png"],
            "reason": ["...", "...", "..."],
            "check": ["label", "missing_file", "missing_file"],
        }
    )


def test_report_counts() -> None:
    report = data_quality_report(_valid(), _problems(), ["group_a"])
    json.dumps(report)
    assert report["totals"] == {
        "rows": 7,
        "valid": 5,
        "rejected_rows": 2,
        "problems": 3,
        "problems_by_check": {"missing_file": 2, "label": 1},
    }
    assert report["labels"] == {"real": 2, "fake": 3}
    assert report["class_balance"]["fake_share"] == 0.6
    assert report["manipulations"] == {"gan": 2, "none": 2, "faceswap": 1}
    assert report["sources"] == 3
    assert report["groups"]["group_a"]["x"] == {"n": 2, "real": 1, "fake": 1, "fake_share": 0.5}
    assert report["groups"]["group_a"]["y"]["fake"] == 2
    sizes = report["image_size"]
    assert (sizes["width"]["min"], sizes["width"]["max"]) == (64, 128)
    assert sizes["height"]["median"] == 80
    assert sizes["n_distinct_sizes"] == 4 and sizes["sizes"]["64x64"] == 2
    assert sum(sizes["shorter_side_histogram"]["counts"]) == 5
    assert sizes["file_size_bytes"]["total"] == 8300
    assert report["captured_at"] == {
        "oldest": "2024-01-01T00:00:00Z",
        "newest": "2024-03-01T00:00:00Z",
        "by_source": {"manifest": 4, "file_mtime": 1},
    }


def test_report_lists_groups_too_small_to_judge() -> None:
    report = data_quality_report(_valid(), _problems(), ["group_a"], min_group_size=3)
    json.dumps(report)
    assert report["small_groups"] == {"min_group_size": 3, "groups": {"group_a": {"x": 2}}}
    assert report["warnings"] == [
        "group group_a 'x' has 2 image(s), fewer than data_ingestion.min_group_size 3: too "
        "small to judge fairness on; its rows are kept (add images of the group, merge it with "
        "another, or lower min_group_size)"
    ]
    assert report["totals"]["valid"] == 5 and report["totals"]["rejected_rows"] == 2
    assert report["groups"]["group_a"]["x"]["n"] == 2  # still counted with the others
    without = data_quality_report(_valid(), _problems(), ["group_a"])
    assert without["small_groups"] == {"min_group_size": None, "groups": {}}
    assert without["warnings"] == []
    figure = plot_data_quality(report)
    assert any("1 below 3" in ax.get_title() for ax in figure.axes)


def test_report_without_problems(validated: pd.DataFrame) -> None:
    empty = pd.DataFrame(columns=["row", "image_path", "reason", "check"])
    report = data_quality_report(validated, empty, ["group_a", "group_b"])
    assert report["totals"]["rows"] == 40 and report["totals"]["problems_by_check"] == {}
    assert set(report["groups"]) == {"group_a", "group_b"}


def test_figure_builds_and_saves() -> None:
    figure = plot_data_quality(data_quality_report(_valid(), _problems(), ["group_a"]))
    assert isinstance(figure, Figure)
    titles = [ax.get_title() for ax in figure.axes if ax.get_visible()]
    assert "Problems by check" in titles and "Group group_a by label" in titles
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")
