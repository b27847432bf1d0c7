"""Hooks for support/fuzz.

Some rules of the APIs relate a value to the service's state or to another field, which JSON
Schema cannot state. Each is documented on its operation and refused with a 4xx naming the
field; a request the fuzzer generates as valid ("positive") is brought within these rules just
before it is sent, so the positive-data check judges what the schema cannot. Requests generated
as invalid are sent as generated (apart from the idempotency keys), so the refusals are tested
too:

- An Idempotency-Key promises "this is the same request again": the command API answers a key
  reused with a different request with 422, as the IETF idempotency-key draft asks. Generated
  requests share generated keys, so every well-formed key is replaced by a fresh one (in every
  request); malformed keys are left as generated, so their refusal is still tested.
- An If-Match names the version the client read, and a generated one is almost never the
  current version: the command is refused with 412 before it is decided. A positive request
  keeps a generated If-Match with an odd version only (so 412 stays tested), and is sent
  without one otherwise, so the command reaches its business rules.
- A time window's `start` is before its `end` (command bodies): `filter_body` keeps bodies
  that break it out of the generated ones (the schema's examples already keep the rule).
- A page `cursor` is opaque and signed: only a cursor the query API issued for the same list
  (route, filters, user) is accepted, anything else is a 400 naming `cursor`. A positive
  request keeps its cursor only if a response issued that cursor for that same list.
- `min_position` (query) and `X-Min-Position` (header) are positions a command answered with;
  one beyond the end of the event log is a 400. So is an as-of `position` beyond the log. A
  positive request's positions are lowered to the highest position an answer has shown.
- The dashboard's `from` is not after `to` and the range holds at most 366 days; `to`
  defaults to today (the as-of day for `/v1/dashboard/as-of`). A positive request that breaks
  it gets `to` = `from` + 29 days, the default range's length.
- The as-of views take exactly one of `date` and `position`: a positive request with both
  keeps `date`, one with neither gets `position`.
- The job list's `from` is not after its `to`: a positive request that has them the other
  way round gets them swapped.

The check `problem_details` holds every 4xx to RFC 9457: `application/problem+json` with the
status repeated in the body, and for 400 and 422 the fields at fault named in `errors` (but
for `malformed-json`, a body that is not JSON at all).
"""

import datetime
import json
import re
import uuid

import schemathesis

WELL_FORMED = re.compile(r"^[\x21-\x7e]{1,200}$")

# The highest position any answer showed; the log reaches at least that far.
_seen_position = 0
# Cursor -> the list it was issued for (see `_list_of`).
_issued_cursors = {}

DASHBOARD_RANGES = ("/v1/dashboard", "/v1/live/dashboard", "/v1/dashboard/as-of")
AS_OF_VIEWS = ("/v1/dashboard/as-of", "/v1/calendar/as-of")
MAX_DASHBOARD_DAYS = 366
DEFAULT_RANGE_DAYS = 29


def _is_positive(case):
    meta = case.meta
    return meta is None or meta.generation.mode.is_positive


def _whole_number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _date(value):
    if not isinstance(value, str):
        return None
    try:
        return datetime.date.fromisoformat(value.strip())
    except ValueError:
        return None


def _list_of(case):
    """The list a cursor belongs to: the path and every parameter but the page's own."""
    query = case.query or {}
    own = {"cursor", "limit", "min_position"}
    filters = tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in query.items() if k not in own))
    return (case.formatted_path, filters)


def _lower_positions(case):
    query = case.query or {}
    value = _whole_number(query.get("min_position"))
    if value is not None and value > _seen_position:
        query["min_position"] = _seen_position
    # An as-of position starts at 1; support/fuzz records an event before the run.
    value = _whole_number(query.get("position"))
    if case.path in AS_OF_VIEWS and value is not None and value > max(_seen_position, 1):
        query["position"] = max(_seen_position, 1)
    headers = case.headers or {}
    for name, value in list(headers.items()):
        number = _whole_number(value)
        if name.lower() == "x-min-position" and number is not None and number > _seen_position:
            headers[name] = str(_seen_position)


def _fewer_stale_versions(case):
    headers = case.headers or {}
    for name, value in list(headers.items()):
        number = _whole_number(str(value).strip('W/"'))
        if name.lower() == "if-match" and number is not None and number % 2 == 0:
            del headers[name]


