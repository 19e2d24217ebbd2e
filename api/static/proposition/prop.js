// The proposition centre's page. A paper is encrypted here, in the proposer's browser, before
// any byte of it leaves the machine (docs/formats.md "Papers proposed in a browser"): the page
// draws the data key K and the log's part L, writes custody-paper/v1 with libsodium's
// secretstream, seals the people's part P = K XOR L whole to the printer and Shamir-split to the
// opening officers (and the standby), seals L to the log service, signs the proposal with the
// proposer's key (unlocked from the key file for that one signature), and posts only sealed
// bytes. The recipients' X25519 keys come from root-signed certificates checked here.
import sodium from "/proposition/vendor/sodium.js";
import { sha256 } from "/courier/vendor/crypto.js";
import { unlockKeyFile } from "/courier/keyfile.js";
import { Refusal, b64decode, b64encode, canonicalJson, concat, formatTime, hex, logIn, signEnvelope, utf8 } from "/courier/lib.js";
import { standing, verifyBundle } from "/courier/trust.js";
import { verifyLabel } from "/courier/label.js";
import { sealPackage } from "/proposition/seal.js";

const $ = (s) => document.querySelector(s);
const PROPOSAL_TYPE = "application/vnd.custody.paper-proposal.v1+json";
const MAGIC = utf8("custody-paper/v1\n");
const CHUNK = 1 << 20; // the CLI's default chunk size
const LOG_SUBJECT = "custody-log";
const OPENING = ["chief_examiner", "supervisor"];

let catalogue = {};
let lang = "zh-CN";
const t = (key, vars = {}) =>
  (catalogue[lang]?.[key] ?? catalogue["zh-CN"]?.[key] ?? key).replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));

let token = null; // memory only
let me = null;
let recipients = null; // {people (verified, with X25519 keys), logKey, logKeyId}
let papers = [];
let directory = null; // the trust bundle as /v1/trust-bundle serves it, verified here
let exams = []; // each exam's policy (exams.json), for the seal body's handover_witness
let clockOffset = 0; // the service's clock minus this machine's, in seconds (never positive slack)
const ROUTE_STEPS = 5;
const HOLDER_ROLES = ["proposer", "printer", "courier", "custodian", "chief_examiner", "secrecy_officer"];

const said = new Map();
function show(sel, render, state = "") {
  said.set(sel, { render, state });
  const el = $(sel);
  el.textContent = render();
  el.dataset.state = state;
}

/** A refusal in the page's language: the service's own Chinese, or the page's words by code. */
function reason(e) {
  const own = catalogue[lang]?.[`prop.error.${e.code}`];
  return `${own ?? e.message} (${e.code ?? "error"})`;
}

async function api(path, init = {}) {
  const headers = { ...(init.headers ?? {}) };
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(path, { ...init, headers, cache: "no-store" });
  const text = await r.text();
  let body = text;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  const words = (lang === "zh-CN" ? body.message_zh : null) ?? body.message;
  if (!r.ok) {
    const e = new Refusal(body.error ?? `http_${r.status}`, words ?? `HTTP ${r.status}`);
    e.fromService = true;
    throw e;
  }
  return body;
}

// -- login -------------------------------------------------------------------------------------

async function login(ev) {
  ev.preventDefault();
  const file = $("#keyfile").files[0];
  if (!file) return;
  show("#login-status", () => t("login.working"));
  try {
    const key = await unlockKeyFile(await file.text(), $("#passphrase").value);
    $("#passphrase").value = "";
    const s = await logIn(api, key);
    key.seed.fill(0); // signing a paper unlocks the key file again
    token = s.token;
    me = { subject: s.subject, keyId: key.keyId, roles: s.roles };
    const proposer = s.roles.includes("proposer");
    if (proposer) await loadRecipients();
    if (proposer || s.roles.includes("printer")) await loadSealing();
    show("#login-status", () => t("prop.login.done", { name: me.subject, roles: s.roles.map((r) => t(`role.${r}`)).join(lang === "en" ? ", " : "、") }), "ok");
    $("#upload-section").hidden = !proposer;
    $("#papers-section").hidden = !proposer;
    $("#seal-section").hidden = !(proposer || s.roles.includes("printer"));
    if (proposer) await loadPapers();
  } catch (e) {
    show("#login-status", () => t("login.failed", { reason: reason(e) }), "error");
  }
}

