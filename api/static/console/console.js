// The secrecy officer's console: packages by state with filters, and each package's timeline
// with every signature and its inclusion in the log verified here, in the browser, against the
// root-signed certificates (trust.json) and the log key's checkpoint. The server's word is used
// only for the package state it computes; what is shown as verified is checked on this page.
import { ed } from "/courier/vendor/crypto.js";
import { unlockKeyFile } from "/courier/keyfile.js";
import {
  Refusal, b64decode, canonicalJson, equalBytes, keyId, pae, parseCanonical, parseTime,
  signEnvelope, verifyCheckpoint, verifyInclusion,
} from "/courier/lib.js";
import { standing, verifyBundle } from "/courier/trust.js";

const $ = (s) => document.querySelector(s);
const LOGIN_TYPE = "application/vnd.custody.login.v1+json";

let catalogue = {};
let lang = "zh-CN";
const t = (key, vars = {}) =>
  (catalogue[lang]?.[key] ?? catalogue["zh-CN"]?.[key] ?? key).replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));

let token = null; // memory only
let trust = null;
let checkpoint = null; // verified {size, root}
let entries = []; // [{index, received, envelope, leaf, event}]
let packages = new Map(); // id -> {id, exam, site, state, history}
let shown = null;

function say(sel, text, state = "") {
  const el = $(sel);
  el.textContent = text;
  el.dataset.state = state;
}

async function api(path, init = {}) {
  const headers = { ...(init.headers ?? {}) };
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(path, { ...init, headers, cache: "no-store" });
  const text = await r.text();
  let body = text;
  try { body = JSON.parse(text); } catch { /* text routes: the checkpoint */ }
  if (!r.ok) throw new Refusal(body.error ?? `http_${r.status}`, body.message ?? `HTTP ${r.status}`);
  return body;
}

