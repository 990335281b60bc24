"""Every number and claim a bundled scenario's text states about its run, checked against a run.

A scenario's ``description`` and header comments tell what its run shows; each test here checks
those claims, each assertion citing where the claim is stated and why its tolerance is what it is.
Runs are shortened (``duration=``, ``warmup=``) where the claim holds in the shorter run; a claim
about a whole run ("over the 30 minutes", "drains by minute 41") runs the full length.

Where each scenario's claims are checked ("here": this module's test of that scenario; a claim
asserted elsewhere is not repeated here). ``test_scenarios.py`` is tests/test_scenarios.py.

sqs-spike
    here (about 2,300 records/s, over a million, the drain by minute 41);
    test_scenarios.py::test_spike_builds_a_backlog (the cap of 100).
sqs-orders
    here (latencies, the visibility timeout's retries, concurrency, batch size, monthly cost);
    test_scenarios.py::test_orders_is_healthy.
sqs-orders-sweep
    here (the scenario's own point keeps up); the sweep itself states no result.
sqs-poison-dlq
    here (about 2.4 messages an invocation); batch mates dragged into the DLQ without partial
    batch responses: test_scenarios.py::
    test_poison_messages_drag_batch_mates_into_the_dlq_without_partial_responses.
sqs-shared-reserved
    here (the concurrency needed, the refund queue's share, the backlog all hour, the capped
    variant); throttles against caps: test_scenarios.py::
    test_shared_reservation_throttles_until_the_mappings_are_capped.
sqs-fifo-orders
    here (median, p99, the hottest customer, the backlog at the end); concurrency capped by the
    groups, duplicates dropped, the DLQ: tests/test_sqs_fifo.py::
    test_fifo_orders_scenario_hot_groups_limit_concurrency.
sqs-filtered-events
    here (every total over the 30 minutes); the filtered share against the pattern's:
    tests/test_filtering.py::test_filtered_events_scenario_tells_its_story.
sqs-incident
    here (peak backlog, latencies); nothing invoked while disabled, the drain within 5 minutes,
    concurrency above the old cap: test_scenarios.py::
    test_sqs_incident_backs_up_while_disabled_and_drains_after.
sqs-provisioned-spike
    test_scenarios.py::test_provisioned_mode_catches_the_spike_that_standard_mode_queues. The
    description's other figures are arithmetic on the settings (40 records/s a batch: 10 / (0.2 s
    + 10 x 5 ms)) and the scaling rules the model applies, not results of this run.
dynamodb-cdc
    here (about 20 bad items, each alone, IteratorAge under 15 s);
    test_scenarios.py::test_cdc_isolates_bad_items.
kinesis-clickstream
    here (full batches, IteratorAge under 2 s, one invocation per shard);
    test_scenarios.py::test_clickstream_keeps_up.
kinesis-hot-shard
    here (the busiest tenant's share, shard rates, a lane's rate, the backlogs and IteratorAge
    slopes, the parallelization factor 4 variant's climb); the limit's name and batch_size=200
    keeping up: test_scenarios.py::test_a_hot_key_outruns_its_lane_until_batches_grow.
kinesis-poison-record
    test_scenarios.py::test_poison_record_stalls_the_default_mapping_only (the poison record
    arrives about 20 minutes in: the default mapping's IteratorAge passes 300 s by minute 30
    and climbs, one shard stalls, the other mapping pauses for seconds and sends one record to
    its destination) and ::test_poison_record_with_lanes_stalls_its_shard_unless_checkpointed_by_key
    (the sweep's ``checkpoint: shard`` against ``checkpoint: key``).
msk-ingest
    here (one poller, 5 invokes); test_scenarios.py::
    test_msk_ingest_lag_rises_in_the_spike_and_drains_once_pollers_are_added (pollers added
    within 3 minutes, the lag drains, provisioned mode keeps up). "About 900 records/s per
    partition" is arithmetic on the settings (1,000 / (0.1 s + 1 s)).
mq-integration
    here (every number, the redeliveries, RabbitMQ's queue only growing); concurrency never past
    5 and RabbitMQ's one consumer: tests/test_mq.py::
    test_the_example_scenario_peaks_above_what_five_consumers_take.
s3-thumbnails
    here (about 35 images/s, the backlog's growth, the oldest event's age reaching 1 hour about
    minute 80); events reaching the on-failure queue at their maximum age, and the variant with
    60 reserved: test_scenarios.py::test_s3_thumbnails_throttled_events_age_out_to_the_destination.
sns-order-fanout
    here (audit's tail of minutes, the queues' none); every order once per subscription, the
    retries: test_scenarios.py::test_sns_fanout_processes_every_order_once_per_subscription.
eventbridge-rule
    here (about 1 % late, the latest about a minute, none lost);
    test_scenarios.py::test_eventbridge_handoff_retries_delay_some_events.

"Try:" lines that state no result (a variant to explore) have nothing to check.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from esmsim import RunResult, load_scenario, simulate
from tests.helpers import traced

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def run(name: str, *overrides: str) -> RunResult:
    return simulate(load_scenario(SCENARIOS / name, list(overrides)))


def per_minute_slope(series: pd.Series, first: int, last: int) -> float:
    """Least-squares growth per minute of ``series`` (indexed by minute) over ``first..last``."""
    part = series.loc[first:last]
    return float(np.polyfit(part.index.to_numpy(dtype=float), part.to_numpy(dtype=float), 1)[0])


def lognormal_mean(median: float, p99: float) -> float:
    sigma = math.log(p99 / median) / 2.326348
    return median * math.exp(sigma**2 / 2)


def test_sqs_spike_backlog_passes_a_million_and_drains_by_minute_41() -> None:
    # The drain ("by minute 41", sqs-spike.yaml's description) needs the run up to minute 42; the
    # hour's last 18 minutes of baseline show nothing more.
    r = run("sqs-spike.yaml", "duration=42m")
    ts = r.timeseries
    done = ts["RecordsSucceeded"]
    # "processes about 2,300 records/s": the capped minutes of the burst and the drain (16-38);
    # "about" and the estimate's own rounding (0.44 s a batch): 5 %.
    assert abs(done.loc[16:38].mean() / 60 / 2300 - 1) < 0.05
    # "a backlog of over a million messages".
    assert r.summary["backlog_max"] > 1_000_000
    visible = ts["ApproximateNumberOfMessagesVisible"]
    # "drains ... at about 1,750 a second": the ~2,250 processed less 500 arriving; 5 % as above.
    drain = (visible.loc[27] - visible.loc[37]) / (10 * 60)
    assert abs(drain / 1750 - 1) < 0.05
    # "by minute 41": still draining two minutes before, empty (baseline: a few) at 41.
    assert visible.loc[39] > 50_000
    assert visible.loc[41] < 100


def test_sqs_orders_latency_concurrency_and_cost() -> None:
    # Steady traffic: ten minutes show the hour's rates (sqs-orders.yaml's header).
    s = run("sqs-orders.yaml", "duration=10m", "warmup=1m").summary
    # "about 0.05 s at the median and 0.3 s at the 99th percentile": the handler's lognormal
    # durations dominate; "about" and ~50,000 records' percentile noise: 20 %.
    assert 0.04 < s["latency_p50_s"] < 0.06
    assert 0.24 < s["latency_p99_s"] < 0.36
    # "the few in failed batches 3 minutes (the visibility timeout)": ~50 failed invocations in
    # the window, each retried once the 180 s timeout ends (plus the retry's handling).
    assert s["invocation_errors"] > 0
    assert 180 <= s["latency_max_s"] < 190
    # "about 5 invocations at once on average, in batches of about 2.4": 10 %, "about".
    assert abs(s["concurrency_mean"] / 5 - 1) < 0.1
    assert abs(s["batch_size_mean"] / 2.4 - 1) < 0.1
    # "about $430 a month": request and compute costs scale with the steady rate; 5 %.
    assert abs(s["cost_per_month_usd"] / 430 - 1) < 0.05


def test_sqs_orders_sweep_own_point_keeps_up() -> None:
    # sqs-orders-sweep.yaml's header: the scenario's own point keeps up, p99 under 2 s, nothing
    # dead-lettered. Steady traffic: three minutes show it.
    s = run("sqs-orders-sweep.yaml", "duration=4m", "warmup=1m").summary
    assert s["latency_p99_s"] < 2
    assert s["records_dlq"] == 0
    # "keeps up": the sweep's own bound for that (10 s of orders ever waiting).
    assert s["backlog_max"] < 5000


def test_sqs_poison_dlq_batches_of_about_2_4() -> None:
    # sqs-poison-dlq.yaml's description: "about 2.4 messages an invocation at this rate"; steady
    # traffic, ten minutes (~100,000 invocations, the mean's noise far under 1 %); "about": 5 %.
    s = run("sqs-poison-dlq.yaml", "duration=10m", "warmup=1m").summary
    assert abs(s["batch_size_mean"] / 2.4 - 1) < 0.05


def test_sqs_shared_reserved_needs_all_ten_and_the_backlog_grows_all_hour() -> None:
    # Full length ("grows for the whole hour"), a run of about two seconds.
    r = run("sqs-shared-reserved.yaml")
    # Description: "in full batches of 10 the function would need about 8.6" (arithmetic on the
    # settings: 4 batches/s x (mean lognormal duration + 10 x 50 ms)).
    need = 4 * (lognormal_mean(1.5, 4.0) + 10 * 0.05)
    assert abs(need - 8.6) < 0.1
    # Header: "the refund queue, a quarter of the traffic, gets over 40 % of the invocations, in
    # batches of about 5"; order batches are full (10). "about": 5 to 6 records.
    by_mapping = r.mapping_timeseries.groupby("mapping")
    invocations = by_mapping["Invocations"].sum()
    refunds = next(m for m in invocations.index if "refunds" in m)
    orders = next(m for m in invocations.index if "orders" in m)
    assert invocations[refunds] / invocations.sum() > 0.4
    assert 4.5 < by_mapping["BatchSize"].mean()[refunds] < 6
    assert by_mapping["BatchSize"].mean()[orders] > 9.5
    # "the order backlog grows for the whole hour (past 10,000)": each 20-minute stretch ends
    # with more waiting than the last (Poisson noise is some hundreds, the growth thousands).
    visible = r.timeseries["ApproximateNumberOfMessagesVisible"]
    assert visible.loc[19] < visible.loc[39] < visible.loc[59]
    assert visible.loc[59] > 10_000
    # The capped variant ("Try:" in the header): "no throttles, seconds of latency". "the pollers'
    # partly filled batches need all 10" (description): its mean concurrency is nearly 10.
    capped = run(
        "sqs-shared-reserved.yaml", "mappings[0].maximum_concurrency=7", "mappings[1].maximum_concurrency=3"
    ).summary
    assert capped["throttles"] == 0
    assert capped["latency_p99_s"] < 10
    assert capped["concurrency_mean"] > 9.5


def test_sqs_fifo_orders_median_p99_and_the_hot_customer() -> None:
    # Header: "the hottest customer (about 30 % of the orders) meets a poison order every few
    # minutes": Zipf skew 1.2 over 40 groups gives the first group 1 / H(40, 1.2) of the traffic,
    # and 1 in 5,000 of its orders is poison (properties of the settings).
    share = 1 / sum(k**-1.2 for k in range(1, 41))
    assert 0.28 < share < 0.33
    assert 2 < 1 / (100 * share / 5000) / 60 < 4  # minutes between its poison orders
    # "Over the 30 minutes": the p99 grows with the run (the hot group's backlog never drains),
    # so the claim needs the full length.
    s = run("sqs-fifo-orders.yaml").summary
    # "the median order takes about 0.1 s": most groups flow; "about": 0.07 to 0.15 s.
    assert 0.07 < s["latency_p50_s"] < 0.15
    # "the p99 nearly ten minutes": between 7 and 10 minutes.
    assert 420 < s["latency_p99_s"] < 600
    # "its backlog never drains (over 10,000 orders wait at the end)".
    assert s["records_in_flight_end"] > 10_000


def test_sqs_filtered_events_over_the_30_minutes() -> None:
    # sqs-filtered-events.yaml's header states totals "over the 30 minutes": full length, with and
    # without the filter. Poisson noise on 362,000 events is 0.2 %; the rounding of each stated
    # figure is under 1 %: 2 % for counts, 3 % for costs (bills round to $0.001).
    filtered = run("sqs-filtered-events.yaml").summary
    plain = run("sqs-filtered-events.yaml", "mappings[0].filter=null").summary

    def near(value: float, stated: float, tolerance: float) -> bool:
        return abs(value / stated - 1) < tolerance

    # "271,000 of 362,000 events are filtered out".
    assert near(filtered["records_in"], 362_000, 0.02)
    assert near(filtered["records_filtered"], 271_000, 0.02)
    # "invocations fall from 149,000 to 61,000".
    assert near(plain["invocations"], 149_000, 0.02)
    assert near(filtered["invocations"], 61_000, 0.02)
    # "Lambda's bill from $0.108 to $0.043".
    lambda_cost = ("cost_lambda_requests_usd", "cost_lambda_compute_usd")
    assert near(sum(plain[k] for k in lambda_cost), 0.108, 0.03)
    assert near(sum(filtered[k] for k in lambda_cost), 0.043, 0.03)
    # "the queue's request bill rises a little ($0.119 to $0.133)".
    assert near(plain["cost_source_usd"], 0.119, 0.03)
    assert near(filtered["cost_source_usd"], 0.133, 0.03)


def test_sqs_incident_peak_backlog_and_latencies() -> None:
    # Full length: the median is over the whole run, the outage's share of records set by it.
    s = run("sqs-incident.yaml").summary
    # Header: "to about 90,000: ten minutes of orders" (150/s x 600 s; Poisson sd 300, and the
    # pollers' last receives before the change takes effect): 5 %.
    assert abs(s["backlog_max"] / 90_000 - 1) < 0.05
    # "up to 10 minutes of latency": orders sent as the mapping stopped wait until it restarts.
    assert 570 < s["latency_max_s"] < 630
    # "the others, about 0.1 s (the median)": 0.07 to 0.2 s.
    assert 0.07 < s["latency_p50_s"] < 0.2


def test_dynamodb_cdc_bad_items_go_alone_and_hold_the_shard_seconds() -> None:
    # Full length: the header's count is over the hour (a run of a few seconds).
    s = run("dynamodb-cdc.yaml").summary
    # "about 20 bad items reach the destination": 1 in 50,000 of ~1.08 million changes is 21.6,
    # Poisson sd 4.6: 10 to 35 (about 2.5 sd).
    assert 10 <= s["records_dlq"] <= 35
    # "each alone": every discarded batch holds one record (bisection isolates the bad item).
    assert s["discarded_batches"] == s["records_dlq"]
    # "IteratorAge stays under 15 s" (seconds, not a day).
    assert s["iterator_age_max_s"] < 15


def test_kinesis_clickstream_keeps_up_with_full_batches() -> None:
    # kinesis-clickstream.yaml's header; steady traffic: five minutes show it.
    s = run("kinesis-clickstream.yaml", "duration=6m", "warmup=1m").summary
    # "batches fill to 500": 500 records/s a shard fill a batch within the 1 s window.
    assert s["batch_size_mean"] > 490
    # "IteratorAge stays under 2 s".
    assert s["iterator_age_max_s"] < 2
    # "at most 16 invocations run at once (one per shard)".
    assert s["concurrency_max"] <= 16


def test_kinesis_hot_shard_rates_and_climbing_iterator_age() -> None:
    # Header of kinesis-hot-shard.yaml. Ten minutes: the per-shard rates and the backlogs' slopes
    # are steady from the start (every shard's keys are fixed by the tenants' hashes).
    # "the busiest tenant (an eighth of all events)": Zipf exponent 1.0 over 2,000 tenants gives
    # it 1 / H(2000) (a property of the settings).
    assert abs(1 / sum(1 / k for k in range(1, 2001)) - 1 / 8) < 0.01
    r = run("kinesis-hot-shard.yaml", "duration=10m", "warmup=1m")
    shards = r.resources[r.resources["kind"] == "shard"].set_index("name")
    rate = shards["records"] / 600
    hot = rate.filter(like="shard 4").iloc[0]
    rest = rate.drop(rate.filter(like="shard 4").index)
    # "it gets about 810 records/s while the other shards get 190-480": 600 s of Poisson
    # arrivals (sd under 1.5 %); the range's ends rounded to 10: 3 % around them.
    assert abs(hot / 810 - 1) < 0.03
    assert rest.min() > 190 * 0.97
    assert rest.max() < 480 * 1.03
    backlog = r.shard_timeseries.pivot(index="minute", columns="shard", values="Backlog")
    # "One lane processes about 450 records/s": shard 4's arrivals less its backlog's growth; 5 %.
    lane = hot - per_minute_slope(backlog[4], 2, 9) / 60
    assert abs(lane / 450 - 1) < 0.05
    # "shard 6, at about 475 records/s, falls behind slowly (some 1,600 records a minute)": its
    # surplus over a lane is a few per cent of its rate, so the slope is noisier: 1,000 to 2,200.
    assert abs(rate.filter(like="shard 6").iloc[0] / 475 - 1) < 0.03
    assert 1_000 < per_minute_slope(backlog[6], 2, 9) < 2_200
    # "the other six keep up": their backlogs stay at a few batches.
    assert backlog.drop(columns=[4, 6]).max().max() < 1_000
    # "its IteratorAge climbs, about 27 s a minute" ((810 - 450) / 810 of a minute a minute); 10 %.
    age = r.timeseries["IteratorAge"] / 1000
    assert abs(per_minute_slope(age, 2, 9) / 27 - 1) < 0.1
    # "Try: --set mappings[0].parallelization_factor=4": the hot lane's IteratorAge "keeps
    # climbing, about 6 s a minute (to about 6 minutes after an hour)". The climb is linear from
    # the start (a fixed surplus of ~35 records/s); ten minutes give the slope, and the hour's
    # value is its extrapolation. "about": 4.5 to 7 s a minute, 5 to 7 minutes after an hour.
    lanes = run("kinesis-hot-shard.yaml", "duration=10m", "warmup=1m", "mappings[0].parallelization_factor=4")
    lane_age = lanes.timeseries["IteratorAge"] / 1000
    slope = per_minute_slope(lane_age, 2, 9)
    assert 4.5 < slope < 7
    after_an_hour = lane_age.loc[9] + slope * (59 - 9)
    assert 300 < after_an_hour < 420
    # "shard 4's other keys catch up, but the lane holding the busiest tenant still gets about 500
    # records/s against the ~450 one lane processes": shard 4's backlog is that lane's (it grows
    # linearly from the start; every other shard stays at a few batches). Its growth is the
    # lane's surplus (arrivals less throughput) and the IteratorAge slope that surplus over the
    # lane's arrivals, so arrivals = growth / age slope; "about": 5 %.
    lane_backlog = lanes.shard_timeseries.pivot(index="minute", columns="shard", values="Backlog")
    assert lane_backlog.drop(columns=[4]).max().max() < 1_000
    surplus = per_minute_slope(lane_backlog[4], 2, 9) / 60
    arrivals = surplus / (slope / 60)
    assert abs(arrivals / 500 - 1) < 0.05
    assert abs((arrivals - surplus) / 450 - 1) < 0.05


def test_mq_integration_peak_drain_and_dead_letters() -> None:
    # Full length (40 minutes, a run of about two seconds): the header's totals are the run's.
    r = run("mq-integration.yaml")
    s, ts = r.summary, r.timeseries
    # "about 866,000 orders processed": Poisson noise 0.1 %, dead-lettered batches move it by
    # hundreds: 1 %.
    assert abs(s["records_succeeded"] / 866_000 - 1) < 0.01
    # "4,500 dead-lettered (45 poison batches)": whole batches of 100 ("with the 99 orders batched
    # with it"); the count of poison orders is Poisson (mean ~43, sd 6.6): 30 to 60 batches.
    assert s["records_dlq"] % 100 == 0
    assert 30 <= s["records_dlq"] / 100 <= 60
    # "redelivered 6 times ... and then dead-lettered": every poison batch fails 1 + 6 times.
    assert s["invocation_errors"] == 7 * s["records_dlq"] / 100
    # "a consumer starts one every 0.7 s": five consumers' invocations a minute in the peak; 5 %.
    assert abs(ts["Invocations"].loc[11:19].mean() / (5 * 60 / 0.7) - 1) < 0.05
    # "carry about 700 messages/s" in the peak (minutes 11-19: processed and dead-lettered); 5 %.
    carried = (ts["RecordsSucceeded"] + ts["RecordsDLQ"]).loc[11:19].mean() / 60
    assert abs(carried / 700 - 1) < 0.05
    # "the queue grows by some 300 a second": 1,000 arriving less ~700 carried; 15 % ("some").
    growth = per_minute_slope(ts["QueueSize"], 11, 19) / 60
    assert abs(growth / 300 - 1) < 0.15
    # "the queue peaks near 190,000": ten minutes of that growth; 5 %.
    assert abs(s["mq_queue_size_max"] / 190_000 - 1) < 0.05
    # "back to the baseline about 5 minutes after the peak" (minute 20): still tens of thousands
    # four minutes after, the baseline's ~150 in minute 26.
    assert ts["QueueSize"].loc[24] > 10_000
    assert ts["QueueSize"].loc[26] < 500
    # RabbitMQ (header): "the first poison order (here in the first minute) is redelivered until
    # it expires ... and the queue only grows (MessageCount)".
    rabbit = run("mq-integration.yaml", "sources.orders-broker.engine=rabbitmq").timeseries
    assert rabbit["RecordsSucceeded"].loc[1:].sum() == 0
    assert (rabbit["MessageCount"].diff().loc[1:] > 0).all()


def test_msk_ingest_starts_with_one_poller_of_five_invokes() -> None:
    # msk-ingest.yaml's description: "On-demand mode starts with one poller (5 concurrent
    # invokes)". The first five minutes, before the spike, show it: the baseline's 600 events/s
    # keep the one poller's five invokes busy, and no evaluation adds a poller.
    s = run("msk-ingest.yaml", "duration=5m", "warmup=1m").summary
    assert s["kafka_pollers_max"] == 1
    assert s["concurrency_max"] == 5


def test_s3_thumbnails_burst_outruns_twenty_environments() -> None:
    # Thirty minutes: ten minutes into the burst (from minute 20) the throughput, the backlog's
    # growth and the oldest event's ageing are steady; the events reaching the 1-hour age from
    # about minute 80 are their extrapolation.
    r = run("s3-thumbnails.yaml", "duration=30m", "warmup=1m")
    ts = r.timeseries
    assert r.summary["throttles"] > 0  # "During the burst Lambda throttles"
    # "reserved concurrency of 20 handles about 35 images/s": minutes 22-29, saturated; 5 %.
    assert abs(ts["RecordsSucceeded"].loc[22:29].mean() / 60 / 35 - 1) < 0.05
    # "The backlog grows by some 15 events a second": 50 arriving less ~35; 15 % ("some").
    assert abs(per_minute_slope(ts["AsyncQueued"], 22, 29) / 60 / 15 - 1) < 0.15
    # "the oldest waiting event ages by about a minute every minute, so from about minute 80
    # events reach the maximum event age of 1 hour": 10 % on the rate, 5 minutes on the minute.
    ageing = per_minute_slope(ts["AsyncEventAgeMax"], 24, 29)
    assert abs(ageing / 60 - 1) < 0.1
    reaches = 29 + (3600 - ts["AsyncEventAgeMax"].loc[29]) / ageing
    assert abs(reaches - 80) < 5


def test_sns_fanout_audit_has_a_tail_of_minutes_and_the_queues_none() -> None:
    # sns-order-fanout.yaml's header: "audit latency has a tail of minutes while the queues' does
    # not". Six minutes (as in tests/test_scenarios.py): ~360 failed audit invocations, each retried
    # 1 and 2 minutes later, the first retries within the run.
    r = traced(load_scenario(SCENARIOS / "sns-order-fanout.yaml", ["duration=6m", "warmup=1m"]))
    records = r.records[r.records["state"].astype(str) == "succeeded"]
    latency = (records["done_s"] - records["sent_s"]).groupby(records["consumer"]).max()
    audit = latency.filter(like="audit")
    queues = latency.drop(audit.index)
    assert len(audit) == 1
    assert len(queues) == 2
    assert audit.iloc[0] > 60  # a retry a minute later
    assert queues.max() < 10  # the queues' functions never fail: seconds at most


def test_eventbridge_one_percent_arrive_late_the_latest_a_minute() -> None:
    # Full length (a run of about two seconds): the latest event is the hour's maximum.
    s = run("eventbridge-rule.yaml").summary
    # Header: "1 % of hand-offs fail ... about 1 % of events arrive seconds late": hand-off retries
    # per event; binomial over ~85,000 events (sd ~0.03 points): 0.8 to 1.2 %.
    assert 0.008 < s["push_handoff_retries"] / s["records_in"] < 0.012
    # "the latest about a minute late": EventBridge's retry back-off; 30 s to 2 minutes.
    assert 30 < s["latency_max_s"] < 120
    # Seconds late, not more, for the 99th percentile.
    assert s["latency_p99_s"] < 5
    # "none is lost".
    assert s["records_dropped"] == 0
    assert s["records_dlq"] == 0
