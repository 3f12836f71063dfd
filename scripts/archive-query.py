#!/usr/bin/env python3
"""Runs a named query over a folder of downloaded archive objects (docs/archive.md).

    .local/duckdb/bin/python scripts/archive-query.py DIR QUERY

DIR holds the archive's keys as folders (readings/dt=YYYY-MM-DD/*.gz, events/dt=.../*.gz),
e.g. from `aws s3 sync s3://<ArchiveBucket>/ DIR`. The rows are printed as one JSON object
per line. Delivery is at least once (as Firehose's), so every query but `duplicates` keeps
one copy per reading id / event id. Install DuckDB with scripts/setup-duckdb.sh.

Queries:
  readings      every accepted reading, once
  events        every stored event, once
  duplicates    raw records vs distinct ids, per archive (what the dedupe removes)
  alerts-per-village-per-week   AlertRaised events by village and ISO week (Monday)
"""
import json
import os
import sys

import duckdb

# One view per archive: each line of each object, with its id, deduplicated by `copy = 1`.
VIEWS = {
    "raw_readings": """
        SELECT json AS record,
               json_extract_string(json, '$.eventId') AS event_id,
               regexp_extract(filename, 'dt=([0-9-]+)', 1) AS dt
        FROM read_ndjson_objects('{dir}/readings/**/*.gz', filename = true)
    """,
    "raw_events": """
        SELECT json AS record,
               json_extract_string(json, '$.dynamodb.NewImage.eventId.S') AS event_id,
               regexp_extract(filename, 'dt=([0-9-]+)', 1) AS dt
        FROM read_ndjson_objects('{dir}/events/**/*.gz', filename = true)
    """,
    "readings": """
        SELECT event_id AS "eventId",
               json_extract_string(record, '$.data.patientId') AS "patientId",
               json_extract_string(record, '$.data.type') AS "type",
               CAST(json_extract(record, '$.data.value') AS DOUBLE) AS "value",
               json_extract_string(record, '$.data.unit') AS "unit",
               json_extract_string(record, '$.data.timestamp') AS "timestamp",
               json_extract_string(record, '$.data.deviceId') AS "deviceId",
               dt
        FROM raw_readings
        QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY dt) = 1
    """,
    "events": """
        SELECT event_id AS "eventId",
               json_extract_string(record, '$.dynamodb.NewImage.streamId.S') AS "streamId",
               CAST(json_extract_string(record, '$.dynamodb.NewImage.version.N') AS BIGINT) AS "version",
               json_extract_string(record, '$.dynamodb.NewImage.eventType.S') AS "eventType",
               json_extract_string(record, '$.dynamodb.NewImage.timestamp.S') AS "timestamp",
               json_extract_string(record, '$.dynamodb.NewImage.data.M.village.S') AS "village",
               dt
        FROM raw_events
        QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY dt) = 1
    """,
}

QUERIES = {
    "readings": 'SELECT * FROM readings ORDER BY "timestamp", "eventId"',
    "events": 'SELECT * FROM events ORDER BY "streamId", "version"',
    "duplicates": """
        SELECT 'readings' AS archive, count(*) AS records, count(DISTINCT event_id) AS ids
        FROM raw_readings
        UNION ALL
        SELECT 'events', count(*), count(DISTINCT event_id) FROM raw_events
    """,
    # The same analysis as Athena's in docs/archive.md.
    "alerts-per-village-per-week": """
        SELECT "village",
               strftime(date_trunc('week', CAST(substr("timestamp", 1, 19) AS TIMESTAMP)), '%Y-%m-%d') AS "week",
               count(*) AS "alerts"
        FROM events
        WHERE "eventType" = 'AlertRaised'
        GROUP BY ALL
        ORDER BY "week", "village"
    """,
}


def main(argv):
    if len(argv) != 3 or argv[2] not in QUERIES:
        sys.stderr.write(__doc__)
        return 2
    folder = os.path.abspath(argv[1]).replace("'", "''")
    db = duckdb.connect()
    for name, sql in VIEWS.items():
        db.execute(f"CREATE VIEW {name} AS {sql.format(dir=folder)}")
    cursor = db.execute(QUERIES[argv[2]])
    columns = [c[0] for c in cursor.description]
    for row in cursor.fetchall():
        print(json.dumps(dict(zip(columns, row)), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