/** The certificates a paper may be sealed to, each checked under the root key, and the log's
 * X25519 key (its id recomputed here). */
async function loadRecipients() {
  const doc = await api("/v1/proposition/recipients");
  const trust = verifyBundle({ authority: doc.authority, certificates: doc.certificates, revocations: doc.revocations }, null);
  const now = Date.now() / 1000;
  const people = trust.people.filter((p) => p.encryptionKey && !standing(trust, p, now, now));
  const logKey = b64decode(doc.log_key.key, "log key");
  const logKeyId = hex(sha256(concat(utf8("x25519:"), logKey)));
  if (logKey.length !== 32 || logKeyId !== doc.log_key.key_id) throw new Refusal("format", "the log's key is not 32 bytes or not its id");
  recipients = { people, logKey, logKeyId };
  fillRecipients();
}

function option(select, value, text) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  select.append(o);
}

function fillRecipients() {
  if (!recipients) return;
  const printer = $("#printer");
  const standby = $("#standby");
  const keepP = printer.value;
  const keepS = standby.value;
  printer.replaceChildren();
  standby.replaceChildren();
  option(printer, "", t("prop.choose"));
  option(standby, "", t("prop.none"));
  const label = (p) => `${p.name} (${p.subject})`;
  for (const p of recipients.people) {
    if (p.roles.includes("printer")) option(printer, p.subject, label(p));
    if (p.roles.includes("secrecy_officer")) option(standby, p.subject, label(p));
  }
  printer.value = keepP;
  standby.value = keepS;
  const box = $("#officers");
  const ticked = new Set([...box.querySelectorAll("input:checked")].map((i) => i.value));
  box.querySelectorAll("div").forEach((d) => d.remove());
  for (const p of recipients.people.filter((q) => q.roles.some((r) => OPENING.includes(r)))) {
    const div = document.createElement("div");
    div.className = "check"; // the box beside its name (console.css)
    const input = document.createElement("input");
    input.type = "checkbox";
    input.value = p.subject;
    input.id = `officer-${p.subject}`;
    input.checked = ticked.has(p.subject);
    const l = document.createElement("label");
    l.htmlFor = input.id;
    l.textContent = `${label(p)} · ${p.roles.map((r) => t(`role.${r}`)).join("、")}`;
    div.append(input, l);
    box.append(div);
  }
}

// -- encryption (docs/formats.md "Encrypted paper file") -----------------------------------------

const u32be = (n) => Uint8Array.of(n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);

/** custody-paper/v1, byte for byte as crypto/stream.py writes it. */
function encryptPaper(plain, key, header) {
  const body = canonicalJson({ alg: "secretstream-xchacha20poly1305", ...header });
  const preamble = concat(MAGIC, u32be(body.length), body);
  const { state, header: ssHeader } = sodium.crypto_secretstream_xchacha20poly1305_init_push(key);
  const ad = sha256(concat(preamble, ssHeader));
  const parts = [preamble, ssHeader];
  const n = Math.max(1, Math.ceil(plain.length / header.chunk_size));
  for (let i = 0; i < n; i++) {
    const chunk = plain.subarray(i * header.chunk_size, Math.min((i + 1) * header.chunk_size, plain.length));
    const tag = i === n - 1 ? sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL : sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
    parts.push(sodium.crypto_secretstream_xchacha20poly1305_push(state, chunk, ad, tag));
  }
  return concat(...parts);
}

// Shamir over GF(2^8) mod x^8+x^4+x^3+x+1, byte by byte (crypto/shamir.py): share x holds f_i(x).
function gfMul(a, b) {
  let p = 0;
  for (let i = 0; i < 8; i++) {
    p ^= a & -(b & 1);
    const carry = -((a >> 7) & 1);
    a = ((a << 1) ^ (0x1b & carry)) & 0xff;
    b >>= 1;
  }
  return p & 0xff;
}

