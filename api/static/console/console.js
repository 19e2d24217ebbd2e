// The secrecy officer's console. The service's read routes give the lists (packages, incidents,
// the access log); what is shown as verified is checked here, in the browser: each timeline
// event's signatures under the root-signed certificates (trust.json) and its inclusion in the
// checkpoint the log key signed; the checkpoint's witness cosignatures under the witnesses'
// keys; an incident act's statement on the log. Acts on incidents are signed here with the
// officer's key, unlocked from the key file for that one signature and zeroed at once.
import { blake2b, ed, hsalsa, sha256, xsalsa20poly1305 } from "/courier/vendor/crypto.js";
import { unlockKeyFile } from "/courier/keyfile.js";
import {
  Refusal, b64decode, b64encode, canonicalJson, concat, equalBytes, formatTime, hex, keyId, pae, parseCanonical,
  logIn, parseTime, signEnvelope, utf8, verifyCheckpoint, verifyInclusion,
} from "/courier/lib.js";
import { standing, verifyBundle } from "/courier/trust.js";

const $ = (s) => document.querySelector(s);
const ACT_TYPE = "application/vnd.custody.incident-act.v1+json";
const PAGE = 500; // the routes' largest page

let catalogue = {};
let lang = "zh-CN";
const t = (key, vars = {}) =>
  (catalogue[lang]?.[key] ?? catalogue["zh-CN"]?.[key] ?? key).replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));

let token = null; // memory only
let trust = null;
let me = null; // {subject, keyId, name, roles}
let zone = "Asia/Shanghai";
let checkpoint = null; // verified {size, root, note}
let witnessCheck = null; // {quorum, listed, results: [{name, ok, at, reason}]}
let allPackages = []; // unfiltered, for the filters' choices
let packages = []; // as filtered by the service
let incidents = [];
let incident = null; // the one shown
let accessRecords = [];
let shown = null;

function say(sel, text, state = "") {
  const el = $(sel);
  el.textContent = text;
  el.dataset.state = state;
}

const said = new Map(); // status lines, shown again in the other language on a switch
function show(sel, render, state = "") {
  said.set(sel, { render, state });
  say(sel, render(), state);
}
const joined = (items) => items.join(lang === "en" ? ", " : "、");

async function api(path, init = {}) {
  const headers = { ...(init.headers ?? {}) };
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(path, { ...init, headers, cache: "no-store" });
  const text = await r.text();
  let body = text;
  try { body = JSON.parse(text); } catch { /* text routes: the checkpoint */ }
  // The service gives every refusal in English (message) and Chinese (message_zh).
  const said = (lang === "zh-CN" ? body.message_zh : null) ?? body.message;
  if (!r.ok) throw new Refusal(body.error ?? `http_${r.status}`, said ?? `HTTP ${r.status}`);
  return body;
}

/** Every page of a paged list route. */
async function everyPage(path, params) {
  const out = [];
  let offset = 0;
  while (offset !== null) {
    const q = new URLSearchParams({ ...params, offset: String(offset), limit: String(PAGE) });
    const page = await api(`${path}?${q}`);
    out.push(...page.items);
    offset = page.next_offset;
  }
  return out;
}

/** A UTC time as the authority's people read it (their zone, named). */
function when(iso) {
  if (!iso) return "—";
  try {
    const f = new Intl.DateTimeFormat(lang === "en" ? "en-GB" : "zh-CN", {
      timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    });
    return `${f.format(new Date(iso))}`;
  } catch {
    return iso;
  }
}

const nameOf = (subject) =>
  subject === trust.authority.id ? t("console.authority") : trust.people.find((p) => p.subject === subject)?.name ?? subject;
const rungName = (name, title) => catalogue[lang]?.[`ladder.${name}`] ?? title ?? name;
const nameOfKey = (id) => trust.people.find((p) => p.keyId === id)?.name ?? `${id.slice(0, 16)}…`;

function cell(tr, content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content); else td.textContent = content;
  tr.append(td);
  return td;
}

// -- login -----------------------------------------------------------------------------------

