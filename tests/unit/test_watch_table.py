from nookeeper.server.watches import (
    CHILD, DATA, NODE_CHILDREN_CHANGED, NODE_CREATED, NODE_DATA_CHANGED, NODE_DELETED,
    PERSISTENT, RECURSIVE, WATCHER_ANY, WATCHER_CHILDREN, WATCHER_DATA, WatchTable,
)


def test_data_watch_is_one_shot():
    table = WatchTable()
    table.add(DATA, "/a", "c1")
    assert table.trigger(NODE_DATA_CHANGED, "/a") == ["c1"]
    assert table.trigger(NODE_DATA_CHANGED, "/a") == []
    assert table.count == 0


def test_child_watch_sees_children_changed_and_delete_not_data():
    table = WatchTable()
    table.add(CHILD, "/p", "c1")
    assert table.trigger(NODE_DATA_CHANGED, "/p") == []
    assert table.trigger(NODE_CREATED, "/p") == []
    assert table.trigger(NODE_CHILDREN_CHANGED, "/p") == ["c1"]
    table.add(CHILD, "/p", "c1")
    assert table.trigger(NODE_DELETED, "/p") == ["c1"]


def test_delete_fires_once_per_connection_holding_data_and_child_watches():
    table = WatchTable()
    table.add(DATA, "/p", "c1")
    table.add(CHILD, "/p", "c1")
    table.add(CHILD, "/p", "c2")
    assert table.trigger(NODE_DELETED, "/p") == ["c1", "c2"]
    assert table.count == 0


def test_persistent_watch_stays_and_sees_children_changed():
    table = WatchTable()
    table.add(PERSISTENT, "/w", "c1")
    for event in (NODE_CREATED, NODE_DATA_CHANGED, NODE_CHILDREN_CHANGED, NODE_DELETED):
        assert table.trigger(event, "/w") == ["c1"]
    assert table.trigger(NODE_DATA_CHANGED, "/w/x") == []
    assert table.count == 1


def test_recursive_watch_sees_descendants_but_never_children_changed():
    table = WatchTable()
    table.add(RECURSIVE, "/w", "c1")
    assert table.trigger(NODE_CREATED, "/w/y/z") == ["c1"]
    assert table.trigger(NODE_DATA_CHANGED, "/w") == ["c1"]
    assert table.trigger(NODE_CHILDREN_CHANGED, "/w") == []
    assert table.trigger(NODE_CREATED, "/wx") == []
    table.add(RECURSIVE, "/", "c2")
    assert table.trigger(NODE_DELETED, "/w/y") == ["c1", "c2"]


def test_standard_and_persistent_on_one_connection_give_one_event():
    table = WatchTable()
    table.add(DATA, "/a", "c1")
    table.add(PERSISTENT, "/a", "c1")
    assert table.trigger(NODE_DATA_CHANGED, "/a") == ["c1"]
    assert table.trigger(NODE_DATA_CHANGED, "/a") == ["c1"]


def test_check_remove_and_drop():
    table = WatchTable()
    table.add(DATA, "/a", "c1")
    table.add(CHILD, "/a", "c1")
    table.add(DATA, "/b", "c1")
    assert table.has("c1", "/a", WATCHER_DATA)
    assert not table.has("c2", "/a", WATCHER_ANY)
    assert table.remove("c1", "/a", WATCHER_CHILDREN)
    assert not table.remove("c1", "/a", WATCHER_CHILDREN)
    assert table.paths_of("c1") == ["/a", "/b"]
    table.drop_watcher("c1")
    assert table.count == 0 and table.watchers() == [] and table.by_path() == {}
