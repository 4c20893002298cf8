// Drives Debian's headless chromium over the DevTools protocol for the dashboard test
// (core/tests/cli.rs). No dependency: Node's WebSocket (node --experimental-websocket on 20).
//
//   node --experimental-websocket browser.mjs <dashboard url> <screenshot.png>
//
// Talks to the test on stdin/stdout, a line each:
//   -> "shown <service> <pod>=<state>,..."   once the page shows the pods (as loaded)
//   <- "expect <service> <pod> <state>"      the test changed something; wait for the page to
//                                            show it without a reload, then
//   -> "seen <service> <pod> <state>"
//   <- "screenshot"                         -> "saved <path>"
//   <- "quit"
// Any failure prints "error <why>" and exits 1. Chromium's output goes to <png>.chromium.log.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { writeFileSync, mkdtempSync, openSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, png] = process.argv.slice(2);
const fail = (why) => { console.log("error " + why); cleanup(); process.exit(1); };
const chromiumBin = process.env.CHROMIUM || "chromium";
const profile = mkdtempSync(join(tmpdir(), "sr-chromium-"));
const log = openSync(png + ".chromium.log", "w");
const browser = spawn(chromiumBin, [
  "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
  "--no-first-run", "--no-default-browser-check", "--remote-debugging-port=0",
  `--user-data-dir=${profile}`, "--window-size=1100,700", "about:blank",
], { stdio: ["ignore", log, "pipe"] });
function cleanup() { try { browser.kill("SIGKILL"); } catch {} }
process.on("exit", cleanup);
const deadline = (ms, what) => setTimeout(() => fail("timed out: " + what), ms);

const wsUrl = await new Promise((resolve) => {
  const t = deadline(30000, "chromium's DevTools endpoint");
  let buf = "";
  browser.stderr.on("data", (d) => {
    buf += d;
    writeFileSync(png + ".chromium.log", buf);
    const m = buf.match(/DevTools listening on (ws:\/\/\S+)/);
    if (m) { clearTimeout(t); resolve(m[1]); }
  });
  browser.on("exit", (code) => fail(`chromium exited (${code}); see ${png}.chromium.log`));
});

const ws = new WebSocket(wsUrl);
await new Promise((r, j) => { ws.onopen = r; ws.onerror = () => j(fail("DevTools socket")); });
let next = 1;
const pending = new Map();
ws.onmessage = (m) => {
  const msg = JSON.parse(m.data);
  const p = pending.get(msg.id);
  if (p) { pending.delete(msg.id); msg.error ? p.j(new Error(JSON.stringify(msg.error))) : p.r(msg.result); }
};
const send = (method, params = {}, sessionId) => new Promise((r, j) => {
  const id = next++;
  pending.set(id, { r, j });
  ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
});

const { targetId } = await send("Target.createTarget", { url });
const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true });
const evaluate = async (expr) =>
  (await send("Runtime.evaluate", { expression: expr, returnByValue: true }, sessionId)).result.value;
const rows = () => evaluate(`(() => {
  if (window.__srLoad === undefined) window.__srLoad = Math.random();
  return { load: window.__srLoad, nav: performance.getEntriesByType("navigation").length,
    rows: [...document.querySelectorAll("tr[data-pod]")].map((r) => [r.dataset.service, r.dataset.pod, r.dataset.state]) };
})()`);
const poll = async (ms, what, ok) => {
  const end = Date.now() + ms;
  for (;;) {
    const v = await rows().catch(() => null);
    if (v && ok(v)) return v;
    if (Date.now() > end) fail("timed out: " + what + " (last: " + JSON.stringify(v) + ")");
    await new Promise((r) => setTimeout(r, 100));
  }
};

const first = await poll(20000, "pod rows on the page", (v) => v.rows.length > 0);
const loadId = first.load;
console.log("shown " + first.rows.map(([s, p, st]) => `${s} ${p}=${st}`).join(","));

const input = createInterface({ input: process.stdin });
for await (const line of input) {
  const [cmd, ...args] = line.trim().split(/\s+/);
  if (cmd === "expect") {
    const [service, pod, state] = args;
    const v = await poll(15000, `${service} pod ${pod} shown ${state}`,
      (v) => v.rows.some(([s, p, st]) => s === service && p === pod && st === state));
    if (v.load !== loadId) fail("the page reloaded");
    console.log(`seen ${service} ${pod} ${state}`);
  } else if (cmd === "screenshot") {
    const { data } = await send("Page.captureScreenshot", { format: "png" }, sessionId);
    writeFileSync(png, Buffer.from(data, "base64"));
    console.log("saved " + png);
  } else if (cmd === "quit") {
    break;
  } else {
    fail("unknown command " + line);
  }
}
ws.close();
cleanup();
process.exit(0);
