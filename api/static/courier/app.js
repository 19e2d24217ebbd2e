// The courier's device: log in with a key file, cache the trust bundle, scan and verify labels
// on the device, check the seals, have releaser and receiver sign the handover, keep the signed
// statement in an outbox until the network returns, and check each receipt's inclusion proof.
// Keys stay in this page's memory only: nothing below stores a seed or a session token.
import { qrEncode } from "/courier/vendor/qr.js";
import { prepareZXingModule, readBarcodes } from "/courier/vendor/zxing.js";
import { unlockKeyFile } from "./keyfile.js";
import { verifyLabel } from "./label.js";
import {
  Refusal, b64decode, b64encode, canonicalJson, equalBytes, formatTime, hex, keyId, logIn, parseCanonical,
  sha256Bytes, signEnvelope, utf8, verifyCheckpoint, verifyInclusion, verifySingle,
} from "./lib.js";
import * as store from "./store.js";
import { personBySubject, standing, verifyBundle } from "./trust.js";

prepareZXingModule({
  overrides: { locateFile: (path, prefix) => (path.endsWith(".wasm") ? "/courier/vendor/zxing_reader.wasm" : prefix + path) },
});

const $ = (sel) => document.querySelector(sel);
const EVENT_TYPE = "application/vnd.custody.event.v1+json";

// ---- language -------------------------------------------------------------------------------
let catalogue = {};
let lang = "zh-CN";

function t(key, vars = {}) {
  const text = catalogue[lang]?.[key] ?? catalogue["zh-CN"]?.[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));
}

// Times as the authority's people read them: in its zone (from GET /v1/time-zone when online,
// kept for offline use; Asia/Shanghai until then), never the UTC the statements carry.
let zone = localStorage.getItem("custody.zone") || "Asia/Shanghai";

function showTime(seconds) {
  try {
    return new Intl.DateTimeFormat(lang === "en" ? "en-GB" : "zh-CN", {
      timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    }).format(new Date(seconds * 1000));
  } catch {
    return formatTime(seconds);
  }
}

async function refreshZone() {
  try {
    const { body } = await api("/v1/time-zone");
    if (typeof body?.time_zone === "string" && body.time_zone) {
      zone = body.time_zone;
      localStorage.setItem("custody.zone", zone);
    }
  } catch {
    // offline or refused: the zone kept from before stands
  }
}

// A refusal in the reader's language: what its code means, the code, then the verifier's own
// words (the detail names the key, the person or the byte; it stays as the verifier wrote it).
function refusalText(error) {
  const key = `refusal.${error.code}`;
  const summary = catalogue[lang]?.[key];
  if (!summary) return `${error.message} (${error.code})`;
  return t("refusal.detail", { summary, code: error.code, message: error.message });
}

function applyLanguage() {
  document.documentElement.lang = lang;
  document.title = t("app.title");
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  renderNet();
  renderOutbox();
  renderMine();
  if (current) renderVerdict();
}

// ---- state (memory only) -----------------------------------------------------------------------
let session = null; // {subject, name, roles, seed, keyId, token}
let trust = null; // verified bundle
let current = null; // {ok, result|error, offline}
let draft = null; // {event, payload, statementId, slots: [{slot, person, sig}]}

const now = () => Math.floor(Date.now() / 1000);

function say(el, text, state = "") {
  const node = typeof el === "string" ? $(el) : el;
  node.textContent = text;
  node.dataset.state = state;
}

function renderNet() {
  say("#net", navigator.onLine ? t("net.online") : t("net.offline"), navigator.onLine ? "online" : "offline");
}

async function api(path, init = {}) {
  const headers = { ...(init.headers ?? {}) };
  if (session?.token) headers.authorization = `Bearer ${session.token}`;
  const r = await fetch(path, { ...init, headers, cache: "no-store" });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    // The service gives every refusal in English (message) and Chinese (message_zh).
    const text = (lang === "zh-CN" ? body.message_zh : null) ?? body.message;
    const e = new Refusal(body.error ?? `http_${r.status}`, text ?? `HTTP ${r.status}`);
    e.status = r.status;
    throw e;
  }
  return { status: r.status, body };
}

// ---- trust bundle ---------------------------------------------------------------------------
async function loadCachedTrust() {
  const cached = await store.get("settings", "bundle");
  if (!cached) return null;
  try {
    return verifyBundle(cached.bundle, cached.pin);
  } catch (e) {
    console.warn("cached trust bundle refused", e);
    return null;
  }
}

async function refreshTrust() {
  const { body } = await api("/v1/trust-bundle");
  const pinned = await store.get("settings", "bundle");
  const verified = verifyBundle(body, pinned?.pin); // first bundle pins its authority
  await store.put("settings", { bundle: body, pin: verified.authority.id, fetched_at: now() }, "bundle");
  trust = verified;
}

