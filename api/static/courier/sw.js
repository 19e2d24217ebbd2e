// The courier page's service worker: keeps the page, its scripts and the wasm in a cache so the
// app opens with no network. API calls (/v1/...) are never intercepted: they reach the network
// or fail, so the page always knows honestly whether a statement was sent.
const CACHE = "custody-courier-v2";
const ASSETS = [
  "/courier/", "/courier/app.js", "/courier/lib.js", "/courier/trust.js", "/courier/label.js",
  "/courier/keyfile.js", "/courier/store.js", "/courier/i18n.json", "/courier/app.css",
  "/courier/manifest.webmanifest", "/courier/icon.svg", "/courier/vendor/crypto.js",
  "/courier/vendor/zxing.js", "/courier/vendor/qr.js", "/courier/vendor/zxing_reader.wasm",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(ASSETS)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (!url.pathname.startsWith("/courier/")) return;
  // Network first (a new version is picked up at once), the cache when offline.
  event.respondWith(
    fetch(event.request)
      .then((r) => {
        if (r.ok) {
          const copy = r.clone();
          caches.open(CACHE).then((c) => c.put(url.pathname, copy));
        }
        return r;
      })
      .catch(() => caches.match(url.pathname).then((hit) => hit ?? Response.error())),
  );
});
