-- A job's history in order without a second copy of what its attempts say.
--
-- Every entry of a job's history now has a position (1, 2, ...), counted in
-- jobs.history_len. The claim of an attempt and the move that ended it are
-- no longer stored as event rows: the attempt's row holds their positions
-- (and the end's target state, reason and actor), and the view `history`
-- gives the whole timeline, stored events and implied ones, by position.
-- Events become a WITHOUT ROWID table keyed by (job_id, pos): one b-tree
-- write per event instead of two (the table and its job_id index).

CREATE TABLE events_by_pos (
  job_id     TEXT NOT NULL,
  pos        INTEGER NOT NULL,               -- place in the job's history, from 1
  at         TEXT NOT NULL,
  from_state TEXT,                           -- NULL for the enqueue
  to_state   TEXT,                           -- NULL for an event that changed nothing
  reason     TEXT NOT NULL,
  actor      TEXT NOT NULL,
  note       TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (job_id, pos)
) WITHOUT ROWID;

INSERT INTO events_by_pos (job_id, pos, at, from_state, to_state, reason, actor, note)
  SELECT job_id, row_number() OVER (PARTITION BY job_id ORDER BY rowid), at, from_state,
         to_state, reason, actor, note
  FROM events;
DROP TABLE events;
ALTER TABLE events_by_pos RENAME TO events;

ALTER TABLE jobs ADD COLUMN history_len INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET history_len = (SELECT count(*) FROM events WHERE events.job_id = jobs.id);

-- NULL in rows written before this migration: their claim and end are event rows.
ALTER TABLE attempts ADD COLUMN claimed_pos INTEGER;  -- position of the attempt's 'claimed'
ALTER TABLE attempts ADD COLUMN end_pos INTEGER;      -- position of the move that ended it
ALTER TABLE attempts ADD COLUMN end_to TEXT;          -- the state it moved the job to
ALTER TABLE attempts ADD COLUMN end_event TEXT;       -- succeeded, retry_scheduled, dead, lease_expired, released
ALTER TABLE attempts ADD COLUMN end_actor TEXT;       -- NULL: the attempt's own worker

-- Every event of every job: query a job's timeline with ORDER BY pos.
CREATE VIEW history (job_id, pos, at, from_state, to_state, reason, actor, note) AS
  SELECT job_id, pos, at, from_state, to_state, reason, actor, note FROM events
  UNION ALL
  SELECT job_id, claimed_pos, started_at, 'ready', 'active', 'claimed', worker,
         'attempt ' || n || ' (' || trigger || ')'
  FROM attempts WHERE claimed_pos IS NOT NULL
  UNION ALL
  SELECT job_id, end_pos, ended_at, 'active', end_to, end_event, coalesce(end_actor, worker),
         CASE WHEN outcome = 'succeeded' THEN '' ELSE reason END
  FROM attempts WHERE end_pos IS NOT NULL;