function split(secret, threshold, count) {
  const coefficients = Array.from(secret, () => crypto.getRandomValues(new Uint8Array(threshold - 1)));
  const shares = [];
  for (let x = 1; x <= count; x++) {
    const y = new Uint8Array(secret.length);
    for (let i = 0; i < secret.length; i++) {
      let acc = 0;
      const c = coefficients[i];
      for (let j = c.length - 1; j >= 0; j--) acc = gfMul(acc, x) ^ c[j];
      y[i] = gfMul(acc, x) ^ secret[i];
    }
    shares.push({ x, y });
  }
  coefficients.forEach((c) => c.fill(0));
  return shares;
}

const keyIdX = (pk) => hex(sha256(concat(utf8("x25519:"), pk)));

/** What the form asks for, or a refusal naming what is missing (in the page's words). */
function readForm() {
  const get = (sel) => $(sel).value.trim();
  const officers = [...$("#officers").querySelectorAll("input:checked")].map((i) => i.value);
  const threshold = Number($("#threshold").value);
  const printer = get("#printer");
  const file = $("#paper-file").files[0];
  const start = $("#window-start").value;
  const end = $("#window-end").value;
  const need = (ok, code) => { if (!ok) throw new Refusal(code, t(`prop.error.${code}`)); };
  need(get("#exam") && get("#position") && get("#paper-id"), "missing_ids");
  need(printer, "missing_printer");
  need(officers.length >= 2, "missing_officers");
  need(officers.some((s) => recipients.people.find((p) => p.subject === s)?.roles.includes("supervisor")), "missing_supervisor");
  need(Number.isInteger(threshold) && threshold >= 2 && threshold <= officers.length, "bad_threshold");
  need(start && end && new Date(end) > new Date(start), "bad_window");
  need(get("#role") === "main" || get("#backup-of"), "missing_backup_of");
  need(file, "missing_file");
  return {
    exam: get("#exam"), position: get("#position"), paperId: get("#paper-id"), version: Number($("#version").value),
    classification: get("#classification"), role: get("#role"), backupOf: get("#role") === "backup" ? get("#backup-of") : null,
    title: get("#title"), printer, officers, threshold, standby: get("#standby") || null, file,
    start: formatTime(Math.floor(new Date(start).getTime() / 1000)), end: formatTime(Math.floor(new Date(end).getTime() / 1000)),
  };
}

