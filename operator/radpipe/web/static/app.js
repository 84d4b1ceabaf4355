/* radpipe web: small progressive enhancements. Every page works without this file. */
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

  async function getJSON(url) {
    const response = await fetch(url, {
      headers: { Accept: "application/json", "X-CSRF-Token": csrf },
      credentials: "same-origin",
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response.json();
  }

  function text(tag, value, className) {
    const el = document.createElement(tag);
    el.textContent = value == null ? "" : String(value);
    if (className) el.className = className;
    return el;
  }

  function age(iso) {
    if (!iso) return "—";
    const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (seconds < 45) return "just now";
    if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
    return `${Math.round(seconds / 86400)} d ago`;
  }

  function duration(started, finished) {
    if (!started) return "";
    const end = finished ? Date.parse(finished) : Date.now();
    const seconds = Math.max(0, (end - Date.parse(started)) / 1000);
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    return `${Math.floor(seconds / 60)} min ${Math.floor(seconds % 60)} s`;
  }

  function currentStage(status) {
    const stages = status.stages || [];
    const running = stages.find((s) => s.state === "Running");
    if (running) return running.name;
    const open = stages.find((s) => s.state === "Pending" || s.state === "Failed");
    return open ? open.name : null;
  }

  const FINAL = new Set(["Succeeded", "Failed", "Cancelled"]);

  /* -- request form: accession rule as you type, options of the chosen app only -- */
  function setupRequestForm() {
    const form = document.getElementById("request-form");
    if (!form) return;
    const accession = document.getElementById("accession");
    const error = document.getElementById("accession-error");
    const pattern = new RegExp(`^(?:${accession.getAttribute("pattern")})$`);
    const check = (final) => {
      const value = accession.value.trim();
      let message = "";
      if (!value) message = final ? "Enter the accession number of the study." : "";
      else if (value.length > 16) message = "At most 16 characters.";
      else if (!pattern.test(value)) message = "Only letters, digits, '.', '_' or '-', starting with a letter or digit.";
      error.textContent = message;
      accession.setAttribute("aria-invalid", message ? "true" : "false");
      accession.classList.toggle("is-valid", !message && value.length > 0);
      return !message;
    };
    accession.addEventListener("input", () => check(false));
    accession.addEventListener("blur", () => check(false));

    const radios = form.querySelectorAll('input[name="app"]');
    const showOptions = () => {
      const chosen = form.querySelector('input[name="app"]:checked')?.value;
      form.querySelectorAll("fieldset.options").forEach((fs) => {
        const mine = fs.dataset.app === chosen;
        fs.hidden = !mine;
        fs.disabled = !mine;
      });
    };
    radios.forEach((r) => r.addEventListener("change", showOptions));
    showOptions();

    form.addEventListener("submit", (event) => {
      if (!check(true)) {
        event.preventDefault();
        accession.focus();
      }
    });
    const summary = document.getElementById("form-errors");
    if (summary) summary.focus();
  }

  /* -- live updates: server-sent events, polling when they are unavailable --
   * `url` streams `job` events ({uid, phase, stage, progress, stages}); `sync` fetches the
   * full state (on every (re)connect, so nothing between page render and stream is lost);
   * when the browser has no EventSource or the server refuses the stream, `sync` runs every
   * `every` ms instead. The channel in use is shown as data-live on <main>. */
  function follow(url, onEvent, sync, every) {
    const main = document.getElementById("main");
    let source = null;
    let timer = null;
    const poll = () => {
      if (timer) return;
      if (source) source.close();
      source = null;
      main.dataset.live = "poll";
      sync();
      timer = setInterval(sync, every);
    };
    if (!window.EventSource) {
      poll();
    } else {
      source = new EventSource(url, { withCredentials: true });
      source.addEventListener("ready", () => {
        main.dataset.live = "sse";
        sync();
      });
      source.addEventListener("job", (event) => {
        let data = null;
        try {
          data = JSON.parse(event.data);
        } catch (err) {
          return;
        }
        onEvent(data);
      });
      source.addEventListener("error", () => {
        // CONNECTING: the stream ended or the network blinked; EventSource reconnects.
        if (source && source.readyState === EventSource.CLOSED) poll();
      });
    }
    return () => {
      if (source) source.close();
      source = null;
      if (timer) clearInterval(timer);
      timer = null;
    };
  }

  /* -- job list: rows follow the job events; the list is re-read when a row appears -- */
  function setupJobList() {
    const table = document.getElementById("jobs-table");
    if (!table) return;
    const body = document.getElementById("job-rows");
    const note = document.getElementById("live-note");
    const filter = new URL(table.dataset.poll, window.location.href).searchParams;
    const render = (jobs) => {
      const rows = jobs.map((job) => {
        const tr = document.createElement("tr");
        tr.dataset.uid = job.metadata.name;
        const uid = job.metadata.uid || job.metadata.name;
        const link = text("a", uid);
        link.href = `/jobs/${encodeURIComponent(uid)}`;
        const first = document.createElement("td");
        first.append(link);
        const phase = job.status?.phase || "Pending";
        const badge = text("span", phase, `badge phase phase-${phase.toLowerCase()}`);
        const phaseCell = document.createElement("td");
        phaseCell.className = "job-phase";
        phaseCell.append(badge);
        const prio = job.spec.priority || "routine";
        const prioCell = document.createElement("td");
        prioCell.append(text("span", prio, `prio prio-${prio}`));
        const annotations = job.metadata.annotations || {};
        tr.append(
          first,
          text("td", job.spec.accession, "mono"),
          text("td", job.spec.app),
          phaseCell,
          text("td", currentStage(job.status || {}) || "—", "job-stage"),
          prioCell,
          text("td", age(annotations["radpipe.io/created"])),
          text("td", annotations["radpipe.io/requested-by"] || "—"),
        );
        return tr;
      });
      if (rows.length === 0) {
        const tr = document.createElement("tr");
        tr.className = "empty";
        const td = text("td", "No jobs yet.");
        td.colSpan = 8;
        tr.append(td);
        rows.push(tr);
      }
      body.replaceChildren(...rows);
    };
    let loading = null;
    let again = false;
    const sync = async () => {
      if (loading) {
        again = true;
        return loading;
      }
      loading = (async () => {
        try {
          render(await getJSON(table.dataset.poll));
          const how = document.getElementById("main").dataset.live === "sse" ? "live" : "polling";
          note.textContent = `Updated ${new Date().toLocaleTimeString()} (${how})`;
        } catch (err) {
          note.textContent = "Live updates paused (connection problem); retrying.";
        }
      })();
      await loading;
      loading = null;
      if (again) {
        again = false;
        sync();
      }
    };
    const outside = new Map(); // jobs the filter left out, by uid: their last phase
    const onEvent = (data) => {
      const row = body.querySelector(`tr[data-uid="${CSS.escape(data.uid)}"]`);
      const wanted = !filter.get("phase") || filter.get("phase") === data.phase;
      if (!row) {
        if (outside.get(data.uid) === data.phase) return;
        outside.set(data.uid, data.phase);
        sync(); // a new job, or one that now fits the filter
        return;
      }
      if (!wanted) {
        sync();
        return;
      }
      const badge = row.querySelector(".job-phase .badge");
      if (badge) {
        badge.textContent = data.phase;
        badge.className = `badge phase phase-${data.phase.toLowerCase()}`;
      }
      const stage = row.querySelector(".job-stage");
      if (stage) stage.textContent = data.stage || "—";
      note.textContent = `Updated ${new Date().toLocaleTimeString()} (live)`;
    };
    follow("/api/v1/jobs/events", onEvent, sync, 3000);
  }

  /* -- job page: the stage timeline follows the job's events; when the phase changes the
   * page's content is fetched again and swapped in place (no reload, no lost scroll) -- */
  function setupJobPage() {
    const main = document.querySelector("main[data-job]");
    if (!main) return;
    const uid = main.dataset.job;
    const tick = () => {
      document.querySelectorAll("#timeline .step-time").forEach((el) => {
        if (el.dataset.started && !el.dataset.finished) el.textContent = duration(el.dataset.started, "");
      });
    };
    let latest = main.dataset.phase;
    let refreshing = false;
    let stop = null;
    const refresh = async () => {
      if (refreshing) return;
      refreshing = true;
      try {
        const response = await fetch(window.location.pathname, {
          headers: { Accept: "text/html" },
          credentials: "same-origin",
        });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const doc = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = doc.querySelector("main[data-job]");
        if (!fresh) throw new Error("no job in the page");
        // Messages shown once (e.g. "Analysis requested") stay until the next real visit.
        const flashes = [...main.querySelectorAll(":scope > .flash")];
        main.replaceChildren(...flashes, ...fresh.childNodes);
        main.dataset.phase = fresh.dataset.phase;
        main.dataset.refreshed = String(Number(main.dataset.refreshed || 0) + 1);
      } catch (err) {
        window.location.reload(); // the page itself is always right
        return;
      } finally {
        refreshing = false;
      }
      if (FINAL.has(main.dataset.phase) && stop) {
        stop();
        stop = null;
      } else if (latest !== main.dataset.phase) {
        refresh(); // it moved on while we were fetching
      }
    };
    const drawStages = (stages, full) => {
      let moved = false;
      for (const stage of stages || []) {
        const li = document.querySelector(`#timeline li[data-stage="${CSS.escape(stage.name)}"]`);
        if (!li) continue;
        const state = li.querySelector(".step-state");
        if (state.textContent !== stage.state) moved = true;
        li.className = `step step-${stage.state.toLowerCase()}`;
        state.textContent = stage.state;
        const bar = li.querySelector("progress");
        bar.value = stage.state === "Succeeded" ? 1 : stage.progress || 0;
        if (!full) continue;
        const time = li.querySelector(".step-time");
        time.dataset.started = stage.startedAt || "";
        time.dataset.finished = stage.finishedAt || "";
        time.textContent = duration(stage.startedAt, stage.finishedAt);
        const parts = [];
        if ((stage.attempts || 0) > 1) parts.push(`attempt ${stage.attempts}`);
        if (stage.message) parts.push(stage.message);
        li.querySelector(".step-msg").textContent = parts.join(" · ");
      }
      return moved;
    };
    const sync = async () => {
      try {
        const job = await getJSON(`/api/v1/jobs/${encodeURIComponent(uid)}`);
        latest = job.status?.phase || "Pending";
        if (latest !== main.dataset.phase) refresh();
        else drawStages(job.status?.stages, true);
      } catch (err) {
        /* keep the last view; the next event or poll tries again */
      }
    };
    const onEvent = (data) => {
      if (data.uid !== uid) return;
      latest = data.phase;
      if (latest !== main.dataset.phase) {
        refresh();
        return;
      }
      // A stage started or finished: read its times and message too.
      if (drawStages(data.stages, false)) sync();
    };
    if (FINAL.has(main.dataset.phase)) return;
    stop = follow(`/api/v1/jobs/events?job=${encodeURIComponent(uid)}`, onEvent, sync, 1000);
    setInterval(tick, 500);
  }

  document.addEventListener("DOMContentLoaded", () => {
    setupRequestForm();
    setupJobList();
    setupJobPage();
  });
})();
