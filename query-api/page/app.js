// The operations page: reads the query API's /v1 routes with the signed-in user's token and
// follows its server-sent event streams. EventSource cannot send an Authorization header, so
// streams are read with fetch and parsed here; a dropped stream resumes with Last-Event-ID.
// Every value from the server is written with textContent, never parsed as HTML.
"use strict";

const TOKEN_KEY = "simplepro.token";
const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  claims: null,
  week: null, // any ISO date of the shown week
  weekChosen: false, // the user moved the week; until then it follows the business's today
  asOf: null, // the as-of date, or null when live
  streams: new Map(), // name → AbortController
  openThread: null,
};

// --- small helpers ------------------------------------------------------------------------

function isoDate(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

function addDays(iso, days) {
  const [y, m, d] = iso.split("-").map(Number);
  return isoDate(new Date(y, m - 1, d + days));
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function claimsOf(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload.padEnd(payload.length + ((4 - (payload.length % 4)) % 4), "=")));
  } catch {
    return null;
  }
}

class HttpError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
  }
}

async function getJson(path) {
  const answer = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` } });
  const body = await answer.json().catch(() => null);
  if (!answer.ok) {
    if (answer.status === 401) signOut("Your session ended: sign in again.");
    throw new HttpError(answer.status, body);
  }
  return body;
}

function note(id, error) {
  const text = !error
    ? ""
    : error.status === 403
      ? "Your role does not see this."
      : `Could not load: ${error.message}`;
  $(id).textContent = text;
}

// --- live streams -------------------------------------------------------------------------

function setLive(text, stateName) {
  const status = $("live-status");
  status.textContent = text;
  status.dataset.state = stateName;
}

// Follows an SSE route: calls onUpdate with each `update` message's JSON, reconnects with
// Last-Event-ID after a drop (with a growing pause), and stops when its controller aborts.
async function follow(name, path, onUpdate, onError) {
  stopFollowing(name);
  const controller = new AbortController();
  state.streams.set(name, controller);
  let lastId = null;
  let pause = 500;
  while (!controller.signal.aborted) {
    try {
      const headers = { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" };
      if (lastId) headers["Last-Event-ID"] = lastId;
      const answer = await fetch(path, { headers, signal: controller.signal });
      if (!answer.ok) {
        const problem = await answer.json().catch(() => null);
        if (answer.status === 401) return signOut("Your session ended: sign in again.");
        throw new HttpError(answer.status, problem);
      }
      setLive("live", "live");
      pause = 500;
      await readEvents(answer.body, (event) => {
        if (event.id) lastId = event.id;
        if (event.type === "update") onUpdate(JSON.parse(event.data));
      });
    } catch (error) {
      if (controller.signal.aborted) return;
      if (error instanceof HttpError && error.status !== 429 && error.status < 500) {
        onError(error);
        return;
      }
    }
    if (controller.signal.aborted) return;
    setLive("reconnecting…", "reconnecting");
    await new Promise((resolve) => setTimeout(resolve, pause));
    pause = Math.min(pause * 2, 10000);
  }
}

// Parses a text/event-stream body into {type, id, data} messages (comments are heartbeats).
async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = { type: "message", id: null, data: [] };
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event.type = value;
        else if (field === "id") event.id = value;
        else if (field === "data") event.data.push(value);
      }
      if (event.data.length) onEvent({ ...event, data: event.data.join("\n") });
    }
  }
}

function stopFollowing(name) {
  const controller = state.streams.get(name);
  if (controller) controller.abort();
  state.streams.delete(name);
}

function stopAll() {
  for (const name of [...state.streams.keys()]) stopFollowing(name);
  setLive("offline", "off");
}

// --- dashboard ----------------------------------------------------------------------------

function showDashboard(answer) {
  const view = answer.data;
  const today = view.today;
  $("dashboard-title").textContent = state.asOf
    ? `As of the end of ${today.date}`
    : `Today, ${today.date}`;
  $("metric-revenue").textContent = money.format(today.revenue_minor / 100);
  $("metric-completed").textContent = today.jobs_completed;
  $("metric-created").textContent = today.jobs_created;
  $("metric-scheduled").textContent = today.jobs_scheduled;
  $("metric-cancelled").textContent = today.jobs_cancelled;
  $("metric-planned").textContent = today.planned_jobs;
  $("metric-crewed").textContent = today.crewed_jobs;
  $("metric-leads").textContent = today.leads;
  $("revenue-total").textContent = `(${money.format(view.totals.revenue_minor / 100)} in all)`;
  $("dashboard").dataset.position = answer.position;
  drawRevenue(view.days);
  // The browser's date may not be the business's (another time zone): show the business's week.
  if (!state.asOf && !state.weekChosen && state.week !== today.date) {
    state.week = today.date;
    loadCalendar();
  }
  note("dashboard-note", null);
}

// Bars of revenue per day, drawn as SVG so they scale with the card's width.
function drawRevenue(days) {
  const chart = $("revenue-chart");
  const svgNs = "http://www.w3.org/2000/svg";
  const width = 600;
  const height = 160;
  const top = Math.max(1, ...days.map((day) => day.revenue_minor));
  const slot = width / Math.max(1, days.length);
  const svg = document.createElementNS(svgNs, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height + 18}`);
  svg.setAttribute("preserveAspectRatio", "none");
  days.forEach((day, index) => {
    const barHeight = Math.round((day.revenue_minor / top) * height);
    const bar = document.createElementNS(svgNs, "rect");
    bar.setAttribute("x", (index * slot + 1).toFixed(1));
    bar.setAttribute("y", height - barHeight);
    bar.setAttribute("width", Math.max(1, slot - 2).toFixed(1));
    bar.setAttribute("height", Math.max(barHeight, day.revenue_minor > 0 ? 1 : 0));
    bar.setAttribute("class", "bar");
    bar.dataset.date = day.date;
    bar.dataset.revenue = day.revenue_minor;
    const title = document.createElementNS(svgNs, "title");
    title.textContent = `${day.date}: ${money.format(day.revenue_minor / 100)}`;
    bar.appendChild(title);
    svg.appendChild(bar);
  });
  for (const [index, day] of [[0, days[0]], [days.length - 1, days[days.length - 1]]]) {
    if (!day) continue;
    const label = document.createElementNS(svgNs, "text");
    label.setAttribute("x", index === 0 ? 0 : width);
    label.setAttribute("y", height + 14);
    label.setAttribute("text-anchor", index === 0 ? "start" : "end");
    label.textContent = day.date.slice(5);
    svg.appendChild(label);
  }
  chart.replaceChildren(svg);
}

