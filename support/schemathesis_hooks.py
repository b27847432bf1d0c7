"""Hooks for support/fuzz.

An Idempotency-Key promises "this is the same request again": the API answers a key reused
with a different request with 422, as the IETF idempotency-key draft asks. Generated requests
share generated keys, so every well-formed key is replaced by a fresh one before the call;
malformed keys are left as generated, so their refusal is still tested.
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
