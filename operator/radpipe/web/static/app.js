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

  /* -- job list: refresh rows from the JSON API -- */
  function setupJobList() {
    const table = document.getElementById("jobs-table");
    if (!table) return;
    const body = document.getElementById("job-rows");
    const note = document.getElementById("live-note");
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
          text("td", currentStage(job.status || {}) || "—"),
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
    const poll = async () => {
      try {
        render(await getJSON(table.dataset.poll));
        note.textContent = `Updated ${new Date().toLocaleTimeString()}`;
      } catch (err) {
        note.textContent = "Live updates paused (connection problem); retrying.";
      }
    };
    setInterval(poll, 3000);
  }

  /* -- job page: stage timeline from the JSON API; reload when the phase changes -- */
  function setupJobPage() {
    const main = document.querySelector("main[data-job]");
    if (!main) return;
    const uid = main.dataset.job;
    const shown = main.dataset.phase;
    const tick = () => {
      document.querySelectorAll("#timeline .step-time").forEach((el) => {
        if (el.dataset.started && !el.dataset.finished) el.textContent = duration(el.dataset.started, "");
      });
    };
    const update = (job) => {
      const phase = job.status?.phase || "Pending";
      if (phase !== shown) {
        window.location.reload();
        return;
      }
      for (const stage of job.status?.stages || []) {
        const li = document.querySelector(`#timeline li[data-stage="${CSS.escape(stage.name)}"]`);
        if (!li) continue;
        li.className = `step step-${stage.state.toLowerCase()}`;
        li.querySelector(".step-state").textContent = stage.state;
        const time = li.querySelector(".step-time");
        time.dataset.started = stage.startedAt || "";
        time.dataset.finished = stage.finishedAt || "";
        time.textContent = duration(stage.startedAt, stage.finishedAt);
        const bar = li.querySelector("progress");
        bar.value = stage.state === "Succeeded" ? 1 : stage.progress || 0;
        const parts = [];
        if ((stage.attempts || 0) > 1) parts.push(`attempt ${stage.attempts}`);
        if (stage.message) parts.push(stage.message);
        li.querySelector(".step-msg").textContent = parts.join(" · ");
      }
    };
    if (FINAL.has(shown)) return;
    const poll = async () => {
      try {
        update(await getJSON(`/api/v1/jobs/${encodeURIComponent(uid)}`));
      } catch (err) {
        /* keep the last view; the next poll tries again */
      }
    };
    setInterval(poll, 1000);
    setInterval(tick, 500);
  }

  document.addEventListener("DOMContentLoaded", () => {
    setupRequestForm();
    setupJobList();
    setupJobPage();
  });
})();