async function login(ev) {
  ev.preventDefault();
  const file = $("#keyfile").files[0];
  if (!file) return;
  show("#login-status", () => t("login.working"));
  try {
    const key = await unlockKeyFile(await file.text(), $("#passphrase").value);
    $("#passphrase").value = "";
    const s = await logIn(api, key);
    key.seed.fill(0); // each act unlocks the key file again: no seed outlives its signature
    token = s.token;
    trust = verifyBundle(await api("/v1/trust-bundle"), null);
    const person = trust.people.find((p) => p.keyId === key.keyId);
    me = { subject: s.subject, keyId: key.keyId, name: person?.name ?? s.subject, roles: s.roles };
    zone = (await api("/v1/time-zone")).time_zone;
    show("#login-status", () => t("console.login.done", { name: me.name, roles: joined(s.roles.map((r) => t(`role.${r}`))) }), "ok");
    await loadAll();
  } catch (e) {
    show("#login-status", () => t("login.failed", { reason: `${e.message} (${e.code ?? "error"})` }), "error");
  }
}

async function loadAll() {
  await loadCheckpoint();
  allPackages = await everyPage("/v1/packages", {});
  for (const sel of ["#nav", "#log-section", "#incidents-section", "#packages-section", "#report-section", "#access-section"]) $(sel).hidden = false;
  fillFilters();
  packages = allPackages; // no filter chosen yet: the same list (read once, recorded once)
  renderTable();
  await loadIncidents();
  await loadAccess();
}

// -- the checkpoint and its witnesses ----------------------------------------------------------

/** A C2SP vkey of type 0x04 (cosignature/v1): {name, keyHash, key}, or null if malformed. */
function parseVkey(vkey) {
  // name+hash+base64(type || key): the base64 may itself hold '+', so split off two fields only
  const m = /^([^+\s]+)\+([0-9a-f]{8})\+(\S+)$/.exec(String(vkey));
  if (!m) return null;
  const [, name, hash, b64] = m;
  let raw;
  try { raw = b64decode(b64, "vkey"); } catch { return null; }
  if (raw.length !== 33 || raw[0] !== 0x04) return null;
  const key = raw.subarray(1);
  const keyHash = sha256(concat(utf8(name), Uint8Array.of(0x0a, 0x04), key)).subarray(0, 4);
  return hex(keyHash) === hash ? { name, keyHash, key } : null;
}

/** Each listed witness's cosignature line on `note`, verified here (docs/formats.md "Cosignature"). */
function checkCosignatures(note, origin, policy) {
  const cut = note.lastIndexOf("\n\n");
  const text = note.slice(0, cut + 1);
  const lines = note.slice(cut + 2, -1).split("\n");
  const results = [];
  for (const w of policy.witnesses) {
    const v = parseVkey(w.vkey);
    const line = lines.map((l) => /^\u2014 (\S+) (\S+)$/.exec(l)).find((m) => m && m[1] === w.name && m[1] !== origin);
    if (!v) { results.push({ name: w.name, ok: false, reason: "format" }); continue; }
    if (!line) { results.push({ name: w.name, ok: false, reason: "missing" }); continue; }
    let raw;
    try { raw = b64decode(line[2], "cosignature"); } catch { results.push({ name: w.name, ok: false, reason: "format" }); continue; }
    if (raw.length !== 76 || !equalBytes(raw.subarray(0, 4), v.keyHash)) { results.push({ name: w.name, ok: false, reason: "unknown_signer" }); continue; }
    const at = Number(new DataView(raw.buffer, raw.byteOffset + 4, 8).getBigUint64(0));
    const message = concat(utf8(`cosignature/v1\ntime ${at}\n`), utf8(text));
    const ok = ed.verify(raw.subarray(12), message, v.key, { zip215: false });
    results.push({ name: w.name, ok, at: formatTime(at), reason: ok ? null : "signature" });
  }
  return { quorum: policy.quorum, listed: policy.witnesses.length, results };
}

async function loadCheckpoint() {
  const note = await api("/v1/checkpoint");
  checkpoint = { ...verifyCheckpoint(note, trust.authority.logOrigin, trust.authority.logKey), note };
  try {
    witnessCheck = checkCosignatures(note, trust.authority.logOrigin, await api("/v1/witnesses"));
  } catch (e) {
    if (e.code !== "not_found") throw e;
    witnessCheck = null; // the authority lists no witnesses
  }
  renderCheckpoint();
}