function followDashboard() {
  if (state.claims.role === "crew") {
    note("dashboard-note", { status: 403 });
    return;
  }
  follow("dashboard", "/v1/live/dashboard", showDashboard, (e) => note("dashboard-note", e));
}

async function showAsOf(date) {
  state.asOf = date;
  $("as-of-live").hidden = false;
  stopFollowing("dashboard");
  stopFollowing("calendar");
  try {
    showDashboard(await getJson(`/v1/dashboard/as-of?date=${date}`));
  } catch (error) {
    note("dashboard-note", error);
  }
  state.week = date;
  loadCalendar();
}

function backToLive() {
  state.asOf = null;
  $("as-of-date").value = "";
  $("as-of-live").hidden = true;
  state.week = isoDate(new Date());
  state.weekChosen = false;
  followDashboard();
  loadCalendar();
}

// --- calendar -----------------------------------------------------------------------------

function showWeek(answer) {
  const view = answer.data;
  $("week-label").textContent = `${view.week_start} – ${addDays(view.week_start, 6)}`;
  $("calendar").dataset.position = answer.position;
  const week = $("week");
  week.replaceChildren();
  for (const day of view.days) {
    const column = element("div", "day");
    column.dataset.date = day.date;
    const head = element("h3", null, new Date(`${day.date}T12:00:00`).toLocaleDateString("en-US", {
      weekday: "short", month: "short", day: "numeric",
    }));
    head.appendChild(element("span", "muted", ` ${day.scheduled} job${day.scheduled === 1 ? "" : "s"}`));
    column.appendChild(head);
    const jobs = element("ul", "jobs");
    for (const job of day.jobs) {
      const item = element("li", `job ${job.status}`);
      item.dataset.jobId = job.job_id;
      item.appendChild(element("span", "time", `${job.window.start.slice(0, 5)}–${job.window.end.slice(0, 5)}`));
      item.appendChild(element("span", "customer", job.customer_name));
      item.appendChild(element("span", "service", job.service_type.replace(/_/g, " ")));
      const crew = job.crew.map((member) => member.name).join(", ");
      item.appendChild(element("span", "crew", crew || "no crew yet"));
      if (job.status === "cancelled") item.appendChild(element("span", "tag", "cancelled"));
      jobs.appendChild(item);
    }
    if (!day.jobs.length) jobs.appendChild(element("li", "empty", "—"));
    column.appendChild(jobs);
    week.appendChild(column);
  }
  note("calendar-note", null);
}

