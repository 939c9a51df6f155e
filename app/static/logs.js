// The log viewer: replays and follows a deployment's build log over the websocket
// (docs: /tmp/team/WS-PROTOCOL.md's contract, DESIGN §8). Every line is built with
// textContent, never innerHTML, so a log can colour text but never inject markup.
(() => {
  "use strict";
  const viewer = document.getElementById("log-viewer");
  if (!viewer) return;
  const box = document.getElementById("log");
  const live = document.getElementById("live");
  const follow = document.getElementById("follow");
  const filter = document.getElementById("filter");
  const matches = document.getElementById("matches");
  const banner = document.getElementById("banner");
  const badge = document.getElementById("state");
  const cancel = document.getElementById("cancel");

  const GIVE_UP = { 4401: "Your session ended: sign in again to follow this log.",
                    4403: "This deployment belongs to someone else.",
                    4404: "There is no such deployment." };
  let lastSeq = 0;
  let finished = false;
  let attempts = 0;
  let openStep = null;
  const steps = new Map();

  // --- ANSI colours -------------------------------------------------------------------
  const SGR = /\x1b\[([0-9;]*)m/g;
  const OTHER_ESCAPES = /\x1b\[[0-9;?]*[A-Za-ln-z]|\x1b[()][A-Za-z0-9]|\x1b[=>]/g;
  const fresh = () => ({ fg: null, bg: null, bold: false, dim: false, italic: false, underline: false });

  function applySgr(style, codes) {
    const list = codes === "" ? [0] : codes.split(";").map((n) => parseInt(n, 10) || 0);
    for (let i = 0; i < list.length; i++) {
      const c = list[i];
      if (c === 0) Object.assign(style, fresh());
      else if (c === 1) style.bold = true;
      else if (c === 2) style.dim = true;
      else if (c === 3) style.italic = true;
      else if (c === 4) style.underline = true;
      else if (c === 22) style.bold = style.dim = false;
      else if (c === 23) style.italic = false;
      else if (c === 24) style.underline = false;
      else if ((c >= 30 && c <= 37) || (c >= 90 && c <= 97)) style.fg = "c" + c;
      else if (c === 39) style.fg = null;
      else if ((c >= 40 && c <= 47) || (c >= 100 && c <= 107)) style.bg = "c" + c;
      else if (c === 49) style.bg = null;
      else if ((c === 38 || c === 48) && list[i + 1] === 5) {
        const n = list[i + 2];
        const key = c === 38 ? "fg" : "bg";
        style[key] = n < 8 ? "c" + ((c === 38 ? 30 : 40) + n) : n < 16 ? "c" + ((c === 38 ? 90 : 100) + n - 8) : "x" + n;
        i += 2;
      } else if ((c === 38 || c === 48) && list[i + 1] === 2) {
        const rgb = list.slice(i + 2, i + 5).map((v) => Math.max(0, Math.min(255, v || 0)));
        style[c === 38 ? "fg" : "bg"] = "rgb(" + rgb.join(",") + ")";
        i += 4;
      }
    }
  }

  function xterm256(n) {
    if (n >= 232) { const v = 8 + (n - 232) * 10; return `rgb(${v},${v},${v})`; }
    const m = n - 16; const lv = (x) => (x ? 55 + x * 40 : 0);
    return `rgb(${lv(Math.floor(m / 36))},${lv(Math.floor(m / 6) % 6)},${lv(m % 6)})`;
  }

  function paint(span, style) {
    for (const [key, cls] of [["fg", "fg-"], ["bg", "bg-"]]) {
      const value = style[key];
      if (!value) continue;
      if (value[0] === "c") span.classList.add(cls + value.slice(1));
      else span.style[key === "fg" ? "color" : "backgroundColor"] = value[0] === "x" ? xterm256(+value.slice(1)) : value;
    }
    if (style.bold) span.classList.add("b");
    if (style.dim) span.classList.add("dim");
    if (style.italic) span.classList.add("i");
    if (style.underline) span.classList.add("u");
  }

  function ansi(text) {
    // A progress bar redraws itself with \r: only what was drawn last is worth showing.
    const parts = text.replace(/\r+$/, "").split("\r");
    text = parts[parts.length - 1].replace(OTHER_ESCAPES, "");
    const out = document.createDocumentFragment();
    const style = fresh();
    let at = 0;
    const emit = (chunk) => {
      if (!chunk) return;
      const span = document.createElement("span");
      span.textContent = chunk;
      paint(span, style);
      out.appendChild(span);
    };
    for (const match of text.matchAll(SGR)) {
      emit(text.slice(at, match.index));
      applySgr(style, match[1]);
      at = match.index + match[0].length;
    }
    emit(text.slice(at).replace(/\x1b/g, ""));
    return out;
  }

  // --- rendering ----------------------------------------------------------------------
  const pad = (n) => String(n).padStart(2, "0");
  function clock(ts) {
    const d = new Date(ts * 1000);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  function seconds(ms) {
    const s = ms / 1000;
    const whole = Math.round(s);
    return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(whole / 60)} min ${pad(whole % 60)} s`;
  }

  function stepFor(name) {
    let step = steps.get(name);
    if (!step) {
      const details = document.createElement("details");
      details.className = "step running";
      details.open = true;
      const summary = document.createElement("summary");
      const title = document.createElement("span");
      title.className = "name";
      title.textContent = name;
      const took = document.createElement("span");
      took.className = "took";
      took.textContent = "running…";
      summary.append(title, took);
      const body = document.createElement("div");
      body.className = "lines";
      details.append(summary, body);
      box.appendChild(details);
      step = { details, took, body };
      steps.set(name, step);
    }
    return step;
  }

  function addLine(event) {
    const row = document.createElement("div");
    row.className = "line " + (event.stream || "stdout");
    row.dataset.seq = event.seq;
    const time = document.createElement("time");
    time.className = "ts";
    if (typeof event.ts === "number") {
      time.textContent = clock(event.ts);
      time.dateTime = new Date(event.ts * 1000).toISOString();
    }
    const text = document.createElement("span");
    text.className = "text";
    text.appendChild(ansi(String(event.text ?? "")));
    row.append(time, text);
    applyFilter(row);
    (openStep ? openStep.body : box).appendChild(row);
  }

  function onStep(event) {
    const step = stepFor(String(event.step ?? "step"));
    if (event.status === "start") {
      openStep = step;
      return;
    }
    step.details.classList.remove("running");
    step.details.classList.add(event.ok ? "ok" : "failed");
    const took = typeof event.duration_ms === "number" ? " · " + seconds(event.duration_ms) : "";
    step.took.textContent = (event.ok ? "ok" : "failed") + took;
    if (openStep === step) openStep = null;
  }

  function setState(state) {
    badge.textContent = state;
    badge.className = "badge state-" + state;
    viewer.dataset.state = state;
  }

  function onResult(event) {
    finished = true;
    const state = String(event.state ?? "finished");
    setState(state);
    if (cancel) cancel.hidden = true;
    banner.replaceChildren();
    banner.className = "banner state-" + state;
    if (state === "ready" && event.url) {
      const link = document.createElement("a");
      link.href = event.url;
      link.textContent = event.url;
      banner.append("Deployment ready: ", link);
    } else {
      banner.append(`Deployment ${state}` + (event.error ? `: ${event.error}` : ""));
    }
    banner.hidden = false;
    live.textContent = "finished";
    showDuration();
  }

  // The page was rendered mid-build; once it has ended, ask the API how long it took.
  async function showDuration() {
    try {
      const response = await fetch(viewer.dataset.api, { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const deployment = await response.json();
      const end = deployment.ready_at || deployment.finished_at;
      if (deployment.started_at && end) {
        document.getElementById("took").textContent = seconds(Date.parse(end) - Date.parse(deployment.started_at));
      }
    } catch {
      // Only a nicety: the duration shown stays as rendered.
    }
  }

  function handle(event) {
    if (!event || typeof event !== "object") return;
    if (typeof event.seq === "number") {
      if (event.seq <= lastSeq) return; // already shown (a replay after a reconnect)
      lastSeq = event.seq;
      viewer.dataset.seq = String(lastSeq);
    }
    if (event.type === "line") addLine(event);
    else if (event.type === "step") onStep(event);
    else if (event.type === "result") onResult(event);
    if (!finished && (event.type === "line" || event.type === "step") && viewer.dataset.state === "queued") {
      setState("building");
    }
  }

  // --- follow, filter -------------------------------------------------------------------
  const atBottom = () => box.scrollHeight - box.scrollTop - box.clientHeight < 24;
  const scrollDown = () => { if (follow.checked) box.scrollTop = box.scrollHeight; };
  box.addEventListener("scroll", () => { follow.checked = atBottom(); });
  follow.addEventListener("change", scrollDown);

  function applyFilter(row) {
    const query = filter.value.trim().toLowerCase();
    row.hidden = query !== "" && !row.textContent.toLowerCase().includes(query);
  }
  function countMatches() {
    const rows = box.querySelectorAll(".line");
    const shown = box.querySelectorAll(".line:not([hidden])").length;
    matches.textContent = filter.value.trim() ? `${shown} of ${rows.length} lines` : "";
  }
  filter.addEventListener("input", () => {
    box.querySelectorAll(".line").forEach(applyFilter);
    countMatches();
  });

  // --- the socket -----------------------------------------------------------------------
  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}${viewer.dataset.socket}?since=${lastSeq}`);
    live.textContent = attempts ? "reconnecting…" : "connecting…";
    socket.addEventListener("open", () => { live.textContent = finished ? "finished" : "live"; });
    socket.addEventListener("message", (message) => {
      attempts = 0;
      let events;
      try { events = JSON.parse(message.data); } catch { return; }
      for (const event of Array.isArray(events) ? events : [events]) handle(event);
      if (filter.value.trim()) countMatches();
      scrollDown();
    });
    socket.addEventListener("close", (closed) => {
      if (finished) { live.textContent = "finished"; return; }
      if (GIVE_UP[closed.code]) { live.textContent = GIVE_UP[closed.code]; return; }
      // 4408: this client fell behind; anything else: the network or a restart. Either way,
      // pick up after the last event shown.
      const wait = closed.code === 4408 ? 0 : Math.min(10000, 500 * 2 ** attempts);
      attempts++;
      live.textContent = "reconnecting…";
      setTimeout(connect, wait);
    });
  }
  connect();
})();