// ---- login ----------------------------------------------------------------------------------
async function login(ev) {
  ev.preventDefault();
  const file = $("#keyfile").files[0];
  const status = $("#login-status");
  if (!file) return;
  say(status, t("login.working"), "busy");
  try {
    const key = await unlockKeyFile(await file.text(), $("#passphrase").value);
    $("#passphrase").value = "";
    let token = null;
    if (navigator.onLine) {
      const s = await logIn((path, init) => api(path, init).then((r) => r.body), key);
      token = s.token;
      session = { token };
      await refreshTrust();
      await refreshZone();
    } else {
      trust = await loadCachedTrust();
      if (!trust) throw new Refusal("not_found", t("scan.notrust"));
    }
    const me = trust.people.find((p) => p.keyId === key.keyId);
    if (!me) throw new Refusal("unknown_signer", "this key is not in the authority's directory");
    session = { subject: me.subject, name: me.name, roles: me.roles, seed: key.seed, keyId: key.keyId, publicKey: key.publicKey, token };
    const cached = await store.get("settings", "bundle");
    say(status, token ? t("login.done", { name: me.name, roles: me.roles.map((r) => t(`role.${r}`)).join(lang === "en" ? ", " : "、") }) : t("login.offline", { when: showTime(cached.fetched_at) }), "ok");
    say("#authority", t("login.pinned", { authority: `${trust.authority.name} · ${trust.authority.id.slice(0, 16)}…` }));
    document.body.dataset.session = token ? "online" : "offline";
    $("#logout").hidden = false;
    if (token) {
      await refreshPackages();
      sync();
    }
    if (current?.ok) renderHandover();
    await renderMine();
  } catch (e) {
    if (!session?.seed) session = null; // a half-done login leaves nothing behind
    say(status, t("login.failed", { reason: `${e.message} (${e.code ?? "error"})` }), "error");
  }
}

function logout() {
  if (session?.seed) session.seed.fill(0);
  session = null;
  draft = null;
  chosen = {};
  act = "";
  document.body.dataset.session = "";
  $("#logout").hidden = true;
  say("#login-status", "");
  renderHandover();
  renderMine();
}

// ---- packages the device knows -------------------------------------------------------------
async function fetchPackage(id) {
  if (!session?.token || !navigator.onLine) return;
  try {
    const { body } = await api(`/v1/packages/${encodeURIComponent(id)}`);
    const local = await store.get("packages", id);
    // A statement queued here but not yet on the log is newer than what the server knows.
    if (local?.local && local.state.last_event !== body.state.last_event) {
      const queued = await store.get("outbox", local.state.last_event);
      if (queued && queued.state === "queued") return;
    }
    await store.put("packages", { package_id: id, state: body.state, fetched_at: now(), local: false });
  } catch (e) {
    console.warn("package state not refreshed", e);
  }
}

async function refreshPackages() {
  for (const p of await store.all("packages")) await fetchPackage(p.package_id);
}

// ---- scanning -------------------------------------------------------------------------------
let stream = null;
let scanning = false;
const detector = "BarcodeDetector" in window ? new window.BarcodeDetector({ formats: ["qr_code"] }) : null;

// What a decoded code is for: a package label, a statement another phone shows to be signed
// here, or a signature another phone made for the statement this phone holds.
let scanMode = "label";
let scanSlot = "";

async function startCamera(mode = "label", slot = "") {
  if (stream) {
    const was = scanMode;
    stopCamera(); // the same button again stops the camera; another one restarts it for its code
    if (was === mode) return;
  }
  scanMode = mode;
  scanSlot = slot;
  if (mode === "label") {
    $("#verdict").hidden = true;
    $("#verdict").dataset.state = "scanning";
    $("#handover").hidden = true;
    $("#seals-section").hidden = true;
  }
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
  } catch (e) {
    say("#scan-status", t("scan.nocamera", { reason: e.message }), "error");
    return;
  }
  const video = $("#video");
  video.srcObject = stream;
  video.hidden = false;
  await video.play();
  $("#camera").textContent = t("scan.stop");
  scanning = true;
  say("#scan-status", t("scan.idle"));
  scanLoop();
}

function stopCamera() {
  scanning = false;
  stream?.getTracks().forEach((tr) => tr.stop());
  stream = null;
  $("#video").hidden = true;
  $("#camera").textContent = t("scan.start");
}

async function decodeFrame(video) {
  if (detector) {
    const codes = await detector.detect(video);
    return codes.length === 1 ? codes[0].rawValue : null;
  }
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(video, 0, 0);
  const image = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const found = await readBarcodes(image, { formats: ["QRCode"], tryHarder: true, maxNumberOfSymbols: 2 });
  const valid = found.filter((r) => r.isValid);
  return valid.length === 1 ? valid[0].text : null;
}

async function scanLoop() {
  const video = $("#video");
  while (scanning) {
    if (video.readyState >= 2 && video.videoWidth) {
      const text = await decodeFrame(video).catch(() => null);
      if (text) {
        stopCamera();
        if (scanMode === "statement") await cosignScanned(text);
        else if (scanMode === "signature") await relayScanned(text, scanSlot);
        else await judge(text);
        return;
      }
      say("#scan-status", t("scan.nocode"));
    }
    await new Promise((r) => setTimeout(r, 150));
  }
}

async function judge(text) {
  if (!trust) trust = await loadCachedTrust();
  if (!trust) {
    say("#scan-status", t("scan.notrust"), "error");
    return;
  }
  draft = null;
  chosen = {};
  act = "";
  try {
    const result = await verifyLabel(text, trust, now());
    current = { ok: true, result, offline: !navigator.onLine, at: now() };
    await fetchPackage(result.manifest.package_id);
  } catch (e) {
    if (!(e instanceof Refusal)) console.error(e);
    current = { ok: false, error: e instanceof Refusal ? e : new Refusal("format", String(e)), offline: !navigator.onLine, at: now() };
  }
  renderVerdict();
  renderHandover();
  renderMine();
  const item = document.createElement("li");
  item.textContent = `${showTime(current.at)} ${current.ok ? `${t("verdict.valid")} ${current.result.manifest.package_id}` : `${t("verdict.refused")} ${current.error.code}`}`;
  $("#history").prepend(item);
}

