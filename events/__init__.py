"""The event log: what users did, kept so that the model can be fitted on it later.

The service appends one entry per acknowledged POST /users/{id}/interactions in the same
atomic step that moves the user's state (docs/store.md, Events), so the log and the state
never disagree; `python -m training events export` turns it into a dataset the trainer reads
(docs/training.md, Events). This package is torch-free and knows neither the service nor
training: both import it.

    record.py     the event record and its encodings (Redis stream fields, file lines)
    retention.py  GMLREC_EVENTS_RETAIN's grammar: an age or a count
    file_log.py   the in-process log: append-only JSON-lines segments under a directory
    redis_log.py  the Redis log: per-user streams, read from every master, trimmed
    dataset.py    the export's files, written deterministically and atomically
    export.py     export_events(source, out): a log to a dataset
"""
