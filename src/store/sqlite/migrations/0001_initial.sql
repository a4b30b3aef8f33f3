-- The first schema: jobs with their hot fields, and their history as plain
-- rows (attempts, events) that the sqlite3 shell can query directly.
-- Instants are RFC 3339 UTC text with milliseconds ("2026-11-28T12:00:01.513Z"),
-- which sorts and compares correctly as text; durations are integer ms.

CREATE TABLE jobs (
  seq                  INTEGER PRIMARY KEY,  -- insertion order, for listing
  id                   TEXT NOT NULL UNIQUE,
  queue                TEXT NOT NULL,
  type                 TEXT NOT NULL,
  state                TEXT NOT NULL,        -- scheduled|ready|active|retry_wait|completed|dead|cancelled
  payload              BLOB NOT NULL,
  policy               TEXT NOT NULL,        -- canonical retry policy text
  priority             INTEGER NOT NULL DEFAULT 0,
  attempt_count        INTEGER NOT NULL DEFAULT 0,
  created_at           TEXT NOT NULL,
  updated_at           TEXT NOT NULL,
  run_at               TEXT NOT NULL,        -- when it is (or was) next due
  unique_key           TEXT,
  timeout_ms           INTEGER,
  deadline_at          TEXT,
  -- The lease, while active. The fencing token is the attempt number.
  lease_token          INTEGER,
  lease_worker         TEXT,
  lease_expires_at     TEXT,
  -- What the next attempt and the next retry decision need.
  next_trigger         TEXT NOT NULL DEFAULT 'initial',
  seq_start            INTEGER NOT NULL DEFAULT 1,  -- attempt that began the current run of retries
  last_delay_ms        INTEGER NOT NULL DEFAULT 0,  -- delay of the latest retry in that run
  lease_expired_streak INTEGER NOT NULL DEFAULT 0,  -- lease expirations in a row in that run
  replay_budget        INTEGER,                     -- runs a more=N replay allows
  -- The latest error, for filters and dead-letter grouping.
  last_error_class     TEXT,
  last_error_code      TEXT,
  last_error_message   TEXT,
  last_error_signature TEXT,
  -- Why retries stopped (dead and cancelled jobs).
  dead_reason          TEXT,
  dead_at              TEXT,
  dead_evidence        TEXT,                 -- JSON array of strings
  -- The latest manual replay.
  replay_by            TEXT,
  replay_note          TEXT,
  replay_at            TEXT,
  replay_mode          TEXT                  -- fresh | more=N
);

CREATE INDEX jobs_ready ON jobs (queue, priority DESC, run_at, seq) WHERE state = 'ready';
CREATE INDEX jobs_due ON jobs (queue, run_at) WHERE state IN ('scheduled', 'retry_wait');
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state = 'active';
CREATE INDEX jobs_queue_state ON jobs (queue, state, seq);
CREATE INDEX jobs_state_seq ON jobs (state, seq);
CREATE UNIQUE INDEX jobs_unique_live ON jobs (queue, unique_key)
  WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'ready', 'active', 'retry_wait');

CREATE TABLE attempts (
  job_id                  TEXT NOT NULL,
  n                       INTEGER NOT NULL,
  trigger                 TEXT NOT NULL,     -- initial|auto|manual|recovery
  worker                  TEXT NOT NULL,
  started_at              TEXT NOT NULL,
  ended_at                TEXT,
  outcome                 TEXT,              -- succeeded|failed|lease_expired|timed_out
  lateness_ms             INTEGER NOT NULL,
  error_class             TEXT,              -- temporary|permanent
  error_code              TEXT,
  error_message           TEXT,
  error_detail            TEXT,
  error_code_cut_bytes    INTEGER NOT NULL DEFAULT 0,
  error_message_cut_bytes INTEGER NOT NULL DEFAULT 0,
  error_detail_cut_bytes  INTEGER NOT NULL DEFAULT 0,
  action                  TEXT,              -- retry|dead|none
  reason                  TEXT,
  phase                   INTEGER,
  base_delay_ms           INTEGER,
  jitter_ms               INTEGER,
  delay_ms                INTEGER,
  next_run_at             TEXT,
  dead_reason             TEXT,
  PRIMARY KEY (job_id, n)
) WITHOUT ROWID;

CREATE TABLE events (
  job_id     TEXT NOT NULL,
  at         TEXT NOT NULL,
  from_state TEXT,                           -- NULL for the enqueue
  to_state   TEXT,                           -- NULL for an event that changed nothing
  reason     TEXT NOT NULL,
  actor      TEXT NOT NULL,
  note       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_job ON events (job_id);

-- Counters per queue since the store was created (see QueueStats).
CREATE TABLE queue_counters (
  queue TEXT NOT NULL,
  name  TEXT NOT NULL,
  value INTEGER NOT NULL,
  PRIMARY KEY (queue, name)
) WITHOUT ROWID;

-- Every purge and retention trim: what went, by whose hand, why.
CREATE TABLE removals (
  at      TEXT NOT NULL,
  actor   TEXT NOT NULL,                     -- operator, or 'retention'
  queue   TEXT NOT NULL,
  state   TEXT NOT NULL,
  count   INTEGER NOT NULL,
  rule    TEXT NOT NULL,                     -- purge filter or retention rule
  note    TEXT NOT NULL DEFAULT ''
);