function renderVerdict() {
  const v = $("#verdict");
  v.hidden = false;
  v.dataset.state = current.ok ? "valid" : "refused";
  $("#verdict-title").textContent = current.ok ? t("verdict.valid") : t("verdict.refused");
  $("#verdict-where").textContent = current.offline ? t("verdict.offline") : t("verdict.ondevice");
  const facts = $("#facts");
  facts.replaceChildren();
  if (!current.ok) {
    $("#verdict-reason").textContent = refusalText(current.error);
    $("#seals-section").hidden = true;
    return;
  }
  $("#verdict-reason").textContent = "";
  const m = current.result.manifest;
  const s = current.result.sealer;
  const rows = [
    ["fact.package", m.package_id],
    ["fact.exam", `${m.exam} · ${m.session} · ${m.position}`],
    ["fact.paper", m.paper],
    ["fact.classification", t(`class.${m.classification}`)],
    ["fact.copies", `${m.copies}（${m.seals.length} × ${m.bag_size}）`],
    ["fact.seals", m.seals.join(", ")],
    ["fact.destination", `${m.destination.site} ${m.destination.room}`],
    ["fact.window", `${showTime(m.window.start)} – ${showTime(m.window.end)}`],
    ["fact.route", m.route.map((r) => `${r.person}@${r.place}`).join(" → ")],
    ["fact.sealer", `${s.name} (${s.subject}, ${s.keyId.slice(0, 16)}…)`],
  ];
  for (const [k, v2] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = t(k);
    const dd = document.createElement("dd");
    dd.textContent = v2;
    facts.append(dt, dd);
  }
  renderSeals(m);
}

function renderSeals(m) {
  const box = $("#seal-list");
  const legend = document.createElement("legend");
  legend.dataset.i18n = "seals.hint";
  legend.textContent = t("seals.hint");
  box.replaceChildren(legend);
  m.seals.forEach((serial, i) => {
    const id = `seal-${i}`;
    const label = document.createElement("label");
    label.htmlFor = id;
    const input = document.createElement("input");
    input.type = "checkbox";
    input.id = id;
    input.value = serial;
    input.addEventListener("change", checkSeals);
    label.append(input, ` ${serial}`);
    box.append(label);
  });
  $("#seal-count").value = "";
  $("#seal-count").disabled = Boolean(draft); // a signed draft's seals are part of its payload
  $("#seals-section").hidden = false;
  checkSeals();
}

function observedSeals() {
  return Array.from(document.querySelectorAll("#seal-list input:checked"), (i) => i.value);
}

function checkSeals() {
  if (!current?.ok) return true;
  const m = current.result.manifest;
  const seen = observedSeals();
  const count = Number($("#seal-count").value);
  const ok = seen.length === m.seals.length && count === m.seals.length;
  if (!$("#seal-count").value && seen.length === 0) say("#seal-status", t("seals.hint"));
  else say("#seal-status", ok ? t("seals.ok", { n: m.seals.length }) : t("seals.mismatch"), ok ? "ok" : "warn");
  return ok;
}

// ---- handovers and the other acts signed on the device ---------------------------------------
// docs/formats.md, "Kinds, signer slots and states": for each kind, the statuses it is allowed
// from, its slots (fixed: the holder and the next on the route; chosen: a person with one of the
// roles), and its body. The log judges again; the device offers only what can be accepted.
const HOLDER_ROLES = ["proposer", "printer", "courier", "custodian", "chief_examiner", "secrecy_officer"];
const INSPECTORS = ["custodian", "secrecy_officer", "supervisor", "courier"];
const AT_OPENING = [["examiner", ["chief_examiner"]], ["supervisor", ["supervisor"]]];
const ACTS = {
  inspect: { from: ["sealed", "in_transit", "stored", "returned"], frozenOk: true, seals: true, chosen: [["inspector", INSPECTORS]] },
  patrol: { from: ["stored", "returned"], frozenOk: true, seals: true, chosen: [["inspector", INSPECTORS]] },
  open: { from: ["stored"], seals: true, chosen: AT_OPENING },
  distribute: { from: ["opened"], copies: "copies", chosen: AT_OPENING },
  recover: { from: ["distributed"], copies: "distributed", chosen: AT_OPENING },
  return: { from: ["recovered", "opened"], holder: true, chosen: [["receiver", ["custodian"]]] },
  destroy: { from: ["stored", "returned", "recovered"], frozenOk: true, method: true, copies: "copies", chosen: [["officer", ["destruction_officer"]], ["witness", ["supervisor", "secrecy_officer", "auditor"]]] },
};
const NEXT_STATUS = { dispatch: "in_transit", handover: "in_transit", receive: "stored", open: "opened", distribute: "distributed", recover: "recovered", return: "returned", destroy: "destroyed" };

let chosen = {}; // slot -> person, picked before the first signature: part of the payload
let act = ""; // the kind the user picked ("" = the first one offered)

// The transfer the route asks next, if any: dispatch, handover or receive into a site's store.
function transferPlan(st) {
  if (!st.next_holder || st.frozen || !["sealed", "in_transit", "stored"].includes(st.status)) return null;
  const next = personBySubject(trust, st.next_holder);
  if (next?.roles.includes("custodian") && st.status !== "stored") {
    return { kind: "receive", fixed: [["releaser", st.holder], ["receiver", st.next_holder]], chosen: [["custodian2", ["custodian"]]], seals: true };
  }
  const kind = st.status === "sealed" ? "dispatch" : "handover";
  const witness = st.handover_witness ? [["witness", ["supervisor"]]] : [];
  return { kind, fixed: [["releaser", st.holder], ["receiver", st.next_holder]], chosen: witness, seals: true };
}