async function login(ev) {
  ev.preventDefault();
  const file = $("#keyfile").files[0];
  if (!file) return;
  say("#login-status", t("login.working"));
  try {
    const key = await unlockKeyFile(await file.text(), $("#passphrase").value);
    $("#passphrase").value = "";
    const ch = await api("/v1/login/challenge", { method: "POST" });
    const statement = { challenge: ch.challenge, key_id: key.keyId, origin: ch.origin, type: "custody.login.v1" };
    const envelope = signEnvelope(LOGIN_TYPE, canonicalJson(statement), [key]);
    key.seed.fill(0); // the console signs nothing else: the key is forgotten at once
    const s = await api("/v1/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(envelope) });
    token = s.token;
    trust = verifyBundle(await api("/v1/trust-bundle"), null);
    const me = trust.people.find((p) => p.keyId === key.keyId);
    say("#login-status", t("console.login.done", { name: me?.name ?? s.subject, roles: s.roles.join(", ") }), "ok");
    await loadLog();
  } catch (e) {
    say("#login-status", t("login.failed", { reason: `${e.message} (${e.code ?? "error"})` }), "error");
  }
}

async function loadLog() {
  const note = await api("/v1/checkpoint");
  checkpoint = verifyCheckpoint(note, trust.authority.logOrigin, trust.authority.logKey);
  const witnesses = note.split("\n").filter((l) => l.startsWith("\u2014 ") && !l.startsWith(`\u2014 ${trust.authority.logOrigin} `)).length;
  say("#checkpoint", t("console.checkpoint", { size: checkpoint.size, witnesses }), "ok");
  entries = [];
  for (let i = 0; i < checkpoint.size; i++) {
    const e = await api(`/v1/entries/${i}`);
    const leaf = b64decode(e.leaf, "leaf");
    const parsed = parseCanonical(leaf, "log entry");
    if (!equalBytes(canonicalJson(parsed.envelope), canonicalJson(e.envelope))) throw new Refusal("format", `entry ${i}: leaf and envelope differ`);
    const event = parseCanonical(b64decode(e.envelope.payload, "payload"), "event");
    entries.push({ index: i, received: parsed.received, envelope: e.envelope, leaf, event });
  }
  packages = new Map();
  for (const e of entries) {
    for (const id of Object.keys(e.event.packages ?? {})) {
      if (!packages.has(id)) packages.set(id, { id, exam: "", site: "", history: [] });
      const p = packages.get(id);
      p.history.push(e.index);
      if (e.event.kind === "seal") {
        p.exam = e.event.body.exam;
        p.site = e.event.body.destination?.site ?? "";
      }
    }
  }
  for (const p of packages.values()) p.state = (await api(`/v1/packages/${encodeURIComponent(p.id)}`)).state;
  $("#packages-section").hidden = false;
  fillFilters();
  renderTable();
  renderIncidents();
}

/** Incidents as the log holds them: each incident's latest system statement, signature checked. */
function renderIncidents() {
  const latest = new Map();
  for (const e of entries) {
    if (e.event.kind !== "incident") continue;
    const sigs = signatures(e.envelope, parseTime(e.event.time), parseTime(e.received));
    const bySystem = sigs.length === 1 && sigs[0].ok && sigs[0].who === t("slot.system");
    latest.set(e.event.body.incident, { index: e.index, body: e.event.body, bySystem });
  }
  const body = $("#incidents tbody");
  body.replaceChildren();
  for (const [id, { body: b, bySystem }] of [...latest].sort()) {
    const tr = document.createElement("tr");
    tr.dataset.incident = id;
    tr.dataset.status = b.status;
    const scope = [...(b.scope?.packages ?? []), ...(b.containment?.frozen?.length ? [`${t("console.frozen")}: ${b.containment.frozen.join(", ")}`] : [])];
    const cells = [id, t(`detect.${b.kind}`), t(`severity.${b.severity}`), t(`istatus.${b.status}`),
      `${b.level} ${b.level_name ?? ""}`, b.ack_deadline ?? "—", scope.join("；"), bySystem ? "✓" : "✗"];
    for (const c of cells) {
      const td = document.createElement("td");
      td.textContent = c;
      tr.append(td);
    }
    tr.title = b.detail ?? "";
    body.append(tr);
  }
  const open = [...latest.values()].filter((i) => i.body.status !== "resolved").length;
  say("#incidents-count", t("console.incidents.count", { open, total: latest.size }));
  $("#incidents-section").hidden = false;
}

const STATES = ["sealed", "in_transit", "stored", "opened", "distributed", "recovered", "returned", "destroyed"];
const nameOf = (subject) =>
  subject === trust.authority.id ? t("console.authority") : trust.people.find((p) => p.subject === subject)?.name ?? subject;

function fillFilters() {
  const all = [...packages.values()];
  const opts = {
    "#f-exam": [...new Set(all.map((p) => p.exam))].sort(),
    "#f-site": [...new Set(all.map((p) => p.site))].sort(),
    "#f-holder": [...new Set(all.map((p) => p.state.holder))].sort(),
    "#f-state": STATES,
  };
  for (const [sel, values] of Object.entries(opts)) {
    const el = $(sel);
    const keep = el.value;
    el.replaceChildren(new Option(t("console.all"), ""));
    for (const v of values) el.append(new Option(sel === "#f-state" ? t(`state.${v}`) : sel === "#f-holder" ? nameOf(v) : v, v));
    el.value = keep;
  }
}

function renderTable() {
  const f = { exam: $("#f-exam").value, site: $("#f-site").value, holder: $("#f-holder").value, state: $("#f-state").value };
  const rows = [...packages.values()].filter((p) =>
    (!f.exam || p.exam === f.exam) && (!f.site || p.site === f.site) &&
    (!f.holder || p.state.holder === f.holder) && (!f.state || p.state.status === f.state));
  const body = $("#packages tbody");
  body.replaceChildren();
  for (const p of rows) {
    const tr = document.createElement("tr");
    tr.dataset.package = p.id;
    tr.dataset.state = p.state.status;
    const a = document.createElement("a");
    a.href = `#${encodeURIComponent(p.id)}`;
    a.textContent = p.id;
    a.addEventListener("click", (e) => { e.preventDefault(); timeline(p.id); });
    const cells = [a, p.exam, p.site, t(`state.${p.state.status}`) + (p.state.frozen ? ` · ${t("console.frozen")}` : ""),
      nameOf(p.state.holder), p.state.next_holder ? nameOf(p.state.next_holder) : "—", `${p.state.last_time} ${p.state.last_place}`];
    for (const c of cells) {
      const td = document.createElement("td");
      if (c instanceof Node) td.append(c); else td.textContent = c;
      tr.append(td);
    }
    body.append(tr);
  }
  say("#counts", t("console.counts", { shown: rows.length, total: packages.size }));
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
      return good ? { ok: true, who: t("slot.system") } : { ok: false, who: t("slot.system"), reason: "signature" };
    }
    const who = trust.people.find((p) => p.keyId === s.keyid);
    if (!who) return { ok: false, who: s.keyid.slice(0, 16), reason: "unknown_signer" };
    const good = ed.verify(b64decode(s.sig, "signature"), message, who.key, { zip215: false });
    if (!good) return { ok: false, who: who.name, reason: "signature" };
    const problem = standing(trust, who, at, received);
    return problem ? { ok: false, who: who.name, reason: problem.code } : { ok: true, who: who.name, subject: who.subject };
  });
}