async function upload(ev) {
  ev.preventDefault();
  $("#upload-result").hidden = true;
  const secrets = [];
  try {
    const form = readForm();
    show("#upload-status", () => t("prop.working.unlock"));
    const key = await unlockKeyFile(await $("#keyfile").files[0].text(), $("#upload-pass").value);
    $("#upload-pass").value = "";
    if (key.keyId !== me.keyId) { key.seed.fill(0); throw new Refusal("forbidden", t("prop.error.otherkey")); }
    await sodium.ready;
    show("#upload-status", () => t("prop.working.encrypt"));
    const plain = new Uint8Array(await form.file.arrayBuffer());
    const K = sodium.crypto_secretstream_xchacha20poly1305_keygen();
    const L = sodium.randombytes_buf(32);
    const P = K.map((b, i) => b ^ L[i]);
    secrets.push(K, L, P, plain);
    const header = { chunk_size: CHUNK, classification: form.classification, paper_id: form.paperId, version: form.version };
    const file = encryptPaper(plain, K, header);
    const commitment = hex(sha256(file));
    const person = (s) => recipients.people.find((p) => p.subject === s);
    const base = { commitment, paper_id: form.paperId, version: form.version };
    const holders = [...form.officers.map((s) => ["officer", person(s)]), ...(form.standby ? [["standby", person(form.standby)]] : [])];
    const shares = split(P, form.threshold, holders.length);
    secrets.push(...shares.map((s) => s.y));
    const keys = [];
    const listed = [];
    const seal = (slot, subject, pk, x, body) => {
      const kid = keyIdX(pk);
      const plainBody = canonicalJson({ ...base, ...body, key_id: kid, slot, subject });
      const sealed = sodium.crypto_box_seal(plainBody, pk);
      plainBody.fill(0);
      keys.push({ slot, subject, sealed: b64encode(sealed) });
      listed.push({ key_id: kid, sealed_sha256: hex(sha256(sealed)), slot, subject, x });
    };
    const printer = person(form.printer);
    seal("printer", printer.subject, printer.encryptionKey, 0, { type: "custody.paper-key.v1", key: b64encode(P) });
    holders.forEach(([slot, who], i) => {
      seal(slot, who.subject, who.encryptionKey, shares[i].x, { type: "custody.paper-share.v1", threshold: form.threshold, x: shares[i].x, y: b64encode(shares[i].y) });
    });
    seal("log", LOG_SUBJECT, recipients.logKey, 0, { type: "custody.paper-key.v1", key: b64encode(L) });
    const proposal = {
      type: "custody.paper-proposal.v1", paper_id: form.paperId, version: form.version, classification: form.classification,
      exam: form.exam, position: form.position, role: form.role, backup_of: form.backupOf, title: form.title,
      commitment, ciphertext_bytes: file.length, chunk_size: CHUNK, threshold: form.threshold,
      window: { start: form.start, end: form.end }, proposer: me.subject,
      proposed_at: formatTime(Math.floor(Date.now() / 1000)), recipients: listed,
    };
    const envelope = signEnvelope(PROPOSAL_TYPE, canonicalJson(proposal), [key]);
    key.seed.fill(0);
    for (const s of secrets) s.fill(0); // only sealed copies of K's parts leave this page
    show("#upload-status", () => t("prop.working.send"));
    const done = await api("/v1/papers", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ proposal: envelope, keys, ciphertext: b64encode(file) }),
    });
    show("#upload-status", () => t("prop.uploaded", { ref: done.ref }), "ok");
    const dl = $("#upload-result");
    dl.replaceChildren();
    for (const [k, v] of [["prop.col.ref", done.ref], ["prop.col.commitment", done.commitment], ["prop.bytes", String(done.ciphertext_bytes)], ["prop.logsize", String(done.log_size)]]) {
      const dt = document.createElement("dt");
      dt.dataset.i18n = k;
      dt.textContent = t(k);
      const dd = document.createElement("dd");
      dd.textContent = v;
      dd.dataset.field = k;
      dl.append(dt, dd);
    }
    dl.hidden = false;
    await loadPapers();
  } catch (e) {
    show("#upload-status", () => t("prop.failed", { reason: reason(e) }), "error");
  } finally {
    for (const s of secrets) s.fill(0);
  }
}

// -- papers and their commitments ----------------------------------------------------------------

async function loadPapers() {
  try {
    const got = await api("/v1/papers?limit=500");
    papers = got.items;
    renderPapers();
    fillSealPapers();
  } catch (e) {
    show("#papers-status", () => reason(e), "error");
  }
}

function renderPapers() {
  const body = $("#papers tbody");
  body.replaceChildren();
  for (const p of papers) {
    const tr = document.createElement("tr");
    tr.dataset.paper = p.ref;
    for (const v of [p.ref, `${p.exam} · ${p.position}`, t(`prop.status.${p.status}`), p.commitment, String(p.keys_held)]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.append(td);
    }
    tr.lastChild.previousSibling.className = "mono";
    body.append(tr);
  }
  show("#papers-status", () => t("prop.papers.count", { n: papers.length }));
}


// -- sealing packages (docs/formats.md "Packages sealed in a browser") ---------------------------

/** The directory (people and their keys, checked under the system key) and the exams' policies. */
async function loadSealing() {
  directory = verifyBundle(await api("/v1/trust-bundle"), null);
  await loadExams();
  fillSealForm();
}

/** Each exam's policy, and the service's clock: a label's issued-at is the service's now. */
async function loadExams() {
  const doc = await api("/v1/proposition/exams");
  clockOffset = Date.parse(doc.now) / 1000 - Date.now() / 1000;
  exams = doc.exams;
}

const serverNow = () => Math.floor(Date.now() / 1000 + clockOffset);

