#!/usr/bin/env python3
"""Validates thresholds documents against thresholds.schema.json with Python's jsonschema.

An independent validator for SchemaTests.swift: rollbackd's own loader is the other side of every comparison.

    python3 schema_check.py SCHEMA < request.json > report.json

request: {"files": ["/path/a.json", ...], "documents": ["{...json text...}", ...]}
report:  {"schemaProblems": ["..."],            # the schema itself against the 2020-12 meta-schema
          "files": {"/path/a.json": RESULT}, "documents": [RESULT, ...]}
RESULT:  {"parsed": true, "errors": ["$.triggers[0].automation: 'fulll' is not one of [...]", ...]}
         or {"parsed": false, "errors": ["not JSON: ..."]}

Format assertion is on (so "format": "regex" rejects an invalid regular expression, as the loader does).
"""
import json
import sys

import jsonschema


def check(validator, text):
    try:
        doc = json.loads(text)
    except ValueError as e:
        return {"parsed": False, "errors": ["not JSON: %s" % e]}
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return {"parsed": True, "errors": ["%s: %s" % (e.json_path, e.message) for e in errors]}


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: schema_check.py SCHEMA < request.json")
    with open(sys.argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    cls = jsonschema.Draft202012Validator
    problems = ["%s: %s" % (e.json_path, e.message) for e in cls(cls.META_SCHEMA).iter_errors(schema)]
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    request = json.load(sys.stdin)
    files = {}
    for path in request.get("files", []):
        with open(path, encoding="utf-8") as f:
            files[path] = check(validator, f.read())
    documents = [check(validator, text) for text in request.get("documents", [])]
    json.dump({"schemaProblems": problems, "files": files, "documents": documents}, sys.stdout)


if __name__ == "__main__":
    main()