function renderCheckpoint() {
  if (!checkpoint) return;
  say("#checkpoint", t("console.checkpoint", { size: checkpoint.size, root: hex(checkpoint.root).slice(0, 16) }), "ok");
  const list = $("#witnesses");
  list.replaceChildren();
  if (!witnessCheck) {
    say("#witness-summary", t("witness.none"), "");
    return;
  }
  const good = witnessCheck.results.filter((r) => r.ok).length;
  const met = good >= witnessCheck.quorum;
  say("#witness-summary", t(met ? "witness.met" : "witness.short", { good, listed: witnessCheck.listed, quorum: witnessCheck.quorum }), met ? "ok" : "error");
  for (const r of witnessCheck.results) {
    const li = document.createElement("li");
    li.dataset.ok = String(r.ok);
    li.className = r.ok ? "sig-ok" : "sig-bad";
    li.textContent = r.ok ? `✓ ${r.name} · ${t("witness.at", { at: when(r.at) })}` : `✗ ${r.name} · ${t(`witness.${r.reason}`)}`;
    list.append(li);
  }
}

// -- packages ----------------------------------------------------------------------------------

const STATES = ["sealed", "in_transit", "stored", "opened", "distributed", "recovered", "returned", "destroyed"];

function fillFilters() {
  const opts = {
    "#f-exam": [...new Set(allPackages.map((p) => p.exam))].sort(),
    "#f-site": [...new Set(allPackages.map((p) => p.site))].sort(),
    "#f-holder": [...new Set(allPackages.map((p) => p.holder))].sort(),
    "#f-state": STATES,
    "#i-exam": [...new Set(allPackages.map((p) => p.exam))].sort(),
    "#i-status": ["open", "acknowledged", "contained", "resolved"],
    "#i-severity": ["critical", "high", "medium", "low"],
  };
  const label = {
    "#f-state": (v) => t(`state.${v}`),
    "#f-holder": (v) => nameOf(v),
    "#i-status": (v) => t(`istatus.${v}`),
    "#i-severity": (v) => t(`severity.${v}`),
  };
  for (const [sel, values] of Object.entries(opts)) {
    const el = $(sel);
    const keep = el.value;
    el.replaceChildren(new Option(t("console.all"), ""));
    for (const v of values) el.append(new Option(label[sel] ? label[sel](v) : v, v));
    el.value = keep;
  }
  for (const [sel, values, any] of [
    ["#r-package", allPackages.map((p) => p.package_id).sort(), false],
    ["#r-exam", [...new Set(allPackages.map((p) => p.exam))].sort(), true],
  ]) {
    const el = $(sel);
    const keep = el.value;
    el.replaceChildren(...(any ? [new Option(t("report.anyexam"), "")] : []));
    for (const v of values) el.append(new Option(v, v));
    if (keep) el.value = keep;
  }
  const who = $("#a-who");
  const keep = who.value;
  who.replaceChildren(new Option(t("console.all"), ""));
  for (const p of [...trust.people].sort((a, b) => a.subject.localeCompare(b.subject))) who.append(new Option(`${p.name} (${p.subject})`, p.subject));
  who.value = keep;
}

async function loadPackages() {
  const q = {};
  for (const [name, sel] of [["exam", "#f-exam"], ["site", "#f-site"], ["holder", "#f-holder"], ["state", "#f-state"]]) {
    if ($(sel).value) q[name] = $(sel).value;
  }
  if ($("#f-overdue").checked) q.overdue = "true";
  packages = await everyPage("/v1/packages", q);
  renderTable();
}

function renderTable() {
  const body = $("#packages tbody");
  body.replaceChildren();
  for (const p of packages) {
    const tr = document.createElement("tr");
    tr.dataset.package = p.package_id;
    tr.dataset.state = p.status;
    tr.dataset.overdue = String(Boolean(p.overdue));
    const a = document.createElement("a");
    a.href = `#${encodeURIComponent(p.package_id)}`;
    a.textContent = p.package_id;
    a.addEventListener("click", (e) => { e.preventDefault(); timeline(p.package_id); });
    const flags = [p.frozen ? t("console.frozen") : "", p.compromised ? t("console.compromised") : ""].filter(Boolean);
    cell(tr, a);
    cell(tr, p.exam);
    cell(tr, p.site ?? "");
    cell(tr, [t(`state.${p.status}`), ...flags].join(" · "));
    cell(tr, p.holder ? nameOf(p.holder) : "—");
    cell(tr, p.next_holder ? nameOf(p.next_holder) : "—");
    cell(tr, `${when(p.last_time)} ${p.last_place ?? ""}`);
    const late = cell(tr, p.overdue ? `${t("console.overdue.yes")}：${p.overdue}` : "—");
    if (p.overdue) late.className = "sig-bad";
    body.append(tr);
  }
  say("#counts", t("console.counts", { shown: packages.length, total: allPackages.length }));
}