async function loadCalendar() {
  if (state.claims.role === "analyst") {
    note("calendar-note", { status: 403 });
    return;
  }
  stopFollowing("calendar");
  if (state.asOf) {
    try {
      showWeek(await getJson(`/v1/calendar/as-of?date=${state.asOf}&week=${state.week}`));
    } catch (error) {
      note("calendar-note", error);
    }
    return;
  }
  follow("calendar", `/v1/live/calendar/week/${state.week}`, showWeek, (e) => note("calendar-note", e));
}

function moveWeek(days) {
  state.weekChosen = true;
  state.week = addDays(state.week, days);
  loadCalendar();
}

// --- inbox --------------------------------------------------------------------------------

function showUnread(answer) {
  const unread = answer.data.unread;
  const badge = $("unread");
  badge.textContent = unread;
  badge.dataset.unread = unread;
  badge.title = `${unread} unread in ${answer.data.unread_threads} of ${answer.data.threads} threads`;
  loadThreads();
}

async function loadThreads() {
  try {
    const page = await getJson("/v1/me/threads?limit=20");
    const list = $("threads");
    list.replaceChildren();
    for (const thread of page.data) {
      const item = element("li", thread.unread > 0 ? "thread unread" : "thread");
      item.dataset.threadId = thread.thread_id;
      const title =
        thread.title || thread.participants.map((p) => p.name).join(", ") || `${thread.kind} thread`;
      const button = element("button", "thread-open");
      button.type = "button";
      button.appendChild(element("span", "title", title));
      if (thread.unread > 0) button.appendChild(element("span", "count", thread.unread));
      button.appendChild(element("span", "preview", thread.preview || ""));
      button.addEventListener("click", () => openThread(thread.thread_id, title));
      item.appendChild(button);
      list.appendChild(item);
    }
    if (!page.data.length) list.appendChild(element("li", "empty", "No conversations yet."));
    note("inbox-note", null);
    if (state.openThread) openThread(state.openThread.id, state.openThread.title);
  } catch (error) {
    note("inbox-note", error);
  }
}

async function openThread(id, title) {
  state.openThread = { id, title };
  try {
    const page = await getJson(`/v1/threads/${id}/messages?limit=50`);
    $("messages").hidden = false;
    $("messages-title").textContent = title;
    const list = $("message-list");
    list.replaceChildren();
    for (const message of page.data) {
      const item = element("li", "message");
      item.appendChild(element("span", "author", message.author_name));
      item.appendChild(element("span", "body", message.body));
      list.appendChild(item);
    }
  } catch (error) {
    note("inbox-note", error);
  }
}

// --- signing in and out -------------------------------------------------------------------

async function signIn(token) {
  const claims = claimsOf(token);
  if (!claims || !claims.sub) throw new Error("that is not an access token");
  state.token = token;
  state.claims = claims;
  try {
    showUnread(await getJson("/v1/me/unread-count"));
  } catch (error) {
    state.token = null;
    throw error;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("sign-in").hidden = true;
  $("board").hidden = false;
  $("sign-out").hidden = false;
  $("who").textContent = `${claims.name || claims.sub} · ${claims.role}`;
  state.week = isoDate(new Date());
  state.weekChosen = false;
  $("as-of-date").max = state.week;
  followDashboard();
  loadCalendar();
  follow("unread", "/v1/live/me/unread-count", showUnread, (e) => note("inbox-note", e));
}

function signOut(reason) {
  stopAll();
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.claims = null;
  state.openThread = null;
  $("board").hidden = true;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = reason || "";
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("sign-in-error").textContent = "";
    try {
      await signIn($("token").value.trim());
      $("token").value = "";
    } catch (error) {
      $("sign-in-error").textContent = `Sign-in refused: ${error.message}`;
    }
  });
  $("sign-out").addEventListener("click", () => signOut());
  $("as-of-date").addEventListener("change", (event) => {
    if (event.target.value) showAsOf(event.target.value);
    else backToLive();
  });
  $("as-of-live").addEventListener("click", backToLive);
  $("week-previous").addEventListener("click", () => moveWeek(-7));
  $("week-next").addEventListener("click", () => moveWeek(7));
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) signIn(saved).catch(() => signOut());
});