function plansFor(st) {
  const plans = [];
  const transfer = transferPlan(st);
  if (transfer) plans.push(transfer);
  for (const [kind, a] of Object.entries(ACTS)) {
    if (!a.from.includes(st.status) || (st.frozen && !a.frozenOk)) continue;
    plans.push({ kind, fixed: a.holder ? [["releaser", st.holder]] : [], chosen: a.chosen, seals: Boolean(a.seals), copies: a.copies, method: a.method });
  }
  return plans;
}

async function planFor(packageId) {
  const cached = await store.get("packages", packageId);
  if (!cached) return { problem: t("handover.unknown") };
  const st = cached.state;
  const plans = plansFor(st);
  if (!plans.length) return { problem: t("handover.unsupported", { status: t(`state.${st.status}`) }) };
  const kind = draft?.event.kind ?? act;
  const plan = plans.find((p) => p.kind === kind) ?? plans[0];
  const taken = new Set(plan.fixed.map(([, who]) => who));
  const slots = [...plan.fixed];
  const choices = {};
  for (const [slot, roles] of plan.chosen) {
    choices[slot] = trust.people.filter((p) => p.roles.some((r) => roles.includes(r)) && !taken.has(p.subject));
    let who = draft?.event.actors[slot] ?? chosen[slot];
    if (who === undefined && session && choices[slot].some((p) => p.subject === session.subject) && !slots.some(([, w]) => w === session.subject)) {
      who = session.subject; // the person logged in fills the first slot their roles fit
      chosen[slot] = who;
    }
    slots.push([slot, who ?? ""]);
  }
  return { ...plan, state: st, plans, slots, choices };
}

function actChoice(plan) {
  const wrap = document.createElement("div");
  const label = document.createElement("label");
  label.htmlFor = "act";
  label.textContent = t("handover.act");
  const select = document.createElement("select");
  select.id = "act";
  for (const p of plan.plans) select.append(new Option(t(`handover.kind.${p.kind}`), p.kind));
  select.value = plan.kind;
  select.disabled = Boolean(draft);
  select.addEventListener("change", () => {
    act = select.value;
    chosen = {};
    renderHandover();
  });
  wrap.append(label, select);
  return wrap;
}

function personChoice(plan, slot) {
  const wrap = document.createElement("div");
  const label = document.createElement("label");
  label.htmlFor = `choose-${slot}`;
  label.textContent = t("handover.choose", { slot: t(`handover.slot.${slot}`) });
  const select = document.createElement("select");
  select.id = `choose-${slot}`;
  select.append(new Option("—", ""));
  for (const p of plan.choices[slot]) select.append(new Option(`${p.name} (${p.subject})`, p.subject));
  select.value = chosen[slot] ?? "";
  select.disabled = Boolean(draft);
  select.addEventListener("change", () => {
    chosen[slot] = select.value;
    say("#handover-status", ""); // a refusal for a slot not yet named no longer stands
    renderHandover();
  });
  wrap.append(label, select);
  return wrap;
}

function bodyInputs(plan) {
  const box = $("#act-body");
  box.replaceChildren();
  const field = (id, key, type, value) => {
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = t(key);
    const input = document.createElement("input");
    input.id = id;
    input.type = type;
    if (type === "number") { input.min = "0"; input.inputMode = "numeric"; }
    input.value = value;
    input.disabled = Boolean(draft);
    box.append(label, input);
  };
  if (plan.copies) field("act-copies", "handover.copies", "number", String(draft?.copies ?? plan.state[plan.copies] ?? plan.state.copies));
  if (plan.method) field("act-method", "handover.method", "text", draft?.event.body.method ?? t("handover.method.default"));
}

// Renders may overlap (a scan and a choice in quick succession): only the latest one draws.
let renderSeq = 0;

async function renderHandover() {
  const seq = ++renderSeq;
  $("#handover").dataset.rendering = "1"; // cleared when the latest render has drawn
  try {
    await drawHandover(seq);
  } finally {
    if (seq === renderSeq) delete $("#handover").dataset.rendering;
  }
}

