"""Turns a CustomResourceDefinition into the JSON schema tests/deploy/test_k8s.py validates
its objects with, offline (tests/deploy/schemas/):

    .venv/bin/python -m tests.deploy.crd_schema CRD.yaml VERSION > tests/deploy/schemas/NAME.json

The version's openAPIV3Schema, with descriptions dropped (size) and, like kubectl's strict
field validation, unknown fields refused wherever the CRD lists the fields: the API server
would prune them silently, so a field renamed or removed between API versions goes unnoticed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def strict(node: Any) -> Any:
    if isinstance(node, list):
        return [strict(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict(v) for k, v in node.items() if k != "description"}
    if "properties" in node:
        # A map of properties is data, not a schema: keep its keys, whatever they are named.
        out["properties"] = {k: strict(v) for k, v in node["properties"].items()}
        if "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    return out


def schema(crd: dict, version: str) -> dict:
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
    body = strict(served["schema"]["openAPIV3Schema"])
    body["properties"]["apiVersion"] = {"const": f'{crd["spec"]["group"]}/{version}'}
    body["properties"]["kind"] = {"const": crd["spec"]["names"]["kind"]}
    body["required"] = sorted({"apiVersion", "kind", "metadata", *body.get("required", [])})
    return {"$schema": "http://json-schema.org/draft-07/schema#", **body}


if __name__ == "__main__":
    path, version = sys.argv[1:3]
    print(json.dumps(schema(yaml.safe_load(Path(path).read_text()), version), indent=None, sort_keys=True))