function fillSealForm() {
  if (!directory) return;
  const exam = $("#seal-exam");
  const keep = exam.value;
  exam.replaceChildren();
  option(exam, "", t("prop.choose"));
  for (const e of exams) option(exam, e.exam, e.handover_witness ? `${e.exam} · ${t("seal.witnessed")}` : e.exam);
  exam.value = keep;
  const box = $("#seal-route");
  if (!box.querySelector("[data-step]")) {
    for (let i = 0; i < ROUTE_STEPS; i++) {
      const row = document.createElement("div");
      row.className = "row";
      row.dataset.step = String(i);
      row.innerHTML = `<div><label for="seal-step-person-${i}"></label><select id="seal-step-person-${i}"></select></div>` +
        `<div><label for="seal-step-place-${i}"></label><input id="seal-step-place-${i}"></div>`;
      box.append(row);
    }
  }
  const now = Date.now() / 1000;
  const holders = directory.people.filter((p) => p.subject !== me.subject && p.roles.some((r) => HOLDER_ROLES.includes(r)) &&
    !standing(directory, p, now, now));
  for (let i = 0; i < ROUTE_STEPS; i++) {
    $(`label[for='seal-step-person-${i}']`).textContent = t("seal.step.person", { n: i + 1 });
    $(`label[for='seal-step-place-${i}']`).textContent = t("seal.step.place", { n: i + 1 });
    const sel = $(`#seal-step-person-${i}`);
    const was = sel.value;
    sel.replaceChildren();
    option(sel, "", t("prop.none"));
    for (const p of holders) option(sel, p.subject, `${p.name} (${p.subject}) · ${p.roles.map((r) => t(`role.${r}`)).join("、")}`);
    sel.value = was;
  }
  fillSealPapers();
}

function fillSealPapers() {
  const sel = $("#seal-paper");
  const keep = sel.value;
  sel.replaceChildren();
  option(sel, "", t("seal.paper.none"));
  for (const p of papers.filter((q) => q.status === "active")) option(sel, p.ref, `${p.ref} · ${p.exam} · ${p.position}`);
  sel.value = keep;
}

/** Defaults from the chosen paper: exam, position, paper id, commitment, classification. */
function paperChosen() {
  const p = papers.find((q) => q.ref === $("#seal-paper").value);
  if (!p) return;
  if (exams.some((e) => e.exam === p.exam)) $("#seal-exam").value = p.exam;
  $("#seal-position").value = p.position;
  $("#seal-paper-id").value = p.paper_id;
  $("#seal-commitment").value = p.commitment;
  $("#seal-class").value = p.classification;
  if (!$("#seal-package").value) $("#seal-package").value = `${p.paper_id}-001`;
}

const unix = (local) => Math.floor(new Date(local).getTime() / 1000);

/** The manifest the form describes (issued now by the service's clock), or a refusal in the page's words. */
function readSealForm() {
  const get = (sel) => $(sel).value.trim();
  const need = (ok, code) => { if (!ok) throw new Refusal(code, t(`prop.error.${code}`)); };
  need(get("#seal-package") && get("#seal-exam") && get("#seal-session") && get("#seal-position") && get("#seal-paper-id"), "seal_missing_ids");
  need(/^[0-9a-f]{64}$/.test(get("#seal-commitment")), "seal_bad_commitment");
  const copies = Number(get("#seal-copies"));
  need(Number.isInteger(copies) && copies >= 1 && copies <= 10000, "seal_bad_copies");
  const seals = get("#seal-seals").split(/[\s,，、]+/).filter(Boolean);
  need(seals.length >= 1, "seal_missing_seals");
  const bag = get("#seal-bag") ? Number(get("#seal-bag")) : Math.ceil(copies / seals.length);
  need(Number.isInteger(bag) && bag >= 1 && Math.ceil(copies / bag) === seals.length, "seal_seals_count");
  need(get("#seal-site") && get("#seal-room"), "seal_missing_destination");
  need(get("#seal-place"), "seal_missing_place");
  const steps = [];
  for (let i = 0; i < ROUTE_STEPS; i++) {
    const person = get(`#seal-step-person-${i}`);
    if (!person) continue;
    need(get(`#seal-step-place-${i}`), "seal_missing_place");
    steps.push({ person, place: get(`#seal-step-place-${i}`) });
  }
  need(steps.length >= 1, "seal_missing_route");
  const opens = get("#seal-opens") ? unix(get("#seal-opens")) : NaN;
  const closes = get("#seal-closes") ? unix(get("#seal-closes")) : NaN;
  const issued = serverNow();
  need(opens >= issued && closes > opens, "seal_bad_window");
  const days = Number(get("#seal-days"));
  need(Number.isInteger(days) && days >= 1, "seal_bad_days");
  const exam = exams.find((e) => e.exam === get("#seal-exam"));
  need(exam, "seal_missing_ids");
  return {
    manifest: {
      package_id: get("#seal-package"), exam: exam.exam, session: get("#seal-session"), position: get("#seal-position"),
      paper: get("#seal-paper-id"), commitment: Uint8Array.from(get("#seal-commitment").match(/../g), (h) => parseInt(h, 16)),
      copies, bag_size: bag, seals, site: get("#seal-site"), room: get("#seal-room"), opens, closes,
      route: [{ person: me.subject, place: get("#seal-place") }, ...steps], classification: get("#seal-class"),
      issued, expires: Math.max(closes, issued) + days * 86400,
    },
    handoverWitness: exam.handover_witness,
  };
}