def _keep_issued_cursor(case):
    query = case.query or {}
    cursor = query.get("cursor")
    if cursor is not None and (not isinstance(cursor, str) or _issued_cursors.get(cursor) != _list_of(case)):
        del query["cursor"]


def _one_as_of_moment(case):
    if case.path not in AS_OF_VIEWS:
        return
    query = case.query if case.query is not None else {}
    if "date" in query and "position" in query:
        del query["position"]
    elif "date" not in query and "position" not in query:
        query["position"] = max(_seen_position, 1)
    case.query = query


def _dashboard_range_in_bounds(case):
    if case.path not in DASHBOARD_RANGES:
        return
    query = case.query or {}
    start, end = _date(query.get("from")), _date(query.get("to"))
    if start is None:
        return  # `from` defaults to 29 days before `to`, or is malformed and refused as such
    if end is None:
        # `to` defaults to today in the business time zone (one day either side of today in
        # UTC); the as-of day is not known here, so there `to` is always given below.
        today = datetime.datetime.now(datetime.timezone.utc).date()
        if case.path != "/v1/dashboard/as-of" and today - start <= datetime.timedelta(days=MAX_DASHBOARD_DAYS - 3):
            return
    elif start <= end and (end - start).days + 1 <= MAX_DASHBOARD_DAYS:
        return
    start = min(start, datetime.date.max - datetime.timedelta(days=DEFAULT_RANGE_DAYS))
    query["from"] = start.isoformat()
    query["to"] = (start + datetime.timedelta(days=DEFAULT_RANGE_DAYS)).isoformat()


def _job_dates_in_order(case):
    if case.path != "/v1/jobs":
        return
    query = case.query or {}
    start, end = _date(query.get("from")), _date(query.get("to"))
    if start is not None and end is not None and start > end:
        query["from"], query["to"] = query["to"], query["from"]


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    headers = case.headers or {}
    for name, value in list(headers.items()):
        if name.lower() == "idempotency-key" and isinstance(value, str) and WELL_FORMED.match(value):
            headers[name] = f"fuzz-{uuid.uuid4()}"
    if _is_positive(case):
        _fewer_stale_versions(case)
        _keep_issued_cursor(case)
        _lower_positions(case)
        _one_as_of_moment(case)
        _dashboard_range_in_bounds(case)
        _job_dates_in_order(case)


@schemathesis.hook
def after_call(ctx, case, response):
    global _seen_position
    for value in response.headers.get("x-position", []):
        if value.strip().isdigit():
            _seen_position = max(_seen_position, int(value))
    body = _json(response)
    if isinstance(body, dict):
        position = body.get("position")
        if isinstance(position, int) and not isinstance(position, bool):
            _seen_position = max(_seen_position, position)
        cursor = body.get("next_cursor")
        if isinstance(cursor, str):
            _issued_cursors[cursor] = _list_of(case)


def _json(response):
    content_type = ";".join(response.headers.get("content-type", []))
    if "json" not in content_type:
        return None
    try:
        return json.loads(response.content)
    except ValueError:
        return None


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


@schemathesis.check
def problem_details(ctx, response, case):
    """Every 4xx is `application/problem+json` (RFC 9457) with its status; 400 and 422 name
    the fields at fault."""
    status = response.status_code
    if not 400 <= status < 500:
        return None
    content_type = ";".join(response.headers.get("content-type", []))
    if content_type.split(";")[0].strip().lower() != "application/problem+json":
        raise AssertionError(f"{status} answered as {content_type or 'no content type'}, not application/problem+json")
    try:
        problem = json.loads(response.content)
    except ValueError as error:
        raise AssertionError(f"{status} problem is not JSON: {error}") from None
    if not isinstance(problem, dict) or problem.get("status") != status:
        raise AssertionError(f"{status} problem does not repeat its status: {response.content[:200]!r}")
    if not isinstance(problem.get("title"), str) or not isinstance(problem.get("type"), str):
        raise AssertionError(f"{status} problem lacks `type` or `title`: {response.content[:200]!r}")
    # A body that is not JSON at all has no field at fault: its problem type says so.
    if status in (400, 422) and not problem["type"].endswith("/malformed-json"):
        errors = problem.get("errors")
        named = isinstance(errors, list) and errors and all(
            isinstance(e, dict) and isinstance(e.get("field"), str) and e["field"] for e in errors
        )
        if not named:
            raise AssertionError(f"{status} problem names no field: {response.content[:300]!r}")
    return None
