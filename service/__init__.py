"""gmlrec serving API (FastAPI). It carries no torch and never imports `training`: it reads
exported model bundles through the top-level `bundle` package only.

    app.py           wiring: routes, middleware, error handlers, the lifespan of a worker
    settings.py      every GMLREC_* setting
    access.py        who may call what: API keys, scopes, the route policies, secure default
    routes/          one module per resource: scoring, users, items, operations, explorer
    static/          the explorer page (HTML, JavaScript, CSS) served at /
    schemas.py       request and answer bodies with their limits
    user_state.py    where a request's user state comes from; profile and interaction writes
    served_model.py  one loaded bundle version: states, scores, top n, catalog; its self-check
    profiles.py      profiles, overrides and context -> feature rows, and the ignored values
    reload.py        which version serves: load the newest, refuse a broken one, watch
    ranking.py       whole-catalog top n: inline, in a thread, or batched across users
    filters.py       POST /recommend's filter: which items an answer may hold
    stores/          the user store: in process, Redis, Redis Cluster; the failure guard
    state_blob.py    a cached state as bytes, tagged with the profile (and window) it came
                     from, with a history model's pair sums
    gate.py          admission: how many requests work at once
    deps.py          what routes receive (the model of the request, the users, the ranker)
    errors.py  middleware.py  logs.py  metrics.py
"""
