// Live updates for Mirror pages over the Channels WebSocket.
// Messages are telemetry event records {env, lane, session_id, sequence, type, event_time, payload}
// and, on the overview, feed health reports {type: "feed_health", feed, status, ...}.
// Delivery is at-most-once; gaps and reconnects are backfilled from the REST API (below).
(function () {
  "use strict";
  const indicator = () => document.getElementById("live-status");

  function setState(state) {
    const el = indicator();
    if (el) { el.dataset.state = state; el.textContent = "live: " + state; }
  }

  function applyStateChange(event) {
    document.querySelectorAll('[data-session="' + CSS.escape(event.session_id) + '"]').forEach((row) => {
      const status = row.querySelector('[data-role="status"]');
      if (status) {
        status.textContent = event.payload.to;
        status.className = "status status-" + event.payload.to;
      }
      const when = event.event_time.replace("T", " ").slice(0, 19);
      if (event.payload.action === "start") {
        const cell = row.querySelector('[data-role="started"]');
        if (cell) cell.textContent = when;
      }
      if (event.payload.to === "completed" || event.payload.to === "aborted") {
        const cell = row.querySelector('[data-role="ended"]');
        if (cell) cell.textContent = when;
      }
    });
  }

  // Feed health reports {type: "feed_health", feed, status, last_tick_age_ms, rows_total, ...}:
  // update the feed's row on the overview; a feed not shown yet needs the server's markup.
  function applyFeedHealth(report) {
    const row = document.querySelector('[data-feed="' + CSS.escape(report.feed) + '"]');
    if (!row) {
      if (document.getElementById("feed-rows")) window.location.reload();
      return;
    }
    const set = (role, text) => {
      const cell = row.querySelector('[data-role="' + role + '"]');
      if (cell) cell.textContent = text;
    };
    const status = row.querySelector('[data-role="feed-status"]');
    if (status) {
      status.textContent = report.status;
      status.className = "status feed-" + report.status;
    }
    set("age", report.last_tick_age_ms === null ? "\u2014" : report.last_tick_age_ms.toLocaleString("en-US") + " ms");
    set("rows", report.rows_total.toLocaleString("en-US"));
    set("gaps", String(report.gaps));
    const glitches = Object.entries(report.glitches || {}).map(([k, n]) => k + ": " + n).join(", ");
    set("glitches", glitches || "\u2014");
    set("restarts", String(report.restarts));
    set("reported", report.event_time.replace("T", " ").slice(0, 19));
    set("detail", report.detail);
  }

  // Session health {type: "session_health", session_id, status, step_lag_ms, steps_per_min,
  // last_step_at, last_fault, kill_switch {state, scope, reason}, cooldown {active, until, reason}},
  // pushed every second: the same cells the server rendered (templatetags/health.py).
  function text(tag, cls, content, title) {
    const el = document.createElement(tag);
    if (cls) el.className = cls;
    el.textContent = content;
    if (title) el.title = title;
    return el;
  }

  function applyHealth(h) {
    const id = CSS.escape(h.session_id);
    document.querySelectorAll('[data-session="' + id + '"], [data-health-of="' + id + '"]').forEach((row) => {
      const cell = (role) => row.querySelector('[data-role="' + role + '"]');
      const put = (role, node) => { const c = cell(role); if (c) c.replaceChildren(node); };
      const lag = cell("lag");
      if (lag) lag.textContent = h.step_lag_ms === null ? "\u2014" : Math.round(h.step_lag_ms).toLocaleString("en-US") + " ms";
      const rate = cell("rate");
      if (rate) rate.textContent = h.steps_per_min === null ? "\u2014" : h.steps_per_min.toLocaleString("en-US") + "/min";
      const last = cell("last-step");
      if (last) last.textContent = h.last_step_at ? h.last_step_at.slice(11, 19) : "\u2014";
      const sw = h.kill_switch;
      put("switch", sw.state === "active" ? text("span", "muted", "active")
        : text("span", "status switch-" + sw.state, sw.state + " \u00b7 " + sw.scope, sw.reason));
      const cd = h.cooldown;
      put("cooldown", cd.active ? text("span", "status cooldown-on", "until " + cd.until.slice(11, 19) + "Z", cd.reason)
        : text("span", "muted", "\u2014"));
      put("fault", h.last_fault ? text("span", "status fault", h.last_fault.slice(0, 60), h.last_fault + " at " + h.last_fault_at)
        : text("span", "muted", "\u2014"));
      const status = cell("status");
      if (status && status.textContent !== h.status) {
        status.textContent = h.status;
        status.className = "status status-" + h.status;
      }
    });
  }

  // Nothing lost: each telemetry message carries its session's sequence number. The page
  // knows the last one it rendered (data-last-seq); a message further on than the next one
  // means the socket lost some, and a reconnect may have missed any: those are fetched from
  // /api/v1/sessions/<id>/events/?after=<last> (the same recipe as ifns_paper/client.py).
  // Messages are handled one at a time, in arrival order, so a fetch never races them.
  const lastSeq = new Map();
  document.querySelectorAll("[data-last-seq]").forEach((el) => {
    lastSeq.set(el.dataset.session, Number(el.dataset.lastSeq));
  });
  let queue = Promise.resolve();

  // The event stream's rows are rendered by the server (readable, the raw JSON one click
  // away): the table asks for what came after its newest row, with its filters; one fetch
  // at a time, again if more came meanwhile. Nothing is built from the message itself, so
  // the table can neither skip nor repeat an event whatever the socket did.
  const streams = new Map();  // session id -> {busy, again}
  function eventsTable(sessionId) {
    return document.querySelector('#events[data-events-of="' + CSS.escape(sessionId) + '"]');
  }
  function filterQuery() {
    const form = document.getElementById("event-filters");
    if (!form) return "";
    const params = new URLSearchParams(new FormData(form));
    for (const [k, v] of Array.from(params.entries())) if (!v) params.delete(k);
    const q = params.toString();
    return q ? "&" + q : "";
  }
  async function refreshEvents(sessionId) {
    const table = eventsTable(sessionId);
    if (!table) return;
    const state = streams.get(sessionId) || { busy: false, again: false };
    streams.set(sessionId, state);
    if (state.busy) { state.again = true; return; }
    state.busy = true;
    try {
      do {
        state.again = false;
        const newest = table.tBodies[0].querySelector("tr[data-sequence]");
        const after = newest ? newest.dataset.sequence : "0";
        const response = await fetch(table.dataset.rowsUrl + "?after=" + after + filterQuery(), { credentials: "same-origin" });
        if (!response.ok) break;
        const html = (await response.text()).trim();
        if (html) {
          table.tBodies[0].querySelectorAll("tr:not([data-sequence]):not(.more-row)").forEach((r) => r.remove());
          table.tBodies[0].insertAdjacentHTML("afterbegin", html);
          table.dataset.newest = table.tBodies[0].querySelector("tr[data-sequence]").dataset.sequence;
        }
      } while (state.again);
    } finally {
      state.busy = false;
    }
  }
  // The header's kill-switch banner: fetched again when a switch may have changed.
  let bannerBusy = false;
  const switchSeen = new Map();
  async function refreshBanner() {
    const holder = document.getElementById("controls-banner");
    if (!holder || bannerBusy) return;
    bannerBusy = true;
    try {
      const response = await fetch(holder.dataset.src, { credentials: "same-origin" });
      if (response.ok) holder.innerHTML = await response.text();
    } finally {
      bannerBusy = false;
    }
  }
  function watchSwitch(h) {
    const signature = h.kill_switch.state + "|" + (h.kill_switch.scope || "");
    const before = switchSeen.get(h.session_id);
    switchSeen.set(h.session_id, signature);
    if (before !== undefined && before !== signature) refreshBanner();
  }

  function money(x, currency, signed) {
    if (x === null || x === undefined) return "\u2014";
    const text = Math.abs(x).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    const sign = x > 0 ? (signed ? "+" : "") : x < 0 ? "\u2212" : "";
    return sign + text + (currency ? " " + currency : "");
  }
  function signClass(x) { return x > 0 ? "up" : x < 0 ? "down" : "flat"; }
  function applyBook(h) {  // live figures of the last step's book: overview rows, drill-down stats
    if (h.pnl === null || h.pnl === undefined) return;
    const id = CSS.escape(h.session_id);
    document.querySelectorAll('[data-session="' + id + '"][data-currency], [data-health-of="' + id + '"][data-currency]').forEach((row) => {
      const currency = row.dataset.currency, capital = Number(row.dataset.capital);
      const pnl = row.querySelector('[data-role="pnl"]');
      if (pnl) { pnl.textContent = money(h.pnl, currency, true); pnl.dataset.value = String(h.pnl); pnl.classList.remove("up", "down", "flat"); pnl.classList.add(signClass(h.pnl)); }
      const ret = row.querySelector('[data-role="return"]');
      if (ret && capital) {
        const pct = h.pnl / capital * 100;
        ret.textContent = (pct >= 0 ? "+" : "\u2212") + Math.abs(pct).toFixed(3) + " %";
        ret.dataset.value = String(pct);
        ret.classList.remove("up", "down", "flat"); ret.classList.add(signClass(pct));
      }
      const equity = row.querySelector('[data-role="equity"]');
      if (equity) equity.textContent = money(h.equity, currency, false);
      const fills = row.querySelector('[data-role="fills"]');
      if (fills && h.fills !== null) fills.textContent = h.fills.toLocaleString("en-US");
    });
  }

  function render(event) {
    if (event.type === "paper_session_state_change") applyStateChange(event);
    if (event.type === "feed_health") applyFeedHealth(event);
    if (event.type === "session_health") { applyHealth(event); applyBook(event); watchSwitch(event); }
    if (event.type === "kill_switch_change") refreshBanner();
    if (event.sequence !== undefined && event.session_id !== undefined) refreshEvents(event.session_id);
    document.dispatchEvent(new CustomEvent("ifns:event", { detail: event }));
  }

  async function backfill(sessionId, before) {
    let after = lastSeq.get(sessionId) || 0;
    for (;;) {
      const url = "/api/v1/sessions/" + encodeURIComponent(sessionId) + "/events/?limit=1000&after=" + after;
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const page = await response.json();
      for (const event of page.events) {
        if (before !== undefined && event.sequence >= before) return;
        lastSeq.set(sessionId, event.sequence);
        render(event);
      }
      if (page.events.length < 1000) return;
      after = page.next_after;
    }
  }

  async function handle(event) {
    if (event.sequence === undefined || event.session_id === undefined) { render(event); return; }
    const last = lastSeq.get(event.session_id);
    if (last !== undefined && event.sequence <= last) return;  // fetched already
    if (last !== undefined && event.sequence > last + 1) await backfill(event.session_id, event.sequence);
    lastSeq.set(event.session_id, event.sequence);
    render(event);
  }

  let current = null;  // the open socket (IFNSLive.socket(): diagnostics, tests)

  function connect(path, attempt) {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + window.location.host + path);
    current = socket;
    socket.onopen = () => {
      setState("connected");
      if (attempt > 0) {  // what was published while the socket was down
        for (const sessionId of lastSeq.keys()) queue = queue.then(() => backfill(sessionId)).catch(() => {});
      }
    };
    socket.onmessage = (msg) => {
      const event = JSON.parse(msg.data);
      queue = queue.then(() => handle(event)).catch(() => {});
    };
    socket.onclose = (closed) => {
      setState(closed.code === 4401 ? "signed out" : "offline");
      if (closed.code === 4401 || closed.code === 4403 || closed.code === 4404) return;  // retrying will not help
      const delay = Math.min(30000, 1000 * 2 ** Math.min(attempt, 5));
      setTimeout(() => connect(path, attempt + 1), delay);
    };
  }

  window.IFNSLive = { connect: (path) => connect(path, 0), socket: () => current };
})();
