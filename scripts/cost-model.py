#!/usr/bin/env python3
"""Cost model (issue 15): $ per million readings and per thousand alerts, from the JSON of
`./dev bench load --json` (request counts by function, counted by the proxy in front of the
emulator, and the functions' measured Lambda GB-seconds), at published us-east-1 prices;
and the same pipeline written naively (one DynamoDB write and read per reading, Lambda per
reading), computed from its request counts, each invocation as long as the measured mean of
an ingest invocation carrying one reading.

    ./dev bench cost target/bench-results/load-batch1.json [more.json ...]
    python3 scripts/cost-model.py --self-test

Assumptions (printed with the table, see docs/performance.md):
- Reading path = API Gateway requests, IngestFunction and DetectFunction (Lambda requests and
  GB-seconds), Kinesis PUT payload units (one per reading, records <= 25 KB) and shard hours
  (a shard used at its full 1,000 records/s), and their DynamoDB requests except those
  naming the events, idempotency or directory tables (the alerts'). Everything else (the alert's event appends, SNS, SQS, route,
  notify, emergency, project...) is the alert path, charged per alert. SMS is not included.
- DynamoDB on-demand: one request unit per request (items <= 1 KB written, <= 4 KB read);
  a TransactWriteItems request as TRANSACT_WRU (two items at two units each). Larger items
  cost more units: these are lower bounds for DynamoDB.
- Lambda GB-seconds are the measured durations of the local run (debug builds against the
  emulator on a shared 2-core machine): upper bounds of what arm64 release builds on AWS use.
"""

import json
import sys

# us-east-1 list prices as published by AWS (aws.amazon.com/<service>/pricing), as last
# known to the author on 2026-12-01 (no network access to re-check them here).
PRICES = {
    "lambda_request": 0.20 / 1e6,  # per request
    "lambda_gb_second_arm64": 0.0000133334,  # per GB-second, first 7.5 billion GB-s/month
    "dynamodb_wru": 0.625 / 1e6,  # on-demand write request unit (since 2024-11-01)
    "dynamodb_rru": 0.125 / 1e6,  # on-demand read request unit
    "kinesis_put_unit": 0.014 / 1e6,  # PUT payload unit (25 KB), provisioned mode
    "kinesis_shard_hour": 0.015,  # provisioned shard hour
    "sns_publish": 0.50 / 1e6,  # standard topic publish (SQS deliveries free)
    "sqs_request": 0.40 / 1e6,  # standard queue request
    "http_api_request": 1.00 / 1e6,  # API Gateway HTTP API, first 300 million
}
TRANSACT_WRU = 4
SHARD_RECORDS_PER_HOUR = 1000 * 3600
READING_FUNCTIONS = ("IngestFunction", "DetectFunction")
DYNAMO_READS = ("Get", "Query", "Scan", "BatchGet", "TransactGet", "Describe", "List")


def split(key):
    """`caller service operation [table]` -> its four parts."""
    parts = key.split(" ")
    return (parts + [""] * 4)[:4]


def request_cost(service, operation, n):
    if service == "dynamodb":
        if operation.startswith(DYNAMO_READS):
            return n * PRICES["dynamodb_rru"]
        units = TRANSACT_WRU if operation == "TransactWriteItems" else 1
        return n * units * PRICES["dynamodb_wru"]
    if service == "sns" and operation == "Publish":
        return n * PRICES["sns_publish"]
    if service == "sqs":
        return n * PRICES["sqs_request"]
    # Kinesis is charged per record (PUT payload units), below; CloudWatch etc. ignored.
    return 0.0


def costs(run):
    """(reading path $, alert path $, readings, alerts, breakdown) of one load run."""
    readings = run["readingsAccepted"]
    alerts = run["latencyMs"]["alertsStored"]
    reading = {"api": 0.0, "lambda": 0.0, "kinesis": 0.0, "dynamodb": 0.0}
    alert = {"lambda": 0.0, "dynamodb": 0.0, "sns": 0.0, "sqs": 0.0}
    for key, n in run["requestsByFunction"].items():
        caller, service, operation, table = split(key)
        dollars = request_cost(service, operation, n)
        on_reading_path = caller in READING_FUNCTIONS and not any(
            t in table for t in ("EventsTable", "IdempotencyTable", "DirectoryTable")
        )
        if service == "dynamodb":
            (reading if on_reading_path else alert)["dynamodb"] += dollars
        elif service in ("sns", "sqs"):
            alert[service] += dollars
    requests = readings / run["pattern"]["readingsPerRequest"]
    reading["api"] = requests * PRICES["http_api_request"]
    reading["kinesis"] = readings * (
        PRICES["kinesis_put_unit"] + PRICES["kinesis_shard_hour"] / SHARD_RECORDS_PER_HOUR
    )
    for name, f in run["functions"].items():
        dollars = (
            f["invocations"] * PRICES["lambda_request"]
            + f["gbSeconds"] * PRICES["lambda_gb_second_arm64"]
        )
        (reading if name in READING_FUNCTIONS else alert)["lambda"] += dollars
    return reading, alert, readings, alerts


