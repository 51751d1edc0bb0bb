// The vcam page: login, live view over WebRTC with a metadata overlay, counters, events, and the
// settings (masks, analytics lines and zones, imaging, users) through /api/*. No framework, no
// build step. Every change sends the session's CSRF token; text from the server is only ever
// set as textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  user: null, csrf: "", masks: [], rules: [], boxes: [], boxesAt: 0,
  drawing: null, selected: null, lastEvent: 0, pc: null, peerId: "", size: [16, 9], timers: [],
};

// -- API ------------------------------------------------------------------------------------

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = state.csrf;
  const resp = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await resp.json(); } catch (_) { data = null; }
  if (resp.status === 401 && path !== "/api/login" && path !== "/api/session") showLogin();
  if (!resp.ok) {
    const err = new Error((data && data.error) || `${method} ${path}: HTTP ${resp.status}`);
    err.status = resp.status;
    throw err;
  }
  return data;
}

function report(err) { $("api-error").textContent = err ? err.message : ""; }

async function change(method, path, body) {
  try {
    const out = await api(method, path, body);
    report(null);
    return out;
  } catch (err) {
    report(err);
    return null;
  }
}

// -- login ----------------------------------------------------------------------------------

function showLogin() {
  stopAll();
  $("app").hidden = true;
  $("login").hidden = false;
  $("username").focus();
}

async function start(session) {
  state.user = session;
  state.csrf = session.csrf;
  $("login").hidden = true;
  $("app").hidden = false;
  $("who").textContent = `${session.username} (${session.level})`;
  const admin = session.level === "Administrator";
  for (const el of document.querySelectorAll(".admin-only")) el.hidden = !admin;
  await refreshStatus();
  await Promise.all([loadMasks(), loadRules(), admin ? loadSettings() : null]);
  state.timers.push(setInterval(refreshStatus, 2000), setInterval(pollEvents, 2000));
  pollEvents();
  connect();
}

function stopAll() {
  for (const t of state.timers) clearInterval(t);
  state.timers = [];
  disconnect();
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  try {
    const session = await api("POST", "/api/login", {
      username: $("username").value, password: $("password").value,
    });
    $("password").value = "";
    await start(session);
  } catch (err) {
    $("login-error").textContent = err.message;
  }
});

$("logout").addEventListener("click", async () => {
  await change("POST", "/api/logout", {});
  showLogin();
});

// -- live view (WebRTC) ---------------------------------------------------------------------

function videoMessage(text) { $("video-message").textContent = text; }

async function connect() {
  disconnect();
  let config;
  try {
    config = await api("GET", "/api/webrtc/config");
  } catch (err) {
    videoMessage(err.status === 404
      ? "Live video needs WebRTC, which this camera does not offer yet."
      : `Live video unavailable: ${err.message}`);
    return;
  }
  videoMessage("Connecting…");
  const pc = new RTCPeerConnection({ iceServers: config.ice_servers || [] });
  state.pc = pc;
  pc.addTransceiver("video", { direction: "recvonly" });
  const channel = pc.createDataChannel("metadata");
  channel.onmessage = (ev) => onMetadata(ev.data);
  pc.ontrack = (ev) => {
    // A live view, not a film: render frames as they arrive rather than behind Chromium's
    // jitter buffer (measured: 190 -> 161 ms glass to glass). Non-standard; others ignore it.
    if ("playoutDelayHint" in ev.receiver) ev.receiver.playoutDelayHint = 0;
    $("video").srcObject = ev.streams[0] || new MediaStream([ev.track]);
    videoMessage("");
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "failed") videoMessage("Live video connection failed.");
  };
  await pc.setLocalDescription(await pc.createOffer());
  await iceGathered(pc, 3000); // the camera does not trickle: send every candidate at once
  try {
    const answer = await api("POST", "/api/webrtc/offer", {
      sdp: pc.localDescription.sdp, type: "offer", stream: $("stream").value || "main",
    });
    if (state.pc !== pc) return;
    state.peerId = answer.id || "";
    await pc.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
  } catch (err) {
    videoMessage(`Live video refused: ${err.message}`);
  }
}