async function drawHandover(seq) {
  const section = $("#handover");
  const slotsBox = $("#slots");
  if (!current?.ok || !trust) {
    section.hidden = true;
    return;
  }
  const plan = await planFor(current.result.manifest.package_id);
  if (seq !== renderSeq) return;
  section.hidden = false;
  // Key files already picked survive the redraw (choosing a person for one slot redraws them
  // all): kept by slot and person, given back to the new input below. Passphrases are not kept.
  const picked = new Map();
  for (const input of slotsBox.querySelectorAll(".slot input[type='file']")) {
    const box = input.closest(".slot");
    if (input.files.length) picked.set(`${box.dataset.slot}|${box.dataset.subject}`, input.files[0]);
  }
  slotsBox.replaceChildren();
  $("#act-box").replaceChildren();
  $("#act-body").replaceChildren();
  $("#queue").hidden = true;
  if (plan.problem) {
    say("#handover-status", plan.problem, "warn");
    $("#kind").textContent = "";
    return;
  }
  $("#act-box").append(actChoice(plan));
  $("#kind").textContent = t(`handover.kind.${plan.kind}`);
  $("#seals-section").hidden = !plan.seals;
  bodyInputs(plan);
  for (const [slot, subject] of plan.slots) {
    const who = personBySubject(trust, subject);
    const div = document.createElement("div");
    div.className = "slot";
    div.dataset.slot = slot;
    div.dataset.subject = subject || "";
    const h = document.createElement("h3");
    h.textContent = `${t(`handover.slot.${slot}`)}：${who ? who.name : subject || "—"}`;
    div.append(h);
    if (plan.choices[slot]) div.append(personChoice(plan, slot));
    if (!subject) {
      slotsBox.append(div);
      continue;
    }
    const signed = draft?.slots.find((s) => s.slot === slot && s.sig);
    if (signed) {
      const p = document.createElement("p");
      p.className = "signed";
      p.dataset.state = "signed";
      p.textContent = t("handover.signed", { slot: t(`handover.slot.${slot}`), name: who?.name ?? subject });
      div.append(p);
    } else if (session && session.subject === subject) {
      const b = document.createElement("button");
      b.type = "button";
      b.id = `sign-${slot}`;
      b.textContent = t("handover.sign.self", { name: session.name });
      b.addEventListener("click", () =>
        sign(plan, slot, subject, { seed: session.seed, keyId: session.keyId })
          .catch((e) => say("#handover-status", `${e.message} (${e.code ?? "error"})`, "error")));
      div.append(b);
    } else {
      const fileId = `slot-${slot}-file`;
      const passId = `slot-${slot}-pass`;
      div.insertAdjacentHTML("beforeend",
        `<p>${escapeHtml(t("handover.sign.other", { name: who?.name ?? subject }))}</p>` +
        `<label for="${fileId}">${escapeHtml(t("login.keyfile"))}</label><input type="file" id="${fileId}" accept=".key,application/json">` +
        `<label for="${passId}">${escapeHtml(t("login.passphrase"))}</label><input type="password" id="${passId}" autocomplete="off">` +
        `<button type="button" id="slot-${slot}-sign">${escapeHtml(t("handover.unlock"))}</button>` +
        `<p>${escapeHtml(t("relay.or"))}</p>` +
        `<button type="button" id="slot-${slot}-relay">${escapeHtml(t("relay.show"))}</button>` +
        `<button type="button" id="slot-${slot}-relay-scan">${escapeHtml(t("relay.scan"))}</button>` +
        `<p class="status" id="slot-${slot}-status" role="status"></p>`);
      const kept = picked.get(`${slot}|${subject}`);
      if (kept) {
        const files = new DataTransfer();
        files.items.add(kept);
        div.querySelector(`#${fileId}`).files = files.files;
      }
      div.querySelector(`#slot-${slot}-relay`).addEventListener("click", () => {
        try {
          showStatement(freezeDraft(plan));
        } catch (e) {
          say(div.querySelector(`#slot-${slot}-status`), `${e.message} (${e.code ?? "error"})`, "error");
        }
      });
      div.querySelector(`#slot-${slot}-relay-scan`).addEventListener("click", () => {
        if (!draft) {
          say(div.querySelector(`#slot-${slot}-status`), t("relay.first"), "error");
          return;
        }
        startCamera("signature", slot);
      });
      div.querySelector(`#slot-${slot}-sign`).addEventListener("click", async () => {
        const f = div.querySelector(`#${fileId}`).files[0];
        const pass = div.querySelector(`#${passId}`);
        if (!f) return;
        try {
          const key = await unlockKeyFile(await f.text(), pass.value);
          pass.value = "";
          await sign(plan, slot, subject, key);
          key.seed.fill(0); // the other person's key is forgotten at once
        } catch (e) {
          say(div.querySelector(`#slot-${slot}-status`), `${e.message} (${e.code ?? "error"})`, "error");
        }
      });
    }
    slotsBox.append(div);
  }
  $("#queue").hidden = !(draft && draft.slots.every((s) => s.sig));
}

const escapeHtml = (s) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function actBody(plan, packageId) {
  const body = {};
  if (plan.seals) body.seals = observedSeals();
  const copiesInput = $("#act-copies");
  if (plan.copies) {
    const n = Number(copiesInput?.value);
    if (!copiesInput?.value || !Number.isInteger(n) || n < 0) throw new Refusal("usage", t("handover.copies.bad"));
    if (plan.kind === "destroy") body.copies = { [packageId]: n };
    else body.copies = n;
  }
  if (plan.method) {
    const method = $("#act-method")?.value.trim();
    if (!method) throw new Refusal("usage", t("handover.method.bad"));
    body.method = method;
  }
  return body;
}

function freezeDraft(plan) {
  if (draft && draft.packageId === current.result.manifest.package_id) return draft;
  if (plan.slots.some(([, person]) => !person)) throw new Refusal("usage", t("handover.choose.all"));
  const m = current.result.manifest;
  const event = {
    type: "custody.event.v1",
    kind: plan.kind,
    authority: trust.authority.id,
    time: formatTime(now()),
    place: $("#place").value.trim(),
    packages: { [m.package_id]: plan.state.last_event },
    actors: Object.fromEntries(plan.slots),
    body: actBody(plan, m.package_id),
    corrects: null,
  };
  const payload = canonicalJson(event);
  $("#place").disabled = true;
  for (const i of document.querySelectorAll("#seal-list input, #seal-count, #act-body input, #act")) i.disabled = true;
  draft = { packageId: m.package_id, event, payload, statementId: hex(sha256Bytes(payload)), slots: plan.slots.map(([slot, person]) => ({ slot, person, sig: null })), plan };
  return draft;
}

async function sign(plan, slot, subject, key) {
  const who = personBySubject(trust, subject);
  if (!who || who.keyId !== key.keyId) throw new Refusal("unknown_signer", t("handover.wrongkey", { name: who?.name ?? subject }));
  const d = freezeDraft(plan);
  const problem = standing(trust, who, now(), now());
  if (problem) throw problem;
  const env = signEnvelope(EVENT_TYPE, d.payload, [key]);
  d.slots.find((s) => s.slot === slot).sig = env.signatures[0];
  await renderHandover();
}

