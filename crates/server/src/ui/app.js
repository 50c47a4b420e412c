// SpawnIt web UI: the live parts only (no build step). Status badges and job statuses follow
// /api/events; the log console follows /api/jobs/{id}/events; the catalog filters as you type.
(function () {
  "use strict";
  function each(sel, f) { Array.prototype.forEach.call(document.querySelectorAll(sel), f); }
  // One stream of /api/events per page, opened by the first live part that needs it.
  var stream = null;
  function serverEvents() { if (!stream) { stream = new EventSource("/api/events"); } return stream; }

  // Live status badges and job statuses.
  if (document.querySelector("[data-service], [data-job-status]")) {
    var events = serverEvents();
    events.addEventListener("service_status", function (e) {
      var d = JSON.parse(e.data);
      each('[data-service="' + d.client + "/" + d.service + '"]', function (b) {
        b.textContent = d.status; b.className = "badge " + d.status;
      });
    });
    var refreshing = false;
    events.addEventListener("job", function (e) {
      var d = JSON.parse(e.data);
      var known = document.querySelector('[data-job-status="' + d.job + '"]');
      each('[data-job-status="' + d.job + '"]', function (b) {
        b.textContent = d.status; b.className = "badge job-" + d.status;
      });
      // The dashboard's "running jobs" list: fetch it again when a new job appears.
      var box = document.getElementById("running-jobs");
      if (box && !known && !refreshing) {
        refreshing = true;
        fetch(location.pathname, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("running-jobs");
          if (fresh) { box.innerHTML = fresh.innerHTML; }
        }).finally(function () { refreshing = false; });
      }
    });
  }

  // Live parts refreshed from the page itself: an element with data-refresh-on="event names" is
  // fetched again (at most once a second) when one of those server events arrives, and every
  // 15 s for what Swarm changes without an event (a node joining).
  var liveParts = document.querySelectorAll("[data-refresh-on]");
  if (liveParts.length) {
    var pending = false;
    var refresh = function () {
      if (pending) { return; }
      pending = true;
      setTimeout(function () {
        fetch(location.pathname + location.search, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html");
          each("[data-refresh-on]", function (box) {
            var now = box.id && fresh.getElementById(box.id);
            if (now && !box.contains(document.activeElement)) { box.innerHTML = now.innerHTML; }
          });
          tickCountdowns();
        }).finally(function () { pending = false; });
      }, 1000);
    };
    var names = {};
    each("[data-refresh-on]", function (box) {
      box.dataset.refreshOn.split(/\s+/).forEach(function (n) { if (n) { names[n] = true; } });
    });
    Object.keys(names).forEach(function (n) { serverEvents().addEventListener(n, refresh); });
    setInterval(refresh, 15000);
  }

  // The log console of a job.
  var log = document.getElementById("log");
  if (log && log.dataset.job) {
    var live = log.dataset.live === "1";
    var line = function (t) { log.textContent += t + "\n"; log.scrollTop = log.scrollHeight; };
    var es = new EventSource("/api/jobs/" + log.dataset.job + "/events");
    var show = {
      planned: function (d) {
        var p = d.plan, acts = (p.changes || []).filter(function (c) { return c.action !== "no-op" && c.action !== "noop"; });
        line("plan: " + p.status + (acts.length ? ", " + acts.length + " change(s)" : ", nothing to do"));
        acts.forEach(function (c) { line("  " + c.action + " " + c.address + (c.reasons && c.reasons.length ? " — " + c.reasons.join("; ") : "")); });
        (p.errors || []).forEach(function (e) { line("  error: " + e); });
      },
      operation_started: function (d) { line("→ " + d.action + " " + d.address); },
      operation_done: function (d) { line("✓ " + d.action + " " + d.address + " (" + d.duration_ms + " ms)"); },
      operation_failed: function (d) { line("✗ " + d.action + " " + d.address + ": " + d.error); },
      message: function (d) { line(d.text); },
      finished: function (d) {
        line("finished: " + d.outcome + " (" + d.done + " done, " + d.failed + " failed, " + d.skipped + " skipped, " + d.duration_ms + " ms)");
        es.close();
        var cancel = document.getElementById("cancel");
        if (cancel) { cancel.closest("form").hidden = true; }
        if (live) { line("(refreshing the page…)"); setTimeout(function () { location.reload(); }, 1200); }
      }
    };
    Object.keys(show).forEach(function (name) {
      es.addEventListener(name, function (e) { show[name](JSON.parse(e.data)); });
    });
    es.onerror = function () { if (es.readyState === EventSource.CLOSED) { line("(log stream closed)"); } };
  }

  // Lease countdowns.
  function tickCountdowns() {
    each("[data-expires]", function (el) {
      var s = Math.max(0, Math.floor((Date.parse(el.dataset.expires) - Date.now()) / 1000));
      var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
      el.textContent = h + "h " + String(m).padStart(2, "0") + "m " + String(sec).padStart(2, "0") + "s";
    });
  }
  if (document.querySelector("[data-expires], [data-refresh-on]")) {
    tickCountdowns(); setInterval(tickCountdowns, 1000);
  }

  // Catalog search.
  var search = document.getElementById("search");
  if (search) {
    search.addEventListener("input", function () {
      var q = search.value.trim().toLowerCase(), any = false;
      each("section.category", function (sec) {
        var shown = 0;
        Array.prototype.forEach.call(sec.querySelectorAll("[data-text]"), function (card) {
          var ok = !q || card.dataset.text.indexOf(q) >= 0;
          card.hidden = !ok; if (ok) { shown++; }
        });
        sec.hidden = shown === 0; if (shown) { any = true; }
      });
      document.getElementById("no-match").hidden = any;
    });
  }

  // Secret fields: generate a value, show or hide it.
  each("[data-generate]", function (b) {
    b.addEventListener("click", function () {
      var chars = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789", out = "";
      var bytes = new Uint32Array(24); crypto.getRandomValues(bytes);
      bytes.forEach(function (n) { out += chars[n % chars.length]; });
      var input = document.getElementById(b.dataset.generate); input.value = out; input.focus();
    });
  });
  each("[data-reveal]", function (b) {
    b.addEventListener("click", function () {
      var input = document.getElementById(b.dataset.reveal), show = input.type === "password";
      input.type = show ? "text" : "password"; b.textContent = show ? "Hide" : "Show";
      b.setAttribute("aria-pressed", show ? "true" : "false");
    });
  });

  // Forms that ask before they act (no inline handlers: the Content-Security-Policy forbids them).
  each("form[data-confirm]", function (f) {
    f.addEventListener("submit", function (e) {
      if (!window.confirm(f.dataset.confirm)) { e.preventDefault(); }
    });
  });
})();