function iceGathered(pc, timeoutMs) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    const timer = setTimeout(resolve, timeoutMs);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") { clearTimeout(timer); resolve(); }
    });
  });
}

function disconnect() {
  if (state.pc) {
    state.pc.close();
    state.pc = null;
    if (state.peerId && state.csrf) api("POST", "/api/webrtc/close", { id: state.peerId }).catch(() => {});
    state.peerId = "";
  }
  $("video").srcObject = null;
}

$("stream").addEventListener("change", () => { setStageSize(); connect(); });

function onMetadata(text) {
  let msg;
  try { msg = JSON.parse(text); } catch (_) { return; }
  if (msg.type === "boxes") {
    state.boxes = msg.objects || [];
    state.boxesAt = performance.now();
  } else if (msg.type === "event") {
    addEvent(msg);
  } else if (msg.type === "status") {
    showCounters(msg.analytics);
  }
}

// -- status, counters, events ---------------------------------------------------------------

function setStageSize() {
  const name = $("stream").value;
  const s = (state.streams || []).find((x) => x.name === name);
  if (s && s.width && s.height) state.size = [s.width, s.height];
  $("stage").style.aspectRatio = `${state.size[0]} / ${state.size[1]}`;
}

function fill(dl, rows) {
  dl.replaceChildren();
  for (const [k, v] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    dl.append(dt, dd);
  }
}

async function refreshStatus() {
  let st;
  try { st = await api("GET", "/api/status"); } catch (_) { return; }
  state.streams = st.streams;
  const select = $("stream");
  if (select.options.length !== st.streams.length) {
    select.replaceChildren(...st.streams.map((s) => new Option(`${s.name} ${s.width}×${s.height}`, s.name)));
    setStageSize();
  }
  const rows = [["Masking", `${st.privacy.mode}, ${st.privacy.style}`]];
  const c = st.camera;
  if (c) {
    const reasons = Object.entries(c.closed_reasons).map(([k, v]) => `${k} ${v}`).join(", ");
    rows.push(
      ["Source", c.source], ["Frames", `${c.frames_out} (${c.fps} fps)`],
      ["Masked", String(c.frames_masked)],
      ["Fail-closed", `${c.frames_closed}${reasons ? ` (${reasons})` : ""}`],
      ["Detector", `${c.detector_ms} ms`], ["Bus drops", String(c.bus.dropped)],
    );
    if (c.error) rows.push(["Error", c.error]);
    if (c.analytics) rows.push(["People", String(c.analytics.people)], ["Faces", String(c.analytics.faces)]);
    showCounters(c.analytics);
  }
  if (st.rtsp) rows.push(["RTSP", `${st.rtsp.playing} playing`]);
  fill($("status"), rows);
}

function showCounters(analytics) {
  const body = $("counters").tBodies[0];
  body.replaceChildren();
  for (const r of (analytics && analytics.rules) || []) {
    const parts = [];
    if (r.count !== null && r.count !== undefined) parts.push(`count ${r.count}`);
    if (r.entered || r.exited) parts.push(`in ${r.entered} / out ${r.exited}`);
    if (r.inside) parts.push(`inside ${r.inside}`);
    if (r.kind === "QueueMonitor") parts.push(`queue ${r.inside}`);
    if (r.average_wait_s !== null && r.average_wait_s !== undefined) parts.push(`wait ${r.average_wait_s.toFixed(1)} s`);
    if (r.loitering) parts.push(`loitering ${r.loitering}`);
    const tr = body.insertRow();
    tr.insertCell().textContent = r.name;
    tr.insertCell().textContent = parts.join(", ") || "–";
  }
}

function addEvent(ev) {
  const li = document.createElement("li");
  const time = (ev.utc || "").slice(11, 19);
  const rule = (ev.source && ev.source.Rule) || "";
  const data = Object.entries(ev.data || {}).map(([k, v]) => `${k}=${v}`).join(" ");
  li.textContent = `${time} ${ev.topic.replace(/^tns1:/, "")} ${rule} ${data}`;
  const list = $("events");
  list.prepend(li);
  while (list.children.length > 50) list.lastChild.remove();
  // Another client (ONVIF, another page) changed masks or rules: show what the camera holds.
  if (ev.topic === "tns1:Media/ConfigurationChanged") {
    const type = (ev.data || {}).Type;
    if (type === "Mask") loadMasks();
    else if (type === "Analytics") loadRules();
  }
}

