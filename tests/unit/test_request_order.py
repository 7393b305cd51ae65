"""RequestOrder: a connection's replies leave in request order (no sockets, no threads)."""

import pytest

from nookeeper.server.ordering import OutOfOrder, Request, RequestOrder, Serve, Submit


def read(xid):
    return Request(xid, 4, "read", None, b"", 0.0)


def write(xid):
    return Request(xid, 5, "write", None, b"", 0.0, is_write=True)


def test_a_read_with_nothing_in_flight_is_served_at_once():
    order = RequestOrder()
    r = read(1)
    assert order.add(r) == (Serve(r),)
    assert len(order) == 0


def test_a_write_is_submitted_and_reads_behind_it_wait_for_its_reply():
    order = RequestOrder()
    w, r1, r2 = write(1), read(2), read(3)
    assert order.add(w) == (Submit(w),)
    assert order.add(r1) == ()
    assert order.add(r2) == ()
    assert len(order) == 3
    assert order.completed(w) == [Serve(r1), Serve(r2)]
    assert len(order) == 0


def test_reads_between_two_writes_go_after_the_first_and_before_the_second():
    order = RequestOrder()
    w1, r, w2, r2 = write(1), read(2), write(3), read(4)
    assert order.add(w1) == (Submit(w1),)
    assert order.add(r) == ()
    # The second write is submitted at once: ZAB keeps the session's writes in order.
    assert order.add(w2) == (Submit(w2),)
    assert order.add(r2) == ()
    assert order.completed(w1) == [Serve(r)]
    assert order.completed(w2) == [Serve(r2)]


def test_a_completion_out_of_order_is_refused():
    order = RequestOrder()
    w1, w2 = write(1), write(2)
    order.add(w1)
    order.add(w2)
    with pytest.raises(OutOfOrder):
        order.completed(w2)
    with pytest.raises(OutOfOrder):
        RequestOrder().completed(w1)
