import pytest

from nookeeper.errors import BadArgumentsError
from nookeeper.paths import name_of, parent_of, validate_path


@pytest.mark.parametrize("path", [
    "/", "/a", "/a/b/c", "/...", "/.a", "/a.", "/a..", "/a/.b",
    "/zookeeper", "/\u00e9t\u00e9", "/\u00a0", "/\uf900", "/\uffef", "/a b",
])
def test_valid_paths(path):
    validate_path(path)


@pytest.mark.parametrize("path", [
    None, "", "a", "a/b", "/a/", "//", "/a//b", "/.", "/..", "/a/.", "/a/..",
    "/a/./b", "/a/../b",
    "/\0", "/a\0b", "/\x01", "/\x1f", "/\x7f", "/\x9f",
    "/\ud800", "/\udfff", "/\ue000", "/\uf8ff", "/\ufff0", "/\uffff", "/\U0001f600",
])
def test_invalid_paths(path):
    with pytest.raises(BadArgumentsError):
        validate_path(path)


@pytest.mark.parametrize("path, parent", [
    ("/a", "/"), ("/a/b", "/a"), ("/a/b/c", "/a/b"),
    ("/a//b", "/a/"), ("/a/", "/a"), ("/", "/"),
])
def test_parent_of(path, parent):
    assert parent_of(path) == parent


@pytest.mark.parametrize("path, name", [
    ("/a", "a"), ("/a/b", "b"), ("/a/", ""), ("/", ""),
])
def test_name_of(path, name):
    assert name_of(path) == name
