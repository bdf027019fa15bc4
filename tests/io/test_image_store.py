import pickle

import pytest

from deepfake_kedro.io import ImageStore, PathEscapeError


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "raw"
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.png").write_bytes(b"abc")
    (tmp_path / "secret.txt").write_text("do not read")
    return ImageStore(str(root))


def test_reads_relative_paths(store):
    assert store.read_bytes("images/a.png") == b"abc"
    assert store.exists("images/a.png")
    assert not store.exists("images/b.png")


def test_absolute_path_inside_root_is_accepted(store):
    assert store.read_bytes(f"{store.root}/images/a.png") == b"abc"


@pytest.mark.parametrize("path", ["../secret.txt", "images/../../secret.txt", "/etc/passwd", ""])
def test_paths_outside_root_are_refused(store, path):
    with pytest.raises(PathEscapeError):
        store.resolve(path)


def test_sibling_folder_with_common_prefix_is_refused(tmp_path, store):
    (tmp_path / "raw2").mkdir()
    (tmp_path / "raw2" / "x.png").write_bytes(b"x")
    with pytest.raises(PathEscapeError, match="outside the image root"):
        store.resolve(str(tmp_path / "raw2" / "x.png"))


def test_symlink_out_of_root_is_refused(tmp_path, store):
    (tmp_path / "raw" / "images" / "link.png").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(PathEscapeError, match="symlink"):
        store.read_bytes("images/link.png")


def test_other_protocol_is_refused(store):
    with pytest.raises(PathEscapeError, match="protocol 's3'"):
        store.resolve("s3://bucket/images/a.png")


def test_store_pickles_for_dataloader_workers(store):
    clone = pickle.loads(pickle.dumps(store))
    assert clone.read_bytes("images/a.png") == b"abc"
    assert clone.root == store.root


def test_absolute_paths_under_allowed_roots_are_accepted(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "c.png").write_bytes(b"c")
    store = ImageStore(str(tmp_path / "raw"), allowed_roots=[str(tmp_path / "shared")])
    assert store.read_bytes(str(tmp_path / "shared" / "c.png")) == b"c"
    with pytest.raises(PathEscapeError):
        store.resolve("../shared/c.png")  # relative paths never leave the root
    assert pickle.loads(pickle.dumps(store)).allowed_roots == store.allowed_roots


def test_allowed_root_of_another_protocol_is_refused(tmp_path):
    with pytest.raises(ValueError, match="allowed_roots"):
        ImageStore(str(tmp_path), allowed_roots=["s3://bucket"])


def test_read_many_keeps_order_and_reports_errors_in_place(store):
    results = store.read_many(["images/a.png", "../secret.txt", "images/none.png"])
    assert results[0] == b"abc"
    assert isinstance(results[1], PathEscapeError)
    assert isinstance(results[2], FileNotFoundError)