def one_reading_invocation_gb_s(runs):
    """GB-seconds of one ingest invocation carrying one reading: the mean of the runs with
    one reading per request (else of all runs' ingest invocations)."""
    single = [r for r in runs if r["pattern"]["readingsPerRequest"] == 1] or runs
    seconds = sum(r["functions"]["IngestFunction"]["gbSeconds"] for r in single)
    count = sum(r["functions"]["IngestFunction"]["invocations"] for r in single)
    return seconds / max(count, 1)


def naive(gb_s_per_invocation):
    """The same readings, naively: one request, one ingest and one detect invocation (each
    `gb_s_per_invocation`), one Kinesis record, one DynamoDB state read and one write per
    reading. $ per reading."""
    per_reading = (
        PRICES["http_api_request"]
        + 2 * (PRICES["lambda_request"] + gb_s_per_invocation * PRICES["lambda_gb_second_arm64"])
        + PRICES["kinesis_put_unit"]
        + PRICES["kinesis_shard_hour"] / SHARD_RECORDS_PER_HOUR
        + PRICES["dynamodb_wru"]
        + PRICES["dynamodb_rru"]
    )
    return per_reading


def table(runs):
    per_naive = naive(one_reading_invocation_gb_s(runs))
    lines = [
        "| Pattern (readings per request) | Readings | Alerts | $ per million readings (reading path) | of which Lambda / API / Kinesis / DynamoDB | $ per thousand alerts (alert path) | Naive pipeline, $ per million readings |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        reading, alert, readings, alerts = costs(run)
        per_million = sum(reading.values()) / readings * 1e6 if readings else 0.0
        split_ = " / ".join(f"{reading[k] / readings * 1e6:.2f}" for k in ("lambda", "api", "kinesis", "dynamodb")) if readings else "-"
        per_thousand = sum(alert.values()) / alerts * 1e3 if alerts else float("nan")
        lines.append(
            f"| {run['pattern']['readingsPerRequest']} | {readings} | {alerts} | {per_million:.2f} | {split_} | {per_thousand:.2f} | {per_naive * 1e6:.2f} |"
        )
    return "\n".join(lines)


def self_test():
    run = {
        "readingsAccepted": 1000,
        "pattern": {"readingsPerRequest": 250},
        "latencyMs": {"alertsStored": 10},
        "requestsByFunction": {
            "DetectFunction dynamodb PutItem s-PatientStateTable": 20,
            "DetectFunction dynamodb TransactWriteItems s-EventsTable+s-all": 10,
            "RouteFunction sqs SendMessage": 10,
            "IngestFunction kinesis PutRecords": 4,
        },
        "functions": {
            "IngestFunction": {"invocations": 4, "gbSeconds": 0.5},
            "DetectFunction": {"invocations": 10, "gbSeconds": 1.0},
            "RouteFunction": {"invocations": 10, "gbSeconds": 0.25},
        },
    }
    reading, alert, readings, alerts = costs(run)
    close = lambda a, b: abs(a - b) < 1e-12
    assert close(reading["dynamodb"], 20 * 0.625e-6)
    assert close(alert["dynamodb"], 10 * TRANSACT_WRU * 0.625e-6)
    assert close(alert["sqs"], 10 * 0.40e-6)
    assert close(reading["api"], 4 * 1e-6)
    assert close(reading["lambda"], 14 * 0.2e-6 + 1.5 * 0.0000133334)
    assert close(alert["lambda"], 10 * 0.2e-6 + 0.25 * 0.0000133334)
    assert close(reading["kinesis"], 1000 * (0.014e-6 + 0.015 / 3.6e6))
    assert (readings, alerts) == (1000, 10)
    assert close(one_reading_invocation_gb_s([run]), 0.125)
    assert close(naive(0.125), 1e-6 + 2 * (0.2e-6 + 0.125 * 0.0000133334) + 0.014e-6 + 0.015 / 3.6e6 + 0.625e-6 + 0.125e-6)
    print("cost model self-test: ok")


def main(args):
    if args == ["--self-test"]:
        self_test()
        return 0
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    runs = []
    for path in args:
        with open(path) as f:
            runs.append(json.load(f))
    print(table(runs))
    print()
    print("Prices (us-east-1, list, as last known on 2026-12-01): " + ", ".join(f"{k} {v:g}" for k, v in PRICES.items()))
    print(f"TransactWriteItems = {TRANSACT_WRU} WRU; one unit per other DynamoDB request; Kinesis shard hours at {SHARD_RECORDS_PER_HOUR} records/shard-hour; SMS excluded.")
    for run in runs:
        print(f"  from: {run.get('command', '?')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