// What the package looks like once the statement is on the log, so that the next statement
// made on this device chains to it even before it is synced (the log's answer replaces it).
function stateAfter(st, event, statementId) {
  const next = { ...st, last_event: statementId, last_time: event.time };
  const kind = event.kind;
  if (NEXT_STATUS[kind]) next.status = NEXT_STATUS[kind];
  if (["dispatch", "handover", "receive"].includes(kind)) {
    next.holder = event.actors.receiver;
    const at = next.route.indexOf(next.holder);
    next.next_holder = at >= 0 && at + 1 < next.route.length ? next.route[at + 1] : null;
  } else if (kind === "open") {
    next.holder = event.actors.examiner;
  } else if (kind === "return") {
    next.holder = event.actors.receiver;
  } else if (kind === "destroy") {
    next.holder = null;
    next.next_holder = null;
  }
  if (kind === "distribute") next.distributed = event.body.copies;
  if (kind === "recover") next.recovered = event.body.copies;
  return next;
}

async function queueDraft() {
  const d = draft;
  const envelope = { payload: b64encodeBytes(d.payload), payloadType: EVENT_TYPE, signatures: d.slots.map((s) => s.sig) };
  await store.put("outbox", {
    statement_id: d.statementId, envelope, package_id: d.packageId, kind: d.event.kind,
    created: now(), order: nextOrder(), state: "queued", receipt: null, error: null, proof: null,
  });
  const cached = await store.get("packages", d.packageId);
  const st = stateAfter(cached.state, d.event, d.statementId);
  await store.put("packages", { package_id: d.packageId, state: st, fetched_at: cached.fetched_at, local: true });
  draft = null;
  chosen = {};
  act = "";
  $("#place").disabled = false;
  $("#seal-count").disabled = false;
  say("#handover-status", t("handover.queued"), "queued");
  $("#slots").replaceChildren();
  $("#act-box").replaceChildren();
  $("#act-body").replaceChildren();
  $("#queue").hidden = true;
  $("#seals-section").hidden = true;
  await renderOutbox();
  await renderMine();
  sync();
}

const b64encodeBytes = (b) => btoa(String.fromCharCode(...b));

// ---- escort check-in ("all well") -----------------------------------------------------------
async function renderMine() {
  const list = $("#mine");
  list.replaceChildren();
  const mine = session ? (await store.all("packages")).filter((p) => p.state.holder === session.subject) : [];
  say("#mine-empty", session ? (mine.length ? "" : t("mine.empty")) : t("mine.login"));
  for (const p of mine) {
    const li = document.createElement("li");
    li.dataset.package = p.package_id;
    li.append(`${p.package_id} · ${t(`state.${p.state.status}`)} · ${p.state.last_time ?? ""} `);
    if (p.state.status === "in_transit" && !p.state.frozen) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "checkin";
      b.textContent = t("mine.checkin");
      b.setAttribute("aria-label", `${t("mine.checkin")} ${p.package_id}`);
      b.addEventListener("click", () => checkin(p));
      li.append(b);
    }
    list.append(li);
  }
}

async function checkin(p) {
  if (!trust || !session?.seed) return;
  const event = {
    type: "custody.event.v1",
    kind: "checkin",
    authority: trust.authority.id,
    time: formatTime(now()),
    place: $("#place").value.trim(),
    packages: { [p.package_id]: p.state.last_event },
    actors: { escort: session.subject },
    body: {},
    corrects: null,
  };
  const payload = canonicalJson(event);
  const envelope = signEnvelope(EVENT_TYPE, payload, [{ seed: session.seed, keyId: session.keyId }]);
  const statementId = hex(sha256Bytes(payload));
  await store.put("outbox", {
    statement_id: statementId, envelope, package_id: p.package_id, kind: "checkin",
    created: now(), order: nextOrder(), state: "queued", receipt: null, error: null, proof: null,
  });
  await store.put("packages", { ...p, state: { ...p.state, last_event: statementId }, local: true });
  await renderOutbox();
  await renderMine();
  sync();
}

