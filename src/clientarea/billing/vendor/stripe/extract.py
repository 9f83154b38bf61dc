"""Make ``operations.json`` from Stripe's published OpenAPI description.

    python extract.py path/to/spec3.json [--check]

Keeps, for each operation the Stripe driver uses, only what a request is validated
against: the path's parameters, the query parameters (GET) or form fields (POST) with
their types, enums, length limits and which are required, nested objects included.
Descriptions, response schemas and everything else are left out. ``--check`` compares
the existing ``operations.json`` with what the given spec yields instead of writing it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "operations.json"

# (method, path) of every request the driver makes.
OPERATIONS = (
    ("post", "/v1/customers"),
    ("get", "/v1/customers/{customer}"),
    ("post", "/v1/payment_intents"),
    ("get", "/v1/payment_intents/{intent}"),
    ("get", "/v1/payment_intents/search"),
    ("post", "/v1/payment_intents/{intent}/confirm"),
    ("post", "/v1/payment_intents/{intent}/cancel"),
    ("post", "/v1/setup_intents"),
    ("get", "/v1/setup_intents/{intent}"),
    ("get", "/v1/payment_methods/{payment_method}"),
    ("post", "/v1/payment_methods/{payment_method}/detach"),
    ("post", "/v1/refunds"),
    ("get", "/v1/refunds"),
    ("get", "/v1/refunds/{refund}"),
)


def compact(schema: dict[str, Any]) -> dict[str, Any]:
    """The validating part of one parameter schema, in a small format of our own:
    {"type": string|integer|number|boolean|object|array|any, "enum", "maxLength",
    "properties", "required", "values" (an object's other keys), "items", "anyOf"}."""
    if "anyOf" in schema:
        return {"anyOf": [compact(option) for option in schema["anyOf"]]}
    kind = schema.get("type", "any")
    out: dict[str, Any] = {"type": kind}
    if "enum" in schema:
        out["enum"] = schema["enum"]
    if "maxLength" in schema:
        out["maxLength"] = schema["maxLength"]
    if kind == "object":
        if "properties" in schema:
            out["properties"] = {
                name: compact(sub) for name, sub in sorted(schema["properties"].items())
            }
            out["required"] = sorted(schema.get("required", []))
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            out["values"] = compact(extra)
        elif extra is True or "properties" not in schema:
            out["values"] = {"type": "any"}
    if kind == "array" and "items" in schema:
        out["items"] = compact(schema["items"])
    return out


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    operations: dict[str, Any] = {}
    for method, path in OPERATIONS:
        op = spec["paths"][path][method]
        params = op.get("parameters", [])
        entry: dict[str, Any] = {
            "operationId": op.get("operationId", ""),
            "path_params": sorted(p["name"] for p in params if p["in"] == "path"),
        }
        if method == "get":
            query = [p for p in params if p["in"] == "query"]
            entry["params"] = {p["name"]: compact(p["schema"]) for p in query}
            entry["required"] = sorted(p["name"] for p in query if p.get("required"))
        else:
            content = op["requestBody"]["content"]["application/x-www-form-urlencoded"]
            body = content["schema"]
            entry["params"] = {
                name: compact(sub) for name, sub in sorted(body.get("properties", {}).items())
            }
            entry["required"] = sorted(body.get("required", []))
        operations[f"{method.upper()} {path}"] = entry
    return {"api_version": spec["info"]["version"], "operations": operations}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("spec", type=Path)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    wanted = json.dumps(extract(json.loads(args.spec.read_text())), indent=1, sort_keys=True)
    if args.check:
        if OUT.read_text().strip() != wanted.strip():
            print("operations.json differs from what this spec yields", file=sys.stderr)
            return 1
        print("operations.json matches")
        return 0
    OUT.write_text(wanted + "\n")
    print(f"wrote {OUT.name}: {len(wanted)} characters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