async function pollEvents() {
  if (state.pc && state.pc.connectionState === "connected") return; // the data channel has them
  try {
    const got = await api("GET", `/api/events?after=${state.lastEvent}`);
    for (const ev of got.events) addEvent(ev);
    state.lastEvent = got.last;
  } catch (_) { /* shown by the next status refresh */ }
}

// -- overlay: boxes, masks, rules, drawing --------------------------------------------------

const canvas = $("overlay");
const ctx = canvas.getContext("2d");

function draw() {
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  ctx.clearRect(0, 0, w, h);
  const path = (pts, close) => {
    ctx.beginPath();
    pts.forEach(([x, y], i) => (i ? ctx.lineTo(x * w, y * h) : ctx.moveTo(x * w, y * h)));
    if (close) ctx.closePath();
  };
  // The item selected for editing stands out: white and thicker.
  const stroke = (selected, colour) => {
    ctx.lineWidth = selected ? 4 : 2;
    ctx.strokeStyle = selected ? "#fff" : colour;
    ctx.stroke();
  };
  for (const m of state.masks) {
    path(m.polygon, true);
    ctx.fillStyle = "rgba(255, 80, 80, 0.25)"; ctx.fill();
    stroke(isSelected("mask", m.token), "#ff5050");
  }
  ctx.font = "12px system-ui, sans-serif";
  for (const r of state.rules) {
    const key = ruleGeometry(r);
    const pts = r[key] || [];
    if (!pts.length) continue;
    path(pts, key === "field");
    stroke(isSelected("rule", r.name), key === "segments" ? "#ffd000" : "#00d0ff");
    ctx.fillStyle = ctx.strokeStyle;
    ctx.fillText(r.name, pts[0][0] * w + 4, pts[0][1] * h - 4);
  }
  ctx.lineWidth = 2;
  if (performance.now() - state.boxesAt < 2000) {
    for (const o of state.boxes) {
      const [x1, y1, x2, y2] = o.box;
      ctx.strokeStyle = o.class === "face" ? "#ff9d00" : "#40ff80";
      ctx.strokeRect(x1 * w, y1 * h, (x2 - x1) * w, (y2 - y1) * h);
      ctx.fillStyle = ctx.strokeStyle;
      ctx.fillText(`${o.class} ${o.id}`, x1 * w + 2, y1 * h + 12);
    }
  }
  const d = state.drawing;
  if (d && d.points.length) {
    ctx.setLineDash([6, 4]);
    path(d.points, d.kind !== "line" && d.points.length > 2);
    ctx.strokeStyle = "#fff"; ctx.stroke();
    ctx.setLineDash([]);
    for (const [x, y] of d.points) { ctx.fillStyle = "#fff"; ctx.fillRect(x * w - 3, y * h - 3, 6, 6); }
  }
  requestAnimationFrame(draw);
}
requestAnimationFrame(draw);

function pointOf(ev) {
  const rect = canvas.getBoundingClientRect();
  const clamp = (v) => Math.min(1, Math.max(0, v));
  return [clamp((ev.clientX - rect.left) / rect.width), clamp((ev.clientY - rect.top) / rect.height)];
}

// Which geometry a rule has: "segments" (a line) or "field" (a zone). OccupancyCounting holds
// both keys, one of them empty; a LoiteringDetector's empty field is the whole picture.
function ruleGeometry(rule) {
  const has = (k) => Array.isArray(rule[k]) && rule[k].length > 0;
  return has("segments") && !has("field") ? "segments" : "field";
}

// `edit`: the token or name of the mask or rule whose geometry the drawing replaces.
function beginDrawing(kind, target, edit) {
  state.drawing = { kind, target, edit, points: [] };
  const what = kind === "line" ? "a line (two points or more)" : "a zone (three points or more)";
  const verb = edit === undefined ? "Drawing" : `Redrawing ${edit} as`;
  $("draw-help").textContent = `${verb} ${what}: click points, double-click to finish, Escape to cancel.`;
}