/** Who signed a statement: each signature verified under the certified key its hint names. */
function signatures(envelope, at, received) {
  const payload = b64decode(envelope.payload, "payload");
  const message = pae(envelope.payloadType, payload);
  const systemId = keyId(trust.authority.systemKey);
  return envelope.signatures.map((s) => {
    if (s.keyid === systemId) {
      // The authority's system key signs the desk's statements (incidents, containment).
      const good = ed.verify(b64decode(s.sig, "signature"), message, trust.authority.systemKey, { zip215: false });
      return good ? { ok: true, who: t("slot.system"), system: true } : { ok: false, who: t("slot.system"), reason: "signature" };
    }
    const who = trust.people.find((p) => p.keyId === s.keyid);
    if (!who) return { ok: false, who: s.keyid.slice(0, 16), reason: "unknown_signer" };
    const good = ed.verify(b64decode(s.sig, "signature"), message, who.key, { zip215: false });
    if (!good) return { ok: false, who: who.name, reason: "signature" };
    const problem = standing(trust, who, at, received);
    return problem ? { ok: false, who: who.name, reason: problem.code } : { ok: true, who: who.name, subject: who.subject };
  });
}

/** A log entry read and checked here: the leaf is canonical and holds the envelope served. */
async function entry(index) {
  const e = await api(`/v1/entries/${index}`);
  const leaf = b64decode(e.leaf, "leaf");
  const parsed = parseCanonical(leaf, "log entry");
  if (!equalBytes(canonicalJson(parsed.envelope), canonicalJson(e.envelope))) throw new Refusal("format", `entry ${index}: leaf and envelope differ`);
  const event = parseCanonical(b64decode(e.envelope.payload, "payload"), "event");
  return { index, statementId: e.statement_id, received: parsed.received, envelope: e.envelope, leaf, event };
}

async function included(e) {
  const proof = await api(`/v1/proofs/inclusion?index=${e.index}&size=${checkpoint.size}`);
  return verifyInclusion(e.leaf, e.index, checkpoint.size, proof.proof.map((h) => b64decode(h, "proof")), checkpoint.root);
}

async function timeline(id) {
  shown = id;
  say("#timeline-summary", t("console.checking"));
  $("#timeline-section").hidden = false;
  $("#timeline-h").textContent = t("console.timeline", { id });
  const list = $("#timeline");
  list.replaceChildren();
  await loadCheckpoint(); // the latest signed tree: every event must be in it
  const got = await api(`/v1/packages/${encodeURIComponent(id)}/timeline`);
  let all = true;
  for (const ev of got.events) {
    const e = await entry(ev.index);
    const inTree = await included(e);
    const sigs = signatures(e.envelope, parseTime(e.event.time), parseTime(e.received));
    const verified = inTree && sigs.every((s) => s.ok);
    all &&= verified;
    const li = document.createElement("li");
    li.dataset.verified = String(verified);
    li.dataset.kind = e.event.kind;
    li.dataset.server = String(ev.verified);
    const head = document.createElement("div");
    const kind = document.createElement("span");
    kind.className = "kind";
    kind.textContent = `#${e.index} ${t(`kind.${e.event.kind}`)}`;
    const at = document.createElement("span");
    at.textContent = ` · ${t("console.time")} ${when(e.event.time)} · ${t("console.received")} ${when(e.received)}${e.event.place ? ` · ${e.event.place}` : ""}`;
    head.append(kind, at);
    const actors = document.createElement("div");
    actors.textContent = Object.entries(e.event.actors).map(([slot, s]) => `${t(`slot.${slot}`)}：${nameOf(s)}`).join("；");
    const sigLine = document.createElement("div");
    for (const s of sigs) {
      const span = document.createElement("span");
      span.className = s.ok ? "sig-ok" : "sig-bad";
      span.textContent = s.ok ? `✓ ${s.who} ` : `✗ ${s.who} (${s.reason}) `;
      sigLine.append(span);
    }
    const inc = document.createElement("span");
    inc.className = inTree ? "sig-ok" : "sig-bad";
    inc.textContent = `· ${inTree ? t("console.included") : t("console.notincluded")}`;
    sigLine.append(inc);
    const body = document.createElement("div");
    body.className = "small";
    body.textContent = e.event.body?.seals ? `${t("fact.seals")}：${e.event.body.seals.join(", ")}` : "";
    li.append(head, actors, sigLine, body);
    list.append(li);
  }
  const access = $("#access");
  access.replaceChildren();
  try {
    const read = await api(`/v1/access?object=${encodeURIComponent(`package:${id}`)}`);
    for (const r of read.records) {
      const li = document.createElement("li");
      li.textContent = `${when(r.at)} · ${nameOf(r.who)} · ${r.route}`;
      access.append(li);
    }
  } catch (e) {
    access.textContent = `${e.message} (${e.code})`;
  }
  say("#timeline-summary", all ? t("console.allverified", { n: got.events.length }) : t("console.problems"), all ? "ok" : "error");
  $("#timeline-section").scrollIntoView();
}

