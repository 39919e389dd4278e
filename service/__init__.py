"""gmlrec serving API (FastAPI): recommendations from exported model bundles.

It carries no torch and never imports `training`: it reads exported model bundles through
the top-level `bundle` package only.

    app.py               wiring: routes, middleware, error handlers, the lifespan of a worker
    settings.py          every GMLREC_* setting, and every start-up safety rule
    keys.py              API keys: read, digested, minted; their scopes
    access.py            each route's access policy (needs(scope), OPEN), held per request
    loopback.py          without keys, this machine only: the address rule, the per-request guard
    route_audit.py       every route declares exactly one access policy
    limits.py            the request limits that are settings: held per request, published
    openapi.py           /openapi.json as this server publishes it (limits, access, the model)
    model_schema.py      the published schema fitted to the served model's fields
    routes/              one module per resource: score, recommend, users, items, model,
                         operations, the explorer page
    static/              the explorer page (HTML, JavaScript, CSS) served at /
    schemas.py           request and answer bodies with their limits
    deps.py              what routes receive (the model of the request, the users, the bodies)
    user_state.py        where a request's user state comes from; profile and interaction writes
    served_model.py      one loaded bundle version: states, scores, top n, and its parts:
    catalog.py             its items, as answers show them
    training_users.py      its training users: profiles, windows, seen items
    model_description.py   what it tells clients of itself (GET /model, the request fields)
    profiles.py            profiles, overrides and context -> feature rows, ignored values
    self_check.py        the check a version passes before it serves
    reload.py            which version serves: load the newest, refuse a broken one, watch
    ranking.py           whole-catalog top n: inline, in a thread, or batched across users
    filters.py           POST /recommend's filter: which items an answer may hold
    stores/              the store (users and the catalog overlay): in process, Redis, Redis
                         Cluster; the failure guard
    overlay.py           the catalog overlay: added items, retired ids, a version
    overlay_feed.py      each worker's newest overlay, followed in the store's change log
    catalog_pages.py     GET /items' pages and their cursors
    state_blob.py        a cached state as bytes, tagged with the profile (and window) it came
                         from, with a history model's pair sums
    gate.py              admission: how many requests work at once
    errors.py            the errors the service answers with
    problems.py          their bodies, one model per shape (written and published alike)
    error_responses.py   the error answers each route declares in /openapi.json
    error_handlers.py    how each error becomes an answer
    safe_json.py         JSON answers any client text can be written into
    request_context.py   a request id on every log line, the access line, the request's timing
    body_limit.py        a 413 for a body over the limit, before any route reads it
    logs.py  metrics.py  JSON-lines logging; Prometheus metrics
"""
