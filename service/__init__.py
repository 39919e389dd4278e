"""gmlrec serving API (FastAPI). It carries no torch and never imports `training`: it reads
exported model bundles only.

    app.py          wiring: routes, middleware, error handlers, the lifespan of a worker
    settings.py     every GMLREC_* setting
    routes/         one module per resource: scoring, users, items, operations, explorer
    static/         the explorer page (HTML, JavaScript, CSS) served at /
    schemas.py      request and answer bodies with their limits
    users.py        where a request's user state comes from; profile and interaction writes
    model_host.py   the one adapter to service.bundle, and hot reload
    ranking.py      whole-catalog top n: inline, in a thread, or batched across users
    stores/         the user store: in process, Redis, Redis Cluster; the failure guard
    state_blob.py   a cached state as bytes, tagged with the profile it came from
    gate.py         admission: how many requests work at once
    deps.py         what routes receive (the model of the request, the users, the ranker)
    errors.py  middleware.py  logs.py  metrics.py
    bundle/         the bundle format, its reader and scorers (numpy, onnxruntime)
"""