canvas.addEventListener("click", (ev) => {
  const d = state.drawing;
  if (!d) return;
  const p = pointOf(ev);
  const last = d.points[d.points.length - 1];
  // The two clicks of a double-click land on the same spot: keep one point.
  if (last && Math.hypot(p[0] - last[0], p[1] - last[1]) < 0.005) return;
  d.points.push(p);
});

canvas.addEventListener("dblclick", (ev) => {
  ev.preventDefault();
  if (state.drawing) finishDrawing();
});

document.addEventListener("keydown", (ev) => {
  if (ev.key === "Escape" && state.drawing) { state.drawing = null; $("draw-help").textContent = ""; }
});

const round = (pts) => pts.map(([x, y]) => [Math.round(x * 1e4) / 1e4, Math.round(y * 1e4) / 1e4]);

async function finishDrawing() {
  const d = state.drawing;
  state.drawing = null;
  $("draw-help").textContent = "";
  const need = d.kind === "line" ? 2 : 3;
  if (d.points.length < need) { report(new Error(`a ${d.kind} needs at least ${need} points`)); return; }
  const pts = round(d.points);
  if (d.edit !== undefined) { await saveGeometry(d, pts); return; }
  if (d.target === "mask") {
    if (await change("POST", "/api/masks", { polygon: pts })) await loadMasks();
    return;
  }
  const type = $("rule-type").value;
  const taken = new Set(state.rules.map((r) => r.name));
  let name = $("rule-name").value.trim();
  for (let i = 1; !name || taken.has(name); i++) name = `${d.kind}-${i}`;
  const rule = { type, name };
  rule[d.kind === "line" ? "segments" : "field"] = pts;
  if (await change("POST", "/api/rules", rule)) { $("rule-name").value = ""; await loadRules(); }
}

// A redrawn mask keeps its token and colour, a redrawn rule its name and settings (PUT sends
// the stored rule with the new geometry; the server keeps what a mask's PUT leaves out).
async function saveGeometry(d, pts) {
  const enc = encodeURIComponent(d.edit);
  if (d.target === "mask") {
    if (await change("PUT", `/api/masks/${enc}`, { polygon: pts })) await loadMasks();
    return;
  }
  const rule = state.rules.find((r) => r.name === d.edit);
  if (!rule) { report(new Error(`rule ${d.edit} is gone`)); return; }
  if (await change("PUT", `/api/rules/${enc}`, { ...rule, [ruleGeometry(rule)]: pts })) await loadRules();
}

$("draw-mask").addEventListener("click", () => beginDrawing("zone", "mask"));
$("draw-rule").addEventListener("click", () => {
  const line = $("rule-type").value.startsWith("Line");
  beginDrawing(line ? "line" : "zone", "rule");
});

// -- settings lists -------------------------------------------------------------------------

const isAdmin = () => Boolean(state.user && state.user.level === "Administrator");

// A list with a Delete button per item for administrators. With `select` ({kind, key}) an
// item's label is a button that selects it for editing (see showEditors).
function listWithDelete(ul, items, label, onDelete, select) {
  ul.replaceChildren();
  const admin = isAdmin();
  for (const item of items) {
    const li = document.createElement("li");
    if (admin && select) {
      const key = select.key(item);
      li.dataset.key = key;
      const pick = document.createElement("button");
      pick.type = "button"; pick.className = "item"; pick.textContent = label(item);
      pick.title = "Select to redraw or edit";
      pick.addEventListener("click", () => selectItem(select.kind, key));
      li.append(pick);
    } else {
      li.textContent = label(item);
    }
    if (admin) {
      const b = document.createElement("button");
      b.type = "button"; b.className = "small"; b.textContent = "Delete";
      b.addEventListener("click", () => onDelete(item));
      li.append(b);
    }
    ul.append(li);
  }
}