// ---- signing on another phone ---------------------------------------------------------------
// docs/formats.md, "The courier's device": this phone shows the frozen statement as a QR code
// (CPS1); the other person's phone, logged in with their own key, checks it, shows what they are
// about to sign, signs, and shows its signature as a QR code (CPG1) that this phone scans,
// verifies under that person's certified key and puts in its slot. No key leaves its phone.
const b64url = (bytes) => b64encode(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
function fromB64url(text, what) {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new Refusal("format", `${what} is not base64url`);
  const std = text.replace(/-/g, "+").replace(/_/g, "/");
  return b64decode(std + "=".repeat((4 - (std.length % 4)) % 4), what);
}

function drawQr(canvas, text) {
  // Screen to camera at arm's length: level L keeps the symbol small enough for a phone's width.
  const { data, size } = qrEncode(text, { ecc: "L", border: 4 });
  const scale = Math.max(2, Math.floor(300 / size));
  canvas.width = canvas.height = size * scale;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = "#000";
  data.forEach((row, y) => row.forEach((dark, x) => dark && ctx.fillRect(x * scale, y * scale, scale, scale)));
}

function showStatement(d) {
  $("#relay").hidden = false;
  drawQr($("#relay-code"), `CPS1:${b64url(d.payload)}`);
  say("#relay-status", t("relay.shown", { kind: t(`handover.kind.${d.event.kind}`), id: d.statementId.slice(0, 12) }));
  $("#relay").scrollIntoView?.();
}

async function relayScanned(text, slot) {
  const status = $(`#slot-${slot}-status`) ?? $("#handover-status");
  try {
    const m = /^CPG1:([0-9a-f]{64})\.([0-9a-f]{64})\.([A-Za-z0-9_-]+)$/.exec(text);
    if (!m) throw new Refusal("format", t("relay.notsig"));
    if (!draft || m[1] !== draft.statementId) throw new Refusal("chain", t("relay.otherstatement"));
    const d = draft;
    const entry = d.slots.find((x) => x.slot === slot);
    const who = personBySubject(trust, entry.person);
    if (!who || who.keyId !== m[2]) throw new Refusal("unknown_signer", t("handover.wrongkey", { name: who?.name ?? entry.person }));
    const sig = { keyid: m[2], sig: b64encode(fromB64url(m[3], "signature")) };
    verifySingle({ payload: b64encode(d.payload), payloadType: EVENT_TYPE, signatures: [sig] }, EVENT_TYPE, who.key, t("relay.their", { name: who.name }));
    const problem = standing(trust, who, now(), now());
    if (problem) throw problem;
    entry.sig = sig;
    $("#relay").hidden = true;
    await renderHandover();
  } catch (e) {
    say(status, `${e.message} (${e.code ?? "error"})`, "error");
  }
}

let cosigning = null; // {payload, event, statementId, slots: [slot names this person fills]}

async function cosignScanned(text) {
  $("#cosign-code").hidden = true;
  $("#cosign-confirm").hidden = true;
  cosigning = null;
  try {
    if (!session?.seed) throw new Refusal("usage", t("cosign.login"));
    if (!text.startsWith("CPS1:")) throw new Refusal("format", t("cosign.notstatement"));
    const payload = fromB64url(text.slice(5), "statement");
    const event = parseCanonical(payload, "statement");
    if (event.type !== "custody.event.v1" || typeof event.actors !== "object" || !event.actors) {
      throw new Refusal("format", t("cosign.notstatement"));
    }
    if (event.authority !== trust.authority.id) throw new Refusal("unknown_signer", t("cosign.otherauthority"));
    const slots = Object.entries(event.actors).filter(([, who]) => who === session.subject).map(([slot]) => slot);
    if (!slots.length) throw new Refusal("role", t("cosign.notnamed", { name: session.name }));
    const known = Object.entries(event.packages).map(([id, head]) => [id, head]);
    const warnings = [];
    for (const [id, head] of known) {
      const cached = await store.get("packages", id);
      if (cached && cached.state.last_event !== head) warnings.push(t("cosign.otherhead", { id }));
    }
    cosigning = { payload, event, statementId: hex(sha256Bytes(payload)), slots };
    renderCosign(warnings);
  } catch (e) {
    say("#cosign-status", `${e.message} (${e.code ?? "error"})`, "error");
    $("#cosign-summary").replaceChildren();
  }
}

function renderCosign(warnings) {
  const { event, statementId, slots } = cosigning;
  const rows = [
    ["cosign.kind", t(`handover.kind.${event.kind}`)],
    ["fact.package", Object.keys(event.packages).join(", ")],
    ["cosign.time", event.time],
    ["handover.place", event.place || "—"],
    ...Object.entries(event.actors).map(([slot, who]) => [`handover.slot.${slot}`, `${personBySubject(trust, who)?.name ?? who} (${who})`]),
    ...(event.body.seals ? [["fact.seals", event.body.seals.join(", ")]] : []),
    ...(event.body.copies !== undefined ? [["handover.copies", JSON.stringify(event.body.copies)]] : []),
    ...(event.body.method ? [["handover.method", event.body.method]] : []),
    ["cosign.statement", `${statementId.slice(0, 16)}…`],
  ];
  const dl = $("#cosign-summary");
  dl.replaceChildren();
  for (const [k, v] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = t(k);
    const dd = document.createElement("dd");
    dd.textContent = v;
    dl.append(dt, dd);
  }
  say("#cosign-status", [t("cosign.check", { slot: slots.map((x) => t(`handover.slot.${x}`)).join("、") }), ...warnings].join(" "), warnings.length ? "warn" : "");
  $("#cosign-confirm").hidden = false;
}

function cosignConfirm() {
  if (!cosigning || !session?.seed) return;
  const who = personBySubject(trust, session.subject);
  const problem = who ? standing(trust, who, now(), now()) : new Refusal("unknown_signer", t("cosign.login"));
  if (problem) {
    say("#cosign-status", `${problem.message} (${problem.code})`, "error");
    return;
  }
  const env = signEnvelope(EVENT_TYPE, cosigning.payload, [{ seed: session.seed, keyId: session.keyId }]);
  const sig = env.signatures[0];
  const canvas = $("#cosign-code");
  drawQr(canvas, `CPG1:${cosigning.statementId}.${sig.keyid}.${b64url(b64decode(sig.sig))}`);
  canvas.hidden = false;
  $("#cosign-confirm").hidden = true;
  say("#cosign-status", t("cosign.signed"), "signed");
  cosigning = null;
}

// ---- outbox ---------------------------------------------------------------------------------
// Statements are sent in the order they were signed: a chain's next link names the one before
// it, so two signed in the same second must not swap. `order` is the wall clock in milliseconds,
// made strictly increasing on this page; items queued before it existed sort by `created`.
let lastOrder = 0;
function nextOrder() {
  lastOrder = Math.max(Date.now(), lastOrder + 1);
  return lastOrder;
}
const byOrder = (a, b) => (a.order ?? a.created * 1000) - (b.order ?? b.created * 1000);

let syncing = false;

async function sync() {
  if (syncing || !navigator.onLine) return;
  syncing = true;
  try {
    const items = (await store.all("outbox")).sort(byOrder);
    for (const item of items) {
      if (item.state === "queued") await send(item);
      if (item.state === "synced" && item.proof !== "ok" && session?.token) await prove(item);
    }
  } finally {
    syncing = false;
    await renderOutbox();
    await renderMine();
  }
}

async function send(item) {
  try {
    const { body } = await api("/v1/events", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(item.envelope),
    });
    if (body.statement_id !== item.statement_id) throw new Refusal("format", "the receipt names another statement");
    item.state = "synced";
    item.receipt = body;
    item.proof = "pending";
  } catch (e) {
    if (e instanceof TypeError) return; // the network is not back: stays queued, honestly
    if (e.status && (e.status >= 500 || e.status === 408 || e.status === 429)) return;
    item.state = "refused";
    item.error = { code: e.code, message: e.message };
  }
  await store.put("outbox", item);
}

