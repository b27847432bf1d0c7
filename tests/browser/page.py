"""The operations page in headless Chromium, against a running system.

Started by the test binary `browser` (`tests/tests/browser.rs`, which starts the services
and registers the users), or by hand with the same environment:

  SIMPLEPRO_QUERY_URL, SIMPLEPRO_COMMAND_URL   the two APIs
  SIMPLEPRO_ADMIN_TOKEN      signs in first: an administrator in the thread
  SIMPLEPRO_PEER_TOKEN       the other participant of the thread, who writes to the admin
  SIMPLEPRO_OUTSIDER_TOKEN   a user who is in no thread
  SIMPLEPRO_CUSTOMER_ID, SIMPLEPRO_CREW_MEMBER_ID, SIMPLEPRO_THREAD_ID,
  SIMPLEPRO_SECRET           a message only the two participants may see
  SIMPLEPRO_SCREENSHOTS      folder for the screenshots (kept as the run's artifacts)
  SIMPLEPRO_CHROMIUM         the browser (default /usr/bin/chromium)

Each step posts a command through the command API and waits for the page to show it without
a reload; the time from the command's answer to the page showing it must stay under 1 s.
Exits non-zero on the first failed check, after a screenshot of the page as it was.
"""

import datetime
import json
import os
import sys
import time
import urllib.error
import urllib.request

from playwright.sync_api import sync_playwright

QUERY = os.environ["SIMPLEPRO_QUERY_URL"]
COMMAND = os.environ["SIMPLEPRO_COMMAND_URL"]
ADMIN = os.environ["SIMPLEPRO_ADMIN_TOKEN"]
PEER = os.environ["SIMPLEPRO_PEER_TOKEN"]
OUTSIDER = os.environ["SIMPLEPRO_OUTSIDER_TOKEN"]
CUSTOMER = os.environ["SIMPLEPRO_CUSTOMER_ID"]
CREW_MEMBER = os.environ["SIMPLEPRO_CREW_MEMBER_ID"]
THREAD = os.environ["SIMPLEPRO_THREAD_ID"]
SECRET = os.environ["SIMPLEPRO_SECRET"]
SHOTS = os.environ.get("SIMPLEPRO_SCREENSHOTS", "target/browser")
CHROMIUM = os.environ.get("SIMPLEPRO_CHROMIUM", "/usr/bin/chromium")
LIVE_WITHIN_MS = 1000