async function loadMasks() {
  try { state.masks = (await api("GET", "/api/masks")).masks; } catch (_) { return; }
  listWithDelete($("masks"), state.masks, (m) => `${m.token}: ${m.polygon.length} points`, async (m) => {
    if (await change("DELETE", `/api/masks/${encodeURIComponent(m.token)}`)) await loadMasks();
  }, { kind: "mask", key: (m) => m.token });
  showEditors();
}

async function loadRules() {
  try { state.rules = (await api("GET", "/api/rules")).rules; } catch (_) { return; }
  listWithDelete($("rules"), state.rules, (r) => `${r.name} (${r.type})`, async (r) => {
    if (await change("DELETE", `/api/rules/${encodeURIComponent(r.name)}`)) await loadRules();
  }, { kind: "rule", key: (r) => r.name });
  showEditors();
}

// -- editing a mask or rule in place --------------------------------------------------------
// The selected item ({kind: "mask" | "rule", key: token or name}) is highlighted in its list
// and on the overlay; its editor offers Redraw (new geometry, same token or name) and, for a
// rule, a form with the settings its type has. The lists reload from the server after every
// change, so the editor always shows what the camera holds.

const isSelected = (kind, key) => Boolean(state.selected && state.selected.kind === kind && state.selected.key === key);
const selectedMask = () => state.masks.find((m) => isSelected("mask", m.token));
const selectedRule = () => state.rules.find((r) => isSelected("rule", r.name));

function selectItem(kind, key) {
  state.selected = isSelected(kind, key) ? null : { kind, key }; // a second click deselects
  state.drawing = null;
  $("draw-help").textContent = "";
  showEditors();
}

function showEditors() {
  if (state.selected && !selectedMask() && !selectedRule()) state.selected = null; // deleted
  for (const li of document.querySelectorAll("#masks li, #rules li")) {
    const kind = li.parentElement.id === "masks" ? "mask" : "rule";
    li.classList.toggle("selected", isSelected(kind, li.dataset.key));
  }
  const mask = selectedMask();
  $("mask-edit").hidden = !mask;
  if (mask) $("mask-edit-title").textContent = `Editing ${mask.token}`;
  const rule = selectedRule();
  $("rule-edit").hidden = !rule;
  if (rule) showRuleForm(rule);
}

// What each rule setting is called on the page; the rule's own JSON says which it has.
const RULE_SETTINGS = {
  direction: "Direction of crossing", classes: "Objects", report_interval_s: "Report interval (s)",
  reset_times: "Reset at (HH:MM, comma-separated)", time_threshold_s: "Loitering after (s)",
  min_wait_s: "Shortest wait counted (s)",
};
const DIRECTIONS = ["Any", "Left", "Right"];
const OBJECT_CLASSES = ["Human", "HumanFace"]; // tt:ObjectType names the rules accept

function showRuleForm(rule) {
  $("rule-edit-title").textContent = `Editing ${rule.name} (${rule.type})`;
  const fields = [];
  for (const [key, value] of Object.entries(rule)) {
    if (!(key in RULE_SETTINGS)) continue; // type, name (the key), geometry (Redraw)
    if (key === "classes") {
      const set = document.createElement("fieldset");
      const legend = document.createElement("legend");
      legend.textContent = RULE_SETTINGS[key];
      set.append(legend);
      for (const c of new Set([...OBJECT_CLASSES, ...value])) {
        const label = document.createElement("label");
        const box = Object.assign(document.createElement("input"),
          { type: "checkbox", name: "classes", value: c, checked: value.includes(c) });
        label.append(box, ` ${c}`);
        set.append(label);
      }
      fields.push(set);
      continue;
    }
    let input;
    if (key === "direction") {
      input = document.createElement("select");
      for (const d of DIRECTIONS) input.append(new Option(d, d, false, d === value));
    } else if (key === "reset_times") {
      input = Object.assign(document.createElement("input"), { value: value.join(", ") });
    } else {
      input = Object.assign(document.createElement("input"),
        { type: "number", min: "0", step: "any", value: String(value) });
    }
    input.id = `rule-edit-${key}`;
    const label = document.createElement("label");
    label.append(RULE_SETTINGS[key], input);
    fields.push(label);
  }
  $("rule-edit-fields").replaceChildren(...fields);
}