// -- incidents ---------------------------------------------------------------------------------

async function loadIncidents() {
  const q = {};
  for (const [name, sel] of [["status", "#i-status"], ["severity", "#i-severity"], ["exam", "#i-exam"]]) {
    if ($(sel).value) q[name] = $(sel).value;
  }
  incidents = await everyPage("/v1/incidents", q);
  renderIncidents();
}

function deadlineText(i) {
  if (!i.ack_deadline) return "—";
  const past = parseTime(i.ack_deadline) * 1000 < Date.now() && i.status === "open";
  return past ? `${when(i.ack_deadline)} · ${t("incident.pastdue")}` : when(i.ack_deadline);
}

function renderIncidents() {
  const body = $("#incidents tbody");
  body.replaceChildren();
  for (const i of incidents) {
    const tr = document.createElement("tr");
    tr.dataset.incident = i.id;
    tr.dataset.status = i.status;
    tr.dataset.severity = i.severity;
    const a = document.createElement("a");
    a.href = `#${encodeURIComponent(i.id)}`;
    a.textContent = i.id;
    a.addEventListener("click", (e) => { e.preventDefault(); showIncident(i.id); });
    const scope = [...(i.scope?.packages ?? []), ...(i.containment?.frozen?.length ? [`${t("console.frozen")}: ${i.containment.frozen.join(", ")}`] : [])];
    cell(tr, a);
    cell(tr, t(`detect.${i.kind}`));
    cell(tr, t(`severity.${i.severity}`));
    cell(tr, t(`istatus.${i.status}`));
    cell(tr, `${i.level} · ${rungName(i.level_name)}`);
    cell(tr, deadlineText(i));
    cell(tr, scope.join("；") || "—");
    body.append(tr);
  }
  const open = incidents.filter((i) => i.status !== "resolved").length;
  say("#incidents-count", t("console.incidents.count", { open, total: incidents.length }));
}

function fact(dl, key, value) {
  const dt = document.createElement("dt");
  dt.textContent = t(key);
  const dd = document.createElement("dd");
  dd.textContent = value === "" || value === null || value === undefined ? "—" : value;
  dl.append(dt, dd);
}

async function showIncident(id) {
  incident = await api(`/v1/incidents/${encodeURIComponent(id)}`);
  renderIncident();
  $("#incident-section").hidden = false;
  $("#incident-section").scrollIntoView();
}

function stillBlocked(i) {
  const lifted = new Set(i.containment.unblocked_keys ?? []);
  return (i.containment.blocked_keys ?? []).filter((k) => !lifted.has(k));
}