let pdfUrl = null;

async function sealSubmit(ev) {
  ev.preventDefault();
  $("#seal-result").hidden = true;
  $("#seal-pdf").hidden = true;
  try {
    await loadExams(); // the service's clock, fresh
    const form = readSealForm();
    show("#seal-status", () => t("prop.working.unlock"));
    const key = await unlockKeyFile(await $("#keyfile").files[0].text(), $("#seal-pass").value);
    $("#seal-pass").value = "";
    let sealed;
    try {
      if (key.keyId !== me.keyId) throw new Refusal("forbidden", t("prop.error.otherkey"));
      sealed = sealPackage(form.manifest, key, { sealer: me.subject, authority: directory.authority.id, handoverWitness: form.handoverWitness });
    } finally {
      key.seed.fill(0);
    }
    // Checked here as a courier's phone will check it, before anything is sent.
    try {
      await verifyLabel(sealed.label, directory, serverNow());
    } catch (e) {
      throw new Refusal(e.code ?? "format", t("seal.label_refused", { code: e.code ?? "format" }));
    }
    show("#seal-status", () => t("seal.working.send"));
    const done = await api("/v1/packages", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(sealed),
    });
    const state = await api(`/v1/packages/${encodeURIComponent(done.package_id)}`);
    const r = await fetch(done.label_pdf, { headers: { authorization: `Bearer ${token}` }, cache: "no-store" });
    if (!r.ok) throw new Refusal(`http_${r.status}`, `HTTP ${r.status}`);
    if (pdfUrl) URL.revokeObjectURL(pdfUrl);
    pdfUrl = URL.createObjectURL(await r.blob());
    const link = $("#seal-pdf");
    link.href = pdfUrl;
    link.download = `label-${done.package_id}.pdf`;
    link.hidden = false;
    show("#seal-status", () => t("seal.done", { id: done.package_id, index: done.receipt.index }), "ok");
    const dl = $("#seal-result");
    dl.replaceChildren();
    for (const [k, v, raw] of [
      ["seal.package", done.package_id], ["seal.state", `state.${state.state.status}`, true], ["seal.holder", state.state.holder],
      ["seal.index", String(done.receipt.index)], ["seal.label_sha256", done.label_sha256],
    ]) {
      const dt = document.createElement("dt");
      dt.dataset.i18n = k;
      dt.textContent = t(k);
      const dd = document.createElement("dd");
      if (raw) dd.dataset.i18n = v;
      dd.textContent = raw ? t(v) : v;
      dd.dataset.field = k;
      dl.append(dt, dd);
    }
    dl.hidden = false;
  } catch (e) {
    show("#seal-status", () => t("seal.failed", { reason: reason(e) }), "error");
  }
}

// -- the page ------------------------------------------------------------------------------------

function applyLanguage() {
  document.documentElement.lang = lang;
  document.title = t("prop.title");
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const [sel, s] of said) {
    $(sel).textContent = s.render();
    $(sel).dataset.state = s.state;
  }
  fillRecipients();
  fillSealForm();
  if (papers.length) renderPapers();
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
  $("#upload-form").addEventListener("submit", upload);
  $("#seal-form").addEventListener("submit", sealSubmit);
  $("#seal-paper").addEventListener("change", paperChosen);
  document.body.dataset.ready = "true";
}

start();
