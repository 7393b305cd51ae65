"""The server's histograms as Prometheus sees them when it scrapes."""

import threading

from prometheus_client.core import HistogramMetricFamily

from nookeeper.server.metrics import _histogram_family
from nookeeper.server.stats import LATENCY_BUCKETS, Buckets, ServerStats


def samples(family):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}


def test_a_value_on_a_bound_counts_in_that_bucket_as_prometheus_le_means():
    buckets = Buckets((0.001, 0.01))
    for value in (0.001, 0.0005, 0.002, 5.0):
        buckets.observe(value)
    assert buckets.counts == [2, 1, 1]
    assert buckets.sum == 0.001 + 0.0005 + 0.002 + 5.0


def test_scraped_buckets_are_cumulative_with_count_and_sum_per_op():
    stats = ServerStats()
    stats.record("create", 0.0004, 10)
    stats.record("create", 0.003, 10)
    stats.record("getData", 30.0, 10)
    latency = next(h for h in stats.histograms() if h.name == "nookeeper_request_latency_seconds")
    family = _histogram_family(latency)
    assert isinstance(family, HistogramMetricFamily)
    got = samples(family)
    bucket = "nookeeper_request_latency_seconds_bucket"
    assert got[bucket, (("le", "0.0005"), ("op", "create"))] == 1
    assert got[bucket, (("le", "0.0025"), ("op", "create"))] == 1
    assert got[bucket, (("le", "0.005"), ("op", "create"))] == 2
    assert got[bucket, (("le", "+Inf"), ("op", "create"))] == 2
    assert got["nookeeper_request_latency_seconds_count", (("op", "create"),)] == 2
    assert abs(got["nookeeper_request_latency_seconds_sum", (("op", "create"),)] - 0.0034) < 1e-12
    # Above the largest bound: only +Inf counts it.
    assert got[bucket, (("le", str(LATENCY_BUCKETS[-1])), ("op", "getData"))] == 0
    assert got[bucket, (("le", "+Inf"), ("op", "getData"))] == 1


def test_unlabelled_histograms_exist_before_anything_is_observed():
    stats = ServerStats()
    for histogram in stats.histograms():
        if histogram.label is None:
            got = samples(_histogram_family(histogram))
            assert got[histogram.name + "_count", ()] == 0


def test_a_scrape_copies_so_later_observations_do_not_change_it():
    stats = ServerStats()
    stats.wal_batch(0.0002, 7)
    batch = next(h for h in stats.histograms() if h.name == "nookeeper_wal_batch_txns")
    stats.wal_batch(0.0002, 9)
    assert samples(_histogram_family(batch))["nookeeper_wal_batch_txns_sum", ()] == 7


def test_observations_from_many_threads_are_all_counted():
    stats = ServerStats()

    def observe():
        for _ in range(5000):
            stats.record("exists", 0.0001, 1)

    threads = [threading.Thread(target=observe) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latency = next(h for h in stats.histograms() if h.name == "nookeeper_request_latency_seconds")
    assert sum(latency.series["exists"].counts) == 20000