function renderIncident() {
  const i = incident;
  $("#incident-h").textContent = t("incident.heading", { id: i.id, kind: t(`detect.${i.kind}`) });
  $("#incident-section").dataset.incident = i.id;
  $("#incident-section").dataset.status = i.status;
  const dl = $("#incident-facts");
  dl.replaceChildren();
  fact(dl, "incident.severity", t(`severity.${i.severity}`));
  fact(dl, "incident.status", t(`istatus.${i.status}`));
  fact(dl, "incident.subject", i.subject);
  fact(dl, "incident.opened", when(i.opened_at));
  fact(dl, "incident.updated", when(i.updated_at));
  fact(dl, "incident.deadline", deadlineText(i));
  fact(dl, "incident.detail", lang === "en" ? i.detail : (i.detail_zh || i.detail));
  fact(dl, "incident.scope.packages", (i.scope.packages ?? []).join(", "));
  fact(dl, "incident.scope.exams", (i.scope.exams ?? []).join(", "));
  fact(dl, "incident.scope.papers", (i.scope.papers ?? []).join(", "));
  fact(dl, "incident.frozen", (i.containment.frozen ?? []).join(", "));
  fact(dl, "incident.compromised", (i.containment.compromised ?? []).join(", "));
  fact(dl, "incident.blocked", (i.containment.blocked_keys ?? []).map(nameOfKey).join(", "));
  fact(dl, "incident.unblocked", (i.containment.unblocked_keys ?? []).map(nameOfKey).join(", "));
  fact(dl, "incident.statements", String(i.statements.length));

  const ladder = $("#ladder");
  ladder.replaceChildren();
  for (const rung of i.ladder) {
    const li = document.createElement("li");
    li.dataset.level = String(rung.level);
    if (rung.level === i.level) {
      li.setAttribute("aria-current", "step");
      li.dataset.current = "true";
    }
    const roles = joined(rung.ack_roles.map((r) => t(`role.${r}`)));
    li.textContent = t("ladder.rung", { name: rungName(rung.name, rung.title), minutes: Math.round(rung.ack_within_seconds / 60), roles })
      + (rung.level === i.level ? ` ← ${t("ladder.now")}` : "");
    ladder.append(li);
  }

  const acts = $("#incident-acts");
  acts.replaceChildren();
  for (const a of i.acts) {
    const li = document.createElement("li");
    li.dataset.act = a.act;
    li.textContent = `${t(`act.${a.act}`)} · ${nameOf(a.person)} · ${when(a.time)} · ${a.statement_id.slice(0, 16)}`;
    acts.append(li);
  }
  if (!i.acts.length) acts.textContent = t("incident.noacts");

  const keys = $("#act-key");
  keys.replaceChildren(...stillBlocked(i).map((k) => new Option(`${nameOfKey(k)} · ${k.slice(0, 16)}…`, k)));
  $("#act-key-box").hidden = !("unblock" in i.next_acts);
  for (const b of document.querySelectorAll("#act-buttons button")) {
    const roles = i.next_acts[b.dataset.act];
    b.hidden = !roles;
    const mine = roles && roles.some((r) => me.roles.includes(r));
    b.disabled = !mine;
    b.title = roles && !mine ? t("act.notyourrole", { roles: joined(roles.map((r) => t(`role.${r}`))) }) : "";
  }
}

/** The act's statement on the log, checked here: signed by the system key alone, holding the
 * envelope this page signed, and included in the latest checkpoint the log key signed. */
async function proveOnLog(answer, envelope) {
  await loadCheckpoint();
  for (let index = checkpoint.size - 1; index >= Math.max(0, checkpoint.size - 64); index--) {
    const e = await entry(index);
    if (e.statementId !== answer.statement_id) continue;
    if (e.event.kind !== "incident" || !equalBytes(canonicalJson(e.event.body.act), canonicalJson(envelope))) {
      throw new Refusal("conflict", t("act.notonlog"));
    }
    const sigs = signatures(e.envelope, parseTime(e.event.time), parseTime(e.received));
    if (sigs.length !== 1 || !sigs[0].ok || !sigs[0].system) throw new Refusal("signature", t("act.notonlog"));
    if (!(await included(e))) throw new Refusal("log_consistency", t("act.notonlog"));
    return e;
  }
  throw new Refusal("not_found", t("act.notonlog"));
}

// -- a note sealed to the secrecy officers (docs/formats.md "Incident act") -------------------
// The log is public: what a person writes into an act goes on it only as one sealed box per
// secrecy officer standing now (libsodium crypto_box_seal: X25519 by WebCrypto, HSalsa20 box
// key, XSalsa20-Poly1305, nonce BLAKE2b-192(ephemeral pk || recipient pk)), beside the SHA-256
// of {"note", "salt"} (a random salt, so that a short note cannot be guessed from its hash).
const u32 = (b) => new Uint32Array(b.buffer, b.byteOffset, b.length / 4);