async function timeline(id) {
  shown = id;
  const p = packages.get(id);
  say("#timeline-summary", "");
  $("#timeline-section").hidden = false;
  $("#timeline-h").textContent = t("console.timeline", { id });
  const list = $("#timeline");
  list.replaceChildren();
  let all = true;
  for (const index of p.history) {
    const e = entries[index];
    const proof = await api(`/v1/proofs/inclusion?index=${index}&size=${checkpoint.size}`);
    const included = verifyInclusion(e.leaf, index, checkpoint.size, proof.proof.map((h) => b64decode(h, "proof")), checkpoint.root);
    const sigs = signatures(e.envelope, parseTime(e.event.time), parseTime(e.received));
    const verified = included && sigs.every((s) => s.ok);
    all &&= verified;
    const li = document.createElement("li");
    li.dataset.verified = String(verified);
    li.dataset.kind = e.event.kind;
    const head = document.createElement("div");
    head.innerHTML = `<span class="kind"></span> · <span class="when"></span>`;
    head.querySelector(".kind").textContent = `#${index} ${t(`kind.${e.event.kind}`)}`;
    head.querySelector(".when").textContent = `${t("console.time")} ${e.event.time} · ${t("console.received")} ${e.received}${e.event.place ? ` · ${e.event.place}` : ""}`;
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
    inc.className = included ? "sig-ok" : "sig-bad";
    inc.textContent = `· ${included ? t("console.included") : t("console.notincluded")}`;
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
    const got = await api(`/v1/access?object=${encodeURIComponent(`package:${id}`)}`);
    for (const r of got.records) {
      const li = document.createElement("li");
      li.textContent = `${r.at} · ${nameOf(r.who)} · ${r.route}`;
      access.append(li);
    }
  } catch (e) {
    access.textContent = `${e.message} (${e.code})`;
  }
  say("#timeline-summary", all ? t("console.allverified", { n: p.history.length }) : t("console.problems"), all ? "ok" : "error");
  $("#timeline-section").scrollIntoView();
}

function applyLanguage() {
  document.documentElement.lang = lang;
  document.title = t("console.title");
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  if (packages.size) {
    fillFilters();
    renderTable();
    renderIncidents();
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
  for (const sel of ["#f-exam", "#f-site", "#f-holder", "#f-state"]) $(sel).addEventListener("change", renderTable);
  document.body.dataset.ready = "true";
}

start();
