"""kazoo's recipes across client processes against one nookeeper server."""


from harness import ClientProcess, wait_for


def test_lock_gives_mutual_exclusion_across_processes(server, zk):
    workers = [ClientProcess(server.hosts, "lock", "/locks/l", 15, f"w{i}") for i in range(2)]
    try:
        for worker in workers:
            worker.wait_ready()
        for worker in workers:
            code, out, err = worker.wait(timeout=90)
            # A second holder would hit NodeExistsError on /lockcheck/holder.
            assert code == 0, err
            assert "done" in out
    finally:
        for worker in workers:
            worker.kill()
    assert zk.get_children("/locks/l") == []


def test_counter_across_processes(server, zk):
    workers = [ClientProcess(server.hosts, "counter", "/counter", 25) for _ in range(2)]
    try:
        for worker in workers:
            code, _out, err = worker.wait(timeout=90)
            assert code == 0, err
    finally:
        for worker in workers:
            worker.kill()
    assert zk.Counter("/counter").value == 50


def test_election_fails_over_to_the_other_process(server, zk):
    first = ClientProcess(server.hosts, "election", "/election", "first")
    second = None
    try:
        first.wait_ready()
        assert first.readline() == "leader first"
        second = ClientProcess(server.hosts, "election", "/election", "second")
        second.wait_ready()
        wait_for(lambda: len(zk.get_children("/election")) == 2, message="two candidates")
        first.kill()
        assert second.readline() == "leader second"
    finally:
        first.kill()
        if second is not None:
            second.kill()


def test_queue_between_processes(server, zk):
    producer = ClientProcess(server.hosts, "queue-put", "/queue", 20)
    try:
        code, _out, err = producer.wait(timeout=60)
        assert code == 0, err
    finally:
        producer.kill()
    queue = zk.Queue("/queue")
    got = [queue.get() for _ in range(20)]
    assert got == [f"item-{i}".encode() for i in range(20)]
    assert queue.get() is None