async function sealTo(recipient, plaintext) {
  const eph = await crypto.subtle.generateKey({ name: "X25519" }, true, ["deriveBits"]);
  const epk = new Uint8Array(await crypto.subtle.exportKey("raw", eph.publicKey));
  const peer = await crypto.subtle.importKey("raw", recipient, { name: "X25519" }, false, []);
  const shared = new Uint8Array(await crypto.subtle.deriveBits({ name: "X25519", public: peer }, eph.privateKey, 256));
  const boxKey = new Uint32Array(8);
  hsalsa(u32(utf8("expand 32-byte k")), u32(shared), new Uint32Array(4), boxKey);
  shared.fill(0);
  const nonce = blake2b(concat(epk, recipient), { dkLen: 24 });
  return concat(epk, xsalsa20poly1305(new Uint8Array(boxKey.buffer), nonce).encrypt(plaintext));
}

async function sealNote(text) {
  if (!text.trim()) return null;
  if ([...text].length > 4000) throw new Refusal("format", t("act.notetoolong"));
  const at = Math.floor(Date.now() / 1000);
  const officers = trust.people
    .filter((p) => p.roles.includes("secrecy_officer") && p.encryptionKey && !standing(trust, p, at, at))
    .sort((a, b) => (a.subject === b.subject ? (a.encryptionKeyId < b.encryptionKeyId ? -1 : 1) : a.subject < b.subject ? -1 : 1));
  if (!officers.length) throw new Refusal("role", t("act.noofficers"));
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const plaintext = canonicalJson({ note: text, salt: b64encode(salt) });
  const sealed = [];
  for (const o of officers) sealed.push({ to: o.subject, key: o.encryptionKeyId, box: b64encode(await sealTo(o.encryptionKey, plaintext)) });
  return { sha256: hex(sha256(plaintext)), sealed };
}

async function signAct(act) {
  const file = $("#keyfile").files[0];
  const i = incident;
  show("#act-status", () => t("act.working"));
  try {
    if (!file) throw new Refusal("usage", t("act.nokeyfile"));
    const noteSealed = await sealNote($("#act-note").value); // before the key is open
    const key = await unlockKeyFile(await file.text(), $("#act-pass").value);
    $("#act-pass").value = "";
    let envelope;
    try {
      if (key.keyId !== me.keyId) throw new Refusal("unknown_signer", t("act.otherkey"));
      const statement = {
        type: "custody.incident-act.v1",
        authority: trust.authority.id,
        incident: i.id,
        act,
        person: me.subject,
        time: formatTime(Math.floor(Date.now() / 1000)),
        note_sealed: noteSealed,
        key: act === "unblock" ? $("#act-key").value || null : null,
      };
      envelope = signEnvelope(ACT_TYPE, canonicalJson(statement), [key]);
    } finally {
      key.seed.fill(0); // the key is forgotten as soon as the act is signed
    }
    const answer = await api(`/v1/incidents/${encodeURIComponent(i.id)}/acts`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(envelope),
    });
    const onLog = await proveOnLog(answer, envelope);
    $("#act-note").value = "";
    incident = await api(`/v1/incidents/${encodeURIComponent(i.id)}`);
    renderIncident();
    await loadIncidents();
    show("#act-status", () => t("act.done", { act: t(`act.${act}`), index: onLog.index, status: t(`istatus.${answer.incident.status}`) }), "ok");
    $("#act-status").dataset.index = String(onLog.index);
  } catch (e) {
    show("#act-status", () => t("act.failed", { reason: `${e.message} (${e.code ?? "error"})` }), "error");
  }
}

// -- custody reports ---------------------------------------------------------------------------

function reportKind() {
  const kind = $("#r-kind").value;
  $("#r-package-box").hidden = kind !== "package";
  $("#r-exam-box").hidden = kind === "package";
  $("#r-from-box").hidden = $("#r-to-box").hidden = kind !== "period";
  const every = $("#r-exam").options[0]; // "every exam": a period may span exams, an exam report may not
  if (every) every.hidden = kind === "exam";
  if (kind === "exam" && !$("#r-exam").value && $("#r-exam").options.length > 1) $("#r-exam").selectedIndex = 1;
}

/** A wall-clock time typed in the authority's zone ("2027-03-01T08:00[:00]") as UTC (RFC 3339). */
function zoneToUtc(local) {
  if (!local) return null;
  const guess = Date.parse(`${local.length === 16 ? `${local}:00` : local}Z`);
  if (Number.isNaN(guess)) return null;
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-GB", {
    timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  }).formatToParts(new Date(guess)).map((p) => [p.type, p.value]));
  const shown = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour, +parts.minute, +parts.second);
  return new Date(guess - (shown - guess)).toISOString().replace(/\.\d{3}Z$/, "Z");
}

