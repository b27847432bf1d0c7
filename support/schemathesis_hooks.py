"""Hooks for support/fuzz.

An Idempotency-Key promises "this is the same request again": the API answers a key reused
with a different request with 422, as the IETF idempotency-key draft asks. Generated requests
share generated keys, so every well-formed key is replaced by a fresh one before the call;
malformed keys are left as generated, so their refusal is still tested.

One rule of the command bodies relates two fields, which JSON Schema cannot state: a time
window's `start` is before its `end`. A body that breaks it is refused with 422 naming
`window`, as documented; `filter_body` keeps such bodies out of the generated ones (the
schema's examples already keep the rule).
"""

import re
import uuid

import schemathesis

WELL_FORMED = re.compile(r"^[\x21-\x7e]{1,200}$")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    headers = case.headers or {}
    for name, value in list(headers.items()):
        if name.lower() == "idempotency-key" and isinstance(value, str) and WELL_FORMED.match(value):
            headers[name] = f"fuzz-{uuid.uuid4()}"


def _breaks_window_order(body):
    window = body.get("window")
    if not isinstance(window, dict):
        return False
    start, end = window.get("start"), window.get("end")
    if not (isinstance(start, str) and isinstance(end, str)):
        return False
    pad = lambda t: t if len(t) == 8 else t + ":00"
    return pad(start) >= pad(end)


@schemathesis.hook
def filter_body(ctx, body):
    if not isinstance(body, dict):
        return True
    return not _breaks_window_order(body)