// The stored rule with the form's settings: name and geometry stay as they are.
function ruleFromForm(rule) {
  const out = { ...rule };
  for (const key of Object.keys(rule)) {
    if (!(key in RULE_SETTINGS)) continue;
    if (key === "classes") {
      out.classes = [...document.querySelectorAll("#rule-edit-fields input[name=classes]:checked")]
        .map((box) => box.value);
      continue;
    }
    const input = $(`rule-edit-${key}`);
    if (key === "direction") out.direction = input.value;
    else if (key === "reset_times") out.reset_times = input.value.split(",").map((t) => t.trim()).filter(Boolean);
    else out[key] = input.valueAsNumber; // an empty field is NaN, sent as null: the server says why
  }
  return out;
}

$("rule-edit").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const rule = selectedRule();
  if (!rule) return;
  if (await change("PUT", `/api/rules/${encodeURIComponent(rule.name)}`, ruleFromForm(rule))) await loadRules();
});

$("rule-redraw").addEventListener("click", () => {
  const rule = selectedRule();
  if (rule) beginDrawing(ruleGeometry(rule) === "segments" ? "line" : "zone", "rule", rule.name);
});

$("mask-redraw").addEventListener("click", () => {
  const mask = selectedMask();
  if (mask) beginDrawing("zone", "mask", mask.token);
});

for (const id of ["mask-edit-done", "rule-edit-done"]) {
  $(id).addEventListener("click", () => { state.selected = null; state.drawing = null; showEditors(); });
}

async function loadSettings() {
  try {
    const imaging = await api("GET", "/api/imaging");
    for (const k of ["brightness", "contrast", "saturation"]) $(k).value = imaging[k];
    showPrivacy(await api("GET", "/api/privacy"));
  } catch (err) { report(err); }
  await loadUsers();
}

// Masking: mode and style as selects, thresholds as numbers; each change is one PUT (the same
// store the ONVIF Analytics module edits). The answer is what the camera now holds.
function showPrivacy(p) {
  const dl = $("privacy");
  fill(dl, [["Zone style", p.zone_style]]);
  const put = async (key, value) => {
    const out = await change("PUT", "/api/privacy", { [key]: value });
    showPrivacy(out || await api("GET", "/api/privacy"));
  };
  const row = (label, input) => {
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.append(input);
    dl.prepend(dt, dd);
  };
  const pick = (key, options) => {
    const select = document.createElement("select");
    for (const o of options) select.append(new Option(o, o, false, o === p[key]));
    select.addEventListener("change", () => put(key, select.value));
    return select;
  };
  const number = (key) => {
    const input = Object.assign(document.createElement("input"),
      { type: "number", min: "0.01", max: "0.99", step: "0.01", value: String(p[key]) });
    input.addEventListener("change", () => put(key, Number(input.value)));
    return input;
  };
  row("Person threshold", number("person_threshold"));
  row("Face threshold", number("face_threshold"));
  row("Style", pick("style", p.styles));
  row("Mode", pick("mode", p.modes));
  const hint = dl.parentElement.querySelector(".hint");
  if (hint) hint.textContent = "A mode change loads the detectors it needs: the picture is fully masked meanwhile.";
}

for (const k of ["brightness", "contrast", "saturation"]) {
  $(k).addEventListener("change", () => change("PUT", "/api/imaging", { [k]: Number($(k).value) }));
}

async function loadUsers() {
  let users;
  try { users = (await api("GET", "/api/users")).users; } catch (_) { return; }
  listWithDelete($("users"), users, (u) => `${u.username} (${u.level})`, async (u) => {
    if (await change("DELETE", `/api/users/${encodeURIComponent(u.username)}`)) await loadUsers();
  });
}

$("user-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = {
    username: $("new-username").value, password: $("new-password").value, level: $("new-level").value,
  };
  if (await change("POST", "/api/users", body)) { $("user-form").reset(); await loadUsers(); }
});

// -- start ----------------------------------------------------------------------------------

api("GET", "/api/session").then(start, showLogin);