async function prove(item) {
  try {
    const cp = verifyCheckpoint(item.receipt.checkpoint, trust.authority.logOrigin, trust.authority.logKey);
    const { body: entry } = await api(`/v1/entries/${item.receipt.index}`);
    const leaf = b64decode(entry.leaf, "leaf");
    const parsed = parseCanonical(leaf, "log entry");
    const ours = equalBytes(canonicalJson(parsed.envelope), canonicalJson(item.envelope)) && parsed.type === "custody.entry.v1";
    const { body: proof } = await api(`/v1/proofs/inclusion?index=${item.receipt.index}&size=${cp.size}`);
    const path = proof.proof.map((h) => b64decode(h, "proof hash"));
    item.proof = ours && verifyInclusion(leaf, item.receipt.index, cp.size, path, cp.root) ? "ok" : "failed";
    item.received = parsed.received;
  } catch (e) {
    if (e instanceof TypeError) return;
    item.proof = "failed";
    item.proof_error = `${e.message} (${e.code})`;
  }
  await store.put("outbox", item);
}

async function renderOutbox() {
  const list = $("#outbox");
  if (!list) return;
  const items = (await store.all("outbox")).sort((a, b) => byOrder(b, a));
  list.replaceChildren();
  if ($("#handover-status").dataset.state === "queued" && !items.some((i) => i.state === "queued")) {
    say("#handover-status", ""); // sent: the outbox below says what became of it
  }
  say("#outbox-empty", items.length ? "" : t("outbox.empty"));
  for (const item of items) {
    const li = document.createElement("li");
    li.dataset.state = item.state;
    li.dataset.proof = item.proof ?? "";
    li.dataset.statement = item.statement_id;
    let text;
    if (item.state === "queued") text = t("outbox.queued");
    else if (item.state === "refused") text = t("outbox.refused", { reason: `${item.error.message} (${item.error.code})` });
    else if (item.proof === "ok") text = t("outbox.synced", { index: item.receipt.index });
    else if (item.proof === "failed") text = t("outbox.proof.failed", { index: item.receipt.index });
    else text = t("outbox.synced.unproven", { index: item.receipt.index });
    const findings = item.receipt?.findings?.map((f) => f.kind).join(", ");
    li.textContent = `${item.package_id} · ${item.kind} · ${showTime(item.created)} · ${item.statement_id.slice(0, 12)}… — ${text}${findings ? ` · ${t("outbox.findings", { findings })}` : ""}`;
    list.append(li);
  }
}

// ---- start ----------------------------------------------------------------------------------
async function start() {
  catalogue = await (await fetch("/courier/i18n.json")).json();
  const saved = localStorage.getItem("custody.lang");
  lang = saved ?? (navigator.language.toLowerCase().startsWith("zh") ? "zh-CN" : "zh-CN");
  applyLanguage();
  $("#lang").addEventListener("click", () => {
    lang = lang === "zh-CN" ? "en" : "zh-CN";
    localStorage.setItem("custody.lang", lang);
    applyLanguage();
  });
  $("#login-form").addEventListener("submit", login);
  $("#logout").addEventListener("click", logout);
  $("#camera").addEventListener("click", () => startCamera("label"));
  $("#cosign").addEventListener("click", () => startCamera("statement"));
  $("#cosign-confirm").addEventListener("click", cosignConfirm);
  $("#check-text").addEventListener("click", () => judge($("#label-text").value));
  $("#seal-count").addEventListener("input", checkSeals);
  $("#queue").addEventListener("click", queueDraft);
  $("#sync").addEventListener("click", sync);
  window.addEventListener("online", () => { renderNet(); sync(); });
  window.addEventListener("offline", renderNet);
  window.addEventListener("pagehide", () => session?.seed?.fill(0));
  setInterval(() => { renderNet(); sync(); }, 3000);
  trust = await loadCachedTrust();
  if (trust) say("#authority", t("login.pinned", { authority: `${trust.authority.name} · ${trust.authority.id.slice(0, 16)}…` }));
  await renderOutbox();
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/courier/sw.js", { scope: "/courier/" }).catch((e) => console.warn("no service worker", e));
  }
  document.body.dataset.ready = "true";
}

// Exposed for the benchmark and the tests' own checks; holds no secret.
window.custody = { verifyLabel, verifyBundle, unlockKeyFile, readBarcodes, keyId, utf8, loadCachedTrust };

start();
