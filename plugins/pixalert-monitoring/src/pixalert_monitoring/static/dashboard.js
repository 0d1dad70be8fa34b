/* pixalert dashboard: live regions, relative times, actions and charts. No build step.
 *
 * The live region (#live) is re-fetched every second with If-None-Match; the
 * server answers 304 while nothing changed, or the region's new HTML, which it
 * rendered from autoescaped templates. This script never builds HTML from
 * text: every string it shows goes through textContent or an attribute.
 */
(function () {
  "use strict";

  var TOKEN_KEY = "pixalert-token";
  var NAME_KEY = "pixalert-name";
  var POLL_MS = 1000;
  var HIDDEN_POLL_MS = 5000;

  var body = document.body;
  var tokenRequired = body.dataset.tokenRequired === "1";
  var live = document.getElementById("live");
  var statusEl = document.getElementById("live-status");
  var updatedEl = document.getElementById("updated");
  var pollTimer = null;
  var failures = 0;

  // -- who is looking --------------------------------------------------------

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
  }
  function viewerName() {
    try { return localStorage.getItem(NAME_KEY) || ""; } catch (e) { return ""; }
  }
  function headers(extra) {
    var out = { "Accept": "application/json, text/html" };
    var t = token();
    if (t) out["Authorization"] = "Bearer " + t;
    for (var k in extra) out[k] = extra[k];
    return out;
  }

  var dialog = document.getElementById("token-dialog");
  var form = document.getElementById("token-form");
  function openTokenDialog(message) {
    var err = document.getElementById("token-error");
    err.hidden = !message;
    err.textContent = message || "";
    form.elements.name.value = viewerName();
    if (form.elements.token) form.elements.token.value = token();
    if (typeof dialog.showModal === "function") { if (!dialog.open) dialog.showModal(); }
    else dialog.setAttribute("open", "");
  }
  dialog.addEventListener("close", function () {
    var choice = dialog.returnValue;
    if (choice === "save") {
      try {
        if (form.elements.token) sessionStorage.setItem(TOKEN_KEY, form.elements.token.value.trim());
        localStorage.setItem(NAME_KEY, form.elements.name.value.trim());
      } catch (e) { /* storage disabled: the token lives until the page closes */ }
      refresh(true);
    } else if (choice === "forget") {
      try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* nothing kept */ }
      refresh(true);
    }
  });

  // -- messages --------------------------------------------------------------

  var toastTimer = null;
  function toast(message, isError) {
    var el = document.getElementById("toast");
    el.textContent = message;
    el.className = isError ? "toast-error" : "";
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { el.hidden = true; }, isError ? 6000 : 3000);
  }

  async function problem(response) {
    try {
      var data = await response.json();
      var text = data.error || ("HTTP " + response.status);
      if (data.detail) text += ": " + (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail));
      return text;
    } catch (e) {
      return "HTTP " + response.status;
    }
  }

  // -- relative times --------------------------------------------------------

  function relative(ms) {
    var s = Math.round(Math.abs(ms) / 1000);
    var text;
    if (s < 60) text = s + "s";
    else if (s < 3600) text = Math.floor(s / 60) + "m" + (s < 600 ? " " + (s % 60) + "s" : "");
    else if (s < 86400) text = Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    else text = Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
    return ms >= 0 ? text + " ago" : "in " + text;
  }
  function refreshTimes(root) {
    var now = Date.now();
    var items = (root || document).querySelectorAll("time.rel");
    for (var i = 0; i < items.length; i++) {
      var el = items[i];
      var at = Date.parse(el.getAttribute("datetime"));
      if (isNaN(at)) continue;
      var diff = now - at;
      el.textContent = el.classList.contains("countdown") && diff > 0 ? "due now" : relative(diff);
    }
  }

  // -- the live region -------------------------------------------------------

  function setStatus(kind, text) {
    if (!statusEl) return;
    statusEl.className = "live" + (kind ? " " + kind : "");
    statusEl.textContent = text;
  }

  function openDetails() {
    var open = [];
    var items = live.querySelectorAll("details[id][open]");
    for (var i = 0; i < items.length; i++) open.push(items[i].id);
    return open;
  }

  function swap(html) {
    var keep = openDetails();
    // The HTML is the server's own rendering of an autoescaped template.
    var fresh = document.createElement("template");
    fresh.innerHTML = html;
    live.replaceChildren(fresh.content);
    for (var i = 0; i < keep.length; i++) {
      var el = document.getElementById(keep[i]);
      if (el) el.open = true;
    }
    refreshTimes(live);
    live.dispatchEvent(new CustomEvent("pixalert:updated", { bubbles: true }));
  }

  async function refresh(force) {
    if (!live) return;
    clearTimeout(pollTimer);
    if (tokenRequired && !token()) {
      setStatus("offline", "token needed");
      if (live.dataset.locked === "1" && !(dialog.open)) openTokenDialog();
      return;
    }
    var extra = { "X-Pixalert-Live": "1" };
    if (live.dataset.etag && !force && live.dataset.locked !== "1") extra["If-None-Match"] = live.dataset.etag;
    try {
      var response = await fetch(live.dataset.liveUrl, { headers: headers(extra), cache: "no-store", credentials: "same-origin" });
      if (response.status === 401) {
        setStatus("offline", "token refused");
        openTokenDialog(await problem(response));
        return;
      }
      if (response.status === 200) {
        live.dataset.etag = response.headers.get("ETag") || "";
        live.dataset.locked = "";
        swap(await response.text());
      } else if (response.status !== 304) {
        throw new Error(await problem(response));
      }
      failures = 0;
      setStatus("", "live");
      if (updatedEl) updatedEl.textContent = "checked " + new Date().toLocaleTimeString();
    } catch (e) {
      failures += 1;
      setStatus(failures > 2 ? "offline" : "stale", failures > 2 ? "offline" : "retrying");
    }
    schedule();
  }

  function schedule() {
    clearTimeout(pollTimer);
    var wait = document.hidden ? HIDDEN_POLL_MS : POLL_MS * Math.min(1 + failures, 5);
    pollTimer = setTimeout(refresh, wait);
  }
  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });

  // -- actions ---------------------------------------------------------------

  async function act(method, url, payload, done) {
    if (tokenRequired && !token()) { openTokenDialog("Enter the token to act."); return false; }
    var response;
    try {
      response = await fetch(url, {
        method: method,
        headers: headers({ "Content-Type": "application/json" }),
        body: payload === undefined ? undefined : JSON.stringify(payload),
        credentials: "same-origin",
        cache: "no-store"
      });
    } catch (e) {
      toast("The receiver did not answer: " + e.message, true);
      return false;
    }
    if (response.status === 401) { openTokenDialog(await problem(response)); return false; }
    if (!response.ok) { toast(await problem(response), true); return false; }
    toast(done);
    refresh(true);
    return true;
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-action]");
    if (!button || button.disabled) return;
    var action = button.dataset.action;
    if (action === "token") { openTokenDialog(); return; }
    var id = button.dataset.alertId;
    var by = viewerName() || null;
    if (action === "ack") {
      button.disabled = true;
      act("POST", "/api/alerts/" + encodeURIComponent(id) + "/ack", { by: by }, "Acknowledged.")
        .finally(function () { button.disabled = false; });
    } else if (action === "resolve") {
      button.disabled = true;
      act("POST", "/api/alerts/" + encodeURIComponent(id) + "/resolve", { by: by }, "Resolved.")
        .finally(function () { button.disabled = false; });
    } else if (action === "expire") {
      button.disabled = true;
      act("DELETE", "/api/silences/" + encodeURIComponent(button.dataset.silenceId), undefined, "Silence expired.")
        .finally(function () { button.disabled = false; });
    }
  });

  var silenceForm = document.getElementById("silence-form");
  if (silenceForm) {
    silenceForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      var err = document.getElementById("silence-error");
      err.hidden = true;
      var matchers = {};
      var lines = silenceForm.elements.matchers.value.split("\n");
      for (var i = 0; i < lines.length; i++) {
        var line = lines[i].trim();
        if (!line) continue;
        var at = line.indexOf("=");
        if (at < 1) {
          err.textContent = "Line " + (i + 1) + ": expected field=value, got " + JSON.stringify(line);
          err.hidden = false;
          return;
        }
        matchers[line.slice(0, at).trim()] = line.slice(at + 1).trim();
      }
      var ok = await act("POST", "/api/silences", {
        matchers: matchers,
        duration: silenceForm.elements.duration.value.trim(),
        comment: silenceForm.elements.comment.value,
        created_by: viewerName()
      }, "Silenced.");
      if (ok) silenceForm.elements.matchers.value = "";
    });
  }

  // -- charts (Channels page) ------------------------------------------------

  var charts = document.getElementById("charts");
  var plots = [];
  var range = "24h";

  function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

  function chartWidth(el) { return Math.max(240, el.clientWidth - 12); }

  async function loadCharts() {
    if (!charts || typeof uPlot === "undefined") return;
    if (tokenRequired && !token()) return;
    var response;
    try {
      response = await fetch(charts.dataset.seriesUrl + "?range=" + range, { headers: headers({}), cache: "no-store" });
    } catch (e) { return; }
    if (!response.ok) return;
    var data = await response.json();
    var list = document.getElementById("chart-list");
    plots.forEach(function (p) { p.destroy(); });
    plots = [];
    list.replaceChildren();
    var names = Object.keys(data.channels);
    if (!names.length) {
      var empty = document.createElement("p");
      empty.className = "empty";
      empty.textContent = "No delivery in this range.";
      list.appendChild(empty);
      return;
    }
    // Sent and failed side by side around each bucket's middle.
    var sentBars = uPlot.paths.bars({ size: [0.4, 40], align: -1 });
    var failedBars = uPlot.paths.bars({ size: [0.4, 40], align: 1 });
    var good = cssVar("--good"), bad = cssVar("--bad"), fg = cssVar("--fg"), line = cssVar("--line"), accent = cssVar("--link");
    var axis = { stroke: fg, grid: { stroke: line, width: 1 }, ticks: { stroke: line, width: 1 } };
    names.forEach(function (name) {
      var s = data.channels[name];
      var figure = document.createElement("figure");
      figure.className = "chart";
      figure.dataset.channel = name;
      var caption = document.createElement("figcaption");
      caption.textContent = name;
      figure.appendChild(caption);
      var holder = document.createElement("div");
      figure.appendChild(holder);
      list.appendChild(figure);
      var xs = data.x;
      var plot = new uPlot({
        width: chartWidth(figure),
        height: 200,
        scales: { x: { time: true }, n: { range: function (u, lo, hi) { return [0, Math.max(1, hi)]; } }, pct: { range: [0, 100] } },
        axes: [
          Object.assign({}, axis),
          Object.assign({}, axis, { scale: "n", label: "deliveries", size: 45 }),
          Object.assign({}, axis, { scale: "pct", side: 1, grid: { show: false }, label: "success %", size: 45 })
        ],
        series: [
          {},
          { label: "sent", scale: "n", stroke: good, fill: good + "99", paths: sentBars, points: { show: false } },
          { label: "failed", scale: "n", stroke: bad, fill: bad + "99", paths: failedBars, points: { show: false } },
          { label: "success %", scale: "pct", stroke: accent, width: 2, spanGaps: true }
        ]
      }, [
        xs.map(function (x) { return x + data.step_hours * 1800; }),
        s.sent, s.failed, s.success
      ], holder);
      plots.push(plot);
    });
  }

  if (charts) {
    charts.addEventListener("click", function (event) {
      var button = event.target.closest("[data-range]");
      if (!button) return;
      range = button.dataset.range;
      var all = charts.querySelectorAll("[data-range]");
      for (var i = 0; i < all.length; i++) all[i].setAttribute("aria-pressed", String(all[i] === button));
      loadCharts();
    });
    window.addEventListener("resize", function () {
      plots.forEach(function (p) { p.setSize({ width: chartWidth(p.root.parentNode.parentNode), height: 200 }); });
    });
    setInterval(loadCharts, 30000);
  }

  // -- start -----------------------------------------------------------------

  refreshTimes(document);
  setInterval(function () { refreshTimes(document); }, 1000);
  if (live && live.dataset.locked === "1") refresh(true);
  else schedule();
  loadCharts();
})();
