// The courier's scanner. Frames from the camera go to POST /v1/labels/scan; every answer is
// shown at once: VALID with the package's facts, REFUSED with the reason, or NOT CHECKED when
// the camera or the server failed. Nothing here decides validity: the server's verifier does.
// Text from the server is only ever inserted with textContent (never as HTML).
"use strict";

(function () {
  const SCAN_URL = "/v1/labels/scan";
  const PAUSE_MS = 300; // between one answer and the next frame
  const HISTORY_MAX = 50;

  const verdict = document.getElementById("verdict");
  const title = document.getElementById("verdict-title");
  const reason = document.getElementById("verdict-reason");
  const facts = document.getElementById("facts");
  const status = document.getElementById("status");
  const video = document.getElementById("camera");
  const photo = document.getElementById("photo");
  const history = document.getElementById("history");
  const canvas = document.createElement("canvas");
  let lastEntry = "";

  function clock() {
    return new Date().toLocaleTimeString();
  }

  function setFacts(pairs) {
    facts.replaceChildren();
    for (const [name, value] of pairs) {
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      dd.textContent = value;
      facts.append(dt, dd);
    }
  }

  function record(state, text) {
    const entry = state + "|" + text;
    if (entry === lastEntry) {
      return; // the same label still in view: one line per label, not one per frame
    }
    lastEntry = entry;
    const li = document.createElement("li");
    const mark = document.createElement("span");
    mark.className = state;
    mark.textContent = state === "valid" ? "VALID" : state === "refused" ? "REFUSED" : "NOT CHECKED";
    li.append(clock() + " ", mark, " " + text);
    history.prepend(li);
    while (history.children.length > HISTORY_MAX) {
      history.lastElementChild.remove();
    }
  }

  function show(state, heading, why, pairs) {
    verdict.dataset.state = state;
    title.textContent = heading;
    reason.textContent = why;
    setFacts(pairs);
  }

  function showValid(body) {
    const m = body.manifest;
    const route = m.route.map((s) => s.person + " @ " + s.place).join(" → ");
    show("valid", "VALID", "Signed by " + body.sealed_by.name + " (" + body.sealed_by.subject + ")", [
      ["Package", m.package_id],
      ["Exam", m.exam_id + " · " + m.session + " · " + m.position],
      ["Paper", m.paper_id],
      ["Copies", m.copy_count + " (bags of " + m.bag_size + ")"],
      ["Seal serials", m.seal_serials.join(", ")],
      ["Destination", m.destination.site + " " + m.destination.room],
      ["Opening window", m.window.opens_at + " – " + m.window.closes_at],
      ["Route", route],
      ["Checked at", body.checked_at],
    ]);
    record("valid", m.package_id);
  }

  function showRefused(body) {
    const why = body.message + (body.hint ? " (" + body.hint + ")" : "");
    show("refused", "REFUSED", why, [["Reason code", body.error]]);
    record("refused", why);
  }

  function showError(heading, why) {
    show("error", heading, why, []);
    record("error", why);
  }

  // One image to the server; resolves to true when a label was read (valid or refused).
  async function check(blob) {
    let response;
    let body;
    try {
      response = await fetch(SCAN_URL, {
        method: "POST",
        headers: { "Content-Type": blob.type || "application/octet-stream" },
        body: blob,
      });
      body = await response.json();
    } catch (err) {
      showError("NOT CHECKED", "the server could not be reached: " + err.message);
      return false;
    }
    if (response.ok) {
      showValid(body);
      return true;
    }
    if (body.error === "scan") {
      status.textContent = clock() + ": no single label in view (" + body.message + ")";
      return false;
    }
    if (response.status >= 500 && body.error !== "read_only") {
      showError("NOT CHECKED", "server error (" + body.error + "): " + body.message);
      return false;
    }
    showRefused(body);
    return true;
  }

  function frame() {
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
  }

  async function loop() {
    if (video.videoWidth > 0) {
      const blob = await frame();
      if (blob) {
        if (await check(blob)) {
          status.textContent = clock() + ": label read; keep scanning the next one";
        }
      }
    }
    setTimeout(loop, PAUSE_MS);
  }

  async function start() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      showError("NO CAMERA", "this browser cannot open the camera here; use the photo button");
      return;
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: false,
        video: { facingMode: "environment", width: { ideal: 1280 }, height: { ideal: 720 } },
      });
      video.srcObject = stream;
      await video.play();
    } catch (err) {
      showError("NO CAMERA", "the camera could not be opened (" + err.name + "); use the photo button");
      return;
    }
    show("idle", "READY", "Hold a package label in front of the camera.", []);
    status.textContent = "Camera on.";
    loop();
  }

  photo.addEventListener("change", async () => {
    const file = photo.files && photo.files[0];
    if (!file) {
      return;
    }
    lastEntry = "";
    if (!(await check(file)) && verdict.dataset.state !== "error") {
      showError("NOT READ", "no single label found in this photo; take it again");
    }
    photo.value = "";
  });

  start();
})();
