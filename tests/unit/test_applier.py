"""Applier: items run in hand-over order, by the apply thread or by the caller that kept one."""

import threading
import time

import pytest

from nookeeper.server.applier import Applier


class Recorder:
    def __init__(self):
        self.ran = []          # (item, thread ident) in the order run
        self.gates = {}        # item -> Event it waits for before finishing
        self.started = {}      # item -> Event set when it starts
        self.done = threading.Condition()

    def __call__(self, item):
        self.started.setdefault(item, threading.Event()).set()
        gate = self.gates.get(item)
        if gate is not None:
            assert gate.wait(5)
        with self.done:
            self.ran.append((item, threading.get_ident()))
            self.done.notify_all()

    def wait_for(self, count):
        with self.done:
            assert self.done.wait_for(lambda: len(self.ran) >= count, 5)
        return [item for item, _ in self.ran]


@pytest.fixture
def applier():
    recorder = Recorder()
    applier = Applier(recorder)
    thread = threading.Thread(target=applier.run_until_stopped, daemon=True)
    thread.start()
    yield applier, recorder, thread
    applier.stop()
    thread.join(5)


def test_a_quiet_applier_lets_the_caller_run_the_item(applier):
    applier, recorder, thread = applier
    applier.hand_over("a", may_keep=True)
    time.sleep(0.05)
    assert recorder.ran == []  # kept: nobody runs it until the caller does
    applier.run_kept()
    assert recorder.ran == [("a", threading.get_ident())]


def test_an_item_not_kept_runs_on_the_apply_thread(applier):
    applier, recorder, thread = applier
    applier.hand_over("a")
    recorder.wait_for(1)
    assert recorder.ran == [("a", thread.ident)]
    applier.run_kept()  # nothing was kept
    assert len(recorder.ran) == 1


def test_an_item_handed_over_after_a_kept_one_waits_for_it(applier):
    applier, recorder, thread = applier
    applier.hand_over("first", may_keep=True)
    applier.hand_over("second", may_keep=True)  # the first holds the applier: queued
    time.sleep(0.1)
    assert recorder.ran == []
    applier.run_kept()
    assert recorder.wait_for(2) == ["first", "second"]
    assert recorder.ran[0][1] == threading.get_ident()
    assert recorder.ran[1][1] == thread.ident


def test_nothing_is_kept_while_the_apply_thread_has_work(applier):
    applier, recorder, thread = applier
    recorder.gates["slow"] = gate = threading.Event()
    applier.hand_over("slow")
    assert recorder.started.setdefault("slow", threading.Event()).wait(5)
    applier.hand_over("next", may_keep=True)
    applier.run_kept()  # not kept: the apply thread still runs "slow"
    assert recorder.ran == []
    gate.set()
    assert recorder.wait_for(2) == ["slow", "next"]
    assert all(ident == thread.ident for _, ident in recorder.ran)


def test_an_item_queued_while_the_apply_thread_is_between_items_is_not_overtaken(applier):
    applier, recorder, thread = applier
    recorder.gates["a"] = gate = threading.Event()
    applier.hand_over("a")
    applier.hand_over("b")  # waits in the queue behind "a"
    assert recorder.started.setdefault("a", threading.Event()).wait(5)
    applier.hand_over("c", may_keep=True)
    applier.run_kept()
    gate.set()
    assert recorder.wait_for(3) == ["a", "b", "c"]
