from nookeeper.server.sessions import SessionTable


def test_deadline_rounds_up_to_the_next_tick():
    table = SessionTable(tick_ms=2000)
    table.track(1, 4000, now_ms=10_500)
    assert table.expired(16_000 - 1) == []
    assert table.expired(16_000) == [1]


def test_touch_renews_and_closing_sessions_are_not_reported_twice():
    table = SessionTable(tick_ms=100)
    table.track(7, 1000, now_ms=0)
    assert table.touch(7, now_ms=900)
    assert table.expired(1500) == []
    assert table.expired(2000) == [7]
    table.mark_closing(7)
    assert not table.is_live(7)
    assert not table.touch(7, now_ms=2000)
    assert table.expired(5000) == []
    table.forget(7)
    assert 7 not in table and len(table) == 0


def test_unknown_session_is_not_live():
    table = SessionTable(tick_ms=100)
    assert not table.is_live(3)
    assert not table.touch(3, now_ms=0)
