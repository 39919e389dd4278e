"""Checks a JSON value against a schema published in /openapi.json (an OpenAPI 3.1 document,
whose schemas are JSON Schema 2020-12), with jsonschema-rs: the validator schemathesis uses."""

from __future__ import annotations

from typing import Any

import jsonschema_rs

DIALECT = "https://json-schema.org/draft/2020-12/schema"  # OpenAPI 3.1's schema dialect


def body_problems(document: dict, schema: dict, value: Any) -> list[str]:
    """Why `value` breaks `schema`, whose references point into the whole `document`."""
    validator = jsonschema_rs.validator_for({"$schema": DIALECT, **schema,
                                             "components": document["components"]})
    return [str(error) for error in validator.iter_errors(value)]