def call(method, url, token, body=None):
    """One HTTP request; (status, JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def command(path, token, body):
    status, answer = call("POST", COMMAND + path, token, body)
    check(200 <= status < 300, f"POST {path} answered {status}: {answer}")
    return answer


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def text(page, selector):
    return page.locator(selector).inner_text().strip()


def shown_within(page, label, expression, argument=None):
    """Waits until `expression` is true in the page; the time it took since now, in ms."""
    started = time.monotonic()
    page.wait_for_function(expression, arg=argument, timeout=10_000, polling="raf")
    elapsed = (time.monotonic() - started) * 1000
    print(f"  {label}: shown {elapsed:.0f} ms after the command was accepted")
    check(elapsed < LIVE_WITHIN_MS, f"{label}: {elapsed:.0f} ms, not within {LIVE_WITHIN_MS} ms")
    return elapsed


def sign_in(page, token):
    page.goto(QUERY + "/app/")
    page.fill("#token", token)
    page.click("#sign-in-form button[type=submit]")
    page.wait_for_selector("#board:not([hidden])")
    page.wait_for_selector("#live-status[data-state=live]")


def shot(page, name):
    path = os.path.join(SHOTS, f"{name}.png")
    page.screenshot(path=path, full_page=True)
    print(f"  screenshot {path}")


def live_updates(page):
    """A new job, its schedule, its revenue and a message reach the page without a reload."""
    page.wait_for_function("document.getElementById('metric-created').textContent !== '–'")
    # The business's today, which may not be this machine's date.
    today = page.locator("#dashboard-title").inner_text().split(", ")[-1]
    page.wait_for_function("d => !!document.querySelector(`#week .day[data-date=\"${d}\"]`)",
                           arg=today)
    created = int(text(page, "#metric-created"))
    unread = int(text(page, "#unread"))
    page.evaluate("window.__notReloaded = true")

    job = command("/v1/jobs", ADMIN, {
        "customer_id": CUSTOMER, "service_type": "local_move",
        "origin": {"line1": "1 Main St", "city": "Springfield"},
        "destination": {"line1": "2 Oak Ave", "city": "Springfield"},
        "estimated_price": {"amount_minor": 125000, "currency": "USD"},
    })
    shown_within(page, "a job created",
                 "n => document.getElementById('metric-created').textContent === String(n)",
                 created + 1)

    job_path = f"/v1/jobs/{job['aggregate_id']}"
    command(f"{job_path}/crew", ADMIN, {"crew_member_id": CREW_MEMBER})
    command(f"{job_path}/schedule", ADMIN,
            {"date": today, "window": {"start": "08:00", "end": "12:00"}})
    shown_within(page, "the job in this week's calendar",
                 "id => !!document.querySelector(`#week [data-job-id=\"${id}\"]`)",
                 job["aggregate_id"])

    command(f"{job_path}/start", ADMIN, None)
    command(f"{job_path}/complete", ADMIN,
            {"actual_revenue": {"amount_minor": 131_500, "currency": "USD"}})
    shown_within(page, "its revenue on the dashboard",
                 "() => document.getElementById('metric-revenue').textContent === '$1,315.00'")
    bar = page.locator(f"#revenue-chart rect[data-date='{today}']")
    check(bar.get_attribute("data-revenue") == "131500", "today's bar shows the revenue")

    command(f"/v1/threads/{THREAD}/messages", PEER, {"body": SECRET})
    shown_within(page, "an unread message",
                 "n => document.getElementById('unread').textContent === String(n)", unread + 1)
    page.wait_for_selector(f"#threads [data-thread-id='{THREAD}'].unread")
    check(page.evaluate("window.__notReloaded === true"), "the page was reloaded")
    page.click(f"#threads [data-thread-id='{THREAD}'] button")
    page.wait_for_function("s => document.getElementById('message-list').textContent.includes(s)",
                           arg=SECRET)
    shot(page, "1-live")
    return created + 1


def as_of(page):
    """The date picker shows the dashboard as the API answers it as of that date."""
    today = page.locator("#dashboard-title").inner_text().split(", ")[-1]
    yesterday = (datetime.date.fromisoformat(today) - datetime.timedelta(days=1)).isoformat()
    for date in (yesterday, today):
        status, expected = call("GET", f"{QUERY}/v1/dashboard/as-of?date={date}", ADMIN)
        check(status == 200, f"as-of {date} answered {status}: {expected}")
        page.fill("#as-of-date", date)
        page.dispatch_event("#as-of-date", "change")
        page.wait_for_function(
            "d => document.getElementById('dashboard-title').textContent.endsWith(d)", arg=date)
        page.wait_for_function(
            "p => document.getElementById('dashboard').dataset.position === String(p)",
            arg=expected["position"])
        shown = int(text(page, "#metric-created"))
        wanted = expected["data"]["today"]["jobs_created"]
        check(shown == wanted, f"as of {date} the page shows {shown} jobs created, the API {wanted}")
        print(f"  as of {date}: {shown} jobs created, position {expected['position']}")
        shot(page, f"2-as-of-{date}")
    page.click("#as-of-live")
    page.wait_for_function(
        "d => document.getElementById('dashboard-title').textContent.startsWith('Today')")


def outsider_sees_nothing(browser):
    """A second user, at phone width, sees an empty inbox and cannot open the thread."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    page = context.new_page()
    sign_in(page, OUTSIDER)
    page.wait_for_selector("#threads .empty")
    check(text(page, "#unread") == "0", f"the outsider has {text(page, '#unread')} unread")
    content = page.content()
    check(THREAD not in content, "the outsider's page names the thread")
    check(SECRET not in content, "the outsider's page shows the message")
    status = page.evaluate(
        """async ([thread, token]) => (await fetch(`/v1/threads/${thread}/messages`,
               {headers: {Authorization: `Bearer ${token}`}})).status""",
        [THREAD, OUTSIDER])
    check(status in (403, 404), f"the outsider read the thread's messages: {status}")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    check(overflow <= 0, f"the page is {overflow} px wider than a phone")
    print(f"  outsider: empty inbox, thread answered {status}, fits {390} px")
    shot(page, "3-outsider-phone")
    context.close()


def main():
    os.makedirs(SHOTS, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            print("live updates")
            sign_in(page, ADMIN)
            live_updates(page)
            print("as of a date")
            as_of(page)
            print("another user")
            outsider_sees_nothing(browser)
            check(not errors, f"script errors on the page: {errors}")
        except Exception:
            shot(page, "failed")
            raise
        finally:
            browser.close()
    print("the page passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