async function downloadReport(ev) {
  ev.preventDefault();
  const kind = $("#r-kind").value;
  const q = new URLSearchParams({ format: "pdf" });
  let name = "";
  if (kind === "package") {
    q.set("package", $("#r-package").value);
    name = $("#r-package").value;
  } else {
    if ($("#r-exam").value) q.set("exam", $("#r-exam").value);
    name = $("#r-exam").value || "period";
  }
  if (kind === "period") {
    const from = zoneToUtc($("#r-from").value);
    const to = zoneToUtc($("#r-to").value);
    if (!from || !to) {
      show("#report-status", () => t("report.needperiod"), "error");
      return;
    }
    q.set("from", from);
    q.set("to", to);
  }
  show("#report-status", () => t("report.working"));
  $("#report-button").disabled = true;
  try {
    const r = await fetch(`/v1/reports/custody?${q}`, { headers: { authorization: `Bearer ${token}` }, cache: "no-store" });
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      throw new Refusal(body.error ?? `http_${r.status}`, (lang === "zh-CN" ? body.message_zh : null) ?? body.message ?? `HTTP ${r.status}`);
    }
    const blob = await r.blob();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `custody-report-${name}.pdf`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
    show("#report-status", () => t("report.done", { file: a.download, kb: Math.ceil(blob.size / 1024) }), "ok");
  } catch (e) {
    show("#report-status", () => t("report.failed", { reason: `${e.message} (${e.code ?? "error"})` }), "error");
  } finally {
    $("#report-button").disabled = false;
  }
}

// -- the access log ----------------------------------------------------------------------------

async function loadAccess(ev) {
  ev?.preventDefault();
  const q = new URLSearchParams({ limit: "1000" });
  if ($("#a-object").value.trim()) q.set("object", $("#a-object").value.trim());
  if ($("#a-who").value) q.set("who", $("#a-who").value);
  try {
    const got = await api(`/v1/access?${q}`);
    accessRecords = [...got.records].sort((a, b) => b.index - a.index);
    renderAccess(got.size);
  } catch (e) {
    say("#access-count", `${e.message} (${e.code})`, "error");
  }
}

function renderAccess(size) {
  const body = $("#access-log tbody");
  body.replaceChildren();
  for (const r of accessRecords) {
    const tr = document.createElement("tr");
    tr.dataset.who = r.who;
    cell(tr, when(r.at));
    cell(tr, nameOf(r.who));
    cell(tr, r.route);
    cell(tr, r.objects.join(", "));
    body.append(tr);
  }
  if (size !== undefined) show("#access-count", () => t("access.count", { shown: accessRecords.length, size }));
}

// -- the page ----------------------------------------------------------------------------------

function applyLanguage() {
  document.documentElement.lang = lang;
  document.title = t("console.title");
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  $("#nav").setAttribute("aria-label", t("console.nav"));
  for (const [sel, s] of said) say(sel, s.render(), s.state);
  if (trust) {
    fillFilters();
    renderCheckpoint();
    renderTable();
    renderIncidents();
    renderAccess();
    if (incident) renderIncident();
    if (shown) timeline(shown);
  }
}

async function start() {
  catalogue = await (await fetch("/courier/i18n.json")).json();
  lang = localStorage.getItem("custody.lang") ?? "zh-CN";
  applyLanguage();
  $("#lang").addEventListener("click", () => {
    lang = lang === "zh-CN" ? "en" : "zh-CN";
    localStorage.setItem("custody.lang", lang);
    applyLanguage();
  });
  $("#login-form").addEventListener("submit", login);
  for (const sel of ["#f-exam", "#f-site", "#f-holder", "#f-state", "#f-overdue"]) $(sel).addEventListener("change", loadPackages);
  for (const sel of ["#i-status", "#i-severity", "#i-exam"]) $(sel).addEventListener("change", loadIncidents);
  $("#access-form").addEventListener("submit", loadAccess);
  $("#report-form").addEventListener("submit", downloadReport);
  $("#r-kind").addEventListener("change", reportKind);
  for (const b of document.querySelectorAll("#act-buttons button")) b.addEventListener("click", () => signAct(b.dataset.act));
  document.body.dataset.ready = "true";
}

start();
