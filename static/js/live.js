// Live updates for Mirror pages over the Channels WebSocket.
// Messages are telemetry event records {env, lane, session_id, sequence, type, event_time, payload}
// and, on the overview, feed health reports {type: "feed_health", feed, status, ...}.
// Delivery is at-most-once; on reconnect the page reloads to pick up what it missed.
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

  function connect(path, attempt) {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + window.location.host + path);
    socket.onopen = () => {
      setState("connected");
      if (attempt > 0) window.location.reload();  // backfill what we missed
    };
    socket.onmessage = (msg) => {
      const event = JSON.parse(msg.data);
      if (event.type === "paper_session_state_change") applyStateChange(event);
      if (event.type === "feed_health") applyFeedHealth(event);
      if (event.type === "session_health") applyHealth(event);
      document.dispatchEvent(new CustomEvent("ifns:event", { detail: event }));
    };
    socket.onclose = () => {
      setState("offline");
      const delay = Math.min(30000, 1000 * 2 ** Math.min(attempt, 5));
      setTimeout(() => connect(path, attempt + 1), delay);
    };
  }

  window.IFNSLive = { connect: (path) => connect(path, 0) };
})();
