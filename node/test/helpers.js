'use strict'
// Shared fixtures of the Node suite: both stores, unique key prefixes and namespaces, polling
// with a deadline (never a sleep as synchronisation), and raw Redis access via redis-cli.

const assert = require('node:assert/strict')
const { execFileSync, spawn } = require('node:child_process')
const { randomBytes } = require('node:crypto')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const readline = require('node:readline')
const sr = require('stateful-route')

const REDIS_URL = process.env.STATEFUL_ROUTE_TEST_REDIS
if (!REDIS_URL) {
  throw new Error('STATEFUL_ROUTE_TEST_REDIS is not set: run the suite with node/test.sh')
}

/** A fresh name: key prefixes and namespaces never collide between tests or runs. */
function unique(stem) {
  return `${stem}${randomBytes(4).toString('hex')}`
}

/** The two stores every behaviour runs on. `make()` returns { store, prefix, keys() }. */
const STORES = [
  {
    name: 'memory',
    async make() {
      const prefix = unique('nm')
      const store = sr.Store.memory({ keyPrefix: prefix })
      return { store, prefix, keys: null }
    },
  },
  {
    name: 'redis',
    async make() {
      const prefix = unique('nr')
      const store = await sr.Store.connect(REDIS_URL, { keyPrefix: prefix })
      return { store, prefix, keys: () => redisKeys(`${prefix}:*`) }
    },
  },
]

/** Runs redis-cli against the test Redis. */
function redisCli(...args) {
  return execFileSync('redis-cli', ['-u', REDIS_URL, '--raw', ...args], { encoding: 'utf8' })
}

function redisKeys(pattern) {
  return redisCli('--scan', '--pattern', pattern).split('\n').filter(Boolean).sort()
}

/** Polls `probe` until it returns a truthy value, failing after `ms` milliseconds. */
async function until(probe, what, ms = 10_000) {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await probe()
    if (v) return v
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setImmediate(r))
  }
}

/**
 * Waits until `client`'s event stream (SPEC §11) is subscribed: polls moves of a marker link
 * of `ns` through `store` until one reaches the client's link listener. From then on what the
 * client caches stays cached until a change or a gap (`init` waits for the first subscription
 * only up to the store's connect timeout, and a first subscription or a resume after a gap
 * empties the cache).
 */
async function streamUp(client, store, ns, service = 'room') {
  const uid = unique('marker')
  let seen = false
  const id = client.onLinkChanged((ch) => (seen ||= ch.uid === uid))
  try {
    let pod = 0
    await until(async () => {
      if (seen) return true
      await store.setLink(ns, uid, service, (pod = 1 - pod), -1)
      return false
    }, 'the event stream subscribed')
  } finally {
    client.removeLinkListener(id)
  }
}

/** Asserts that `promise` rejects with an Error whose code is `code`; returns the error. */
async function rejectsWith(promise, code, re) {
  assert.ok(promise instanceof Promise, 'a Promise-returning method must not throw')
  let err
  await assert.rejects(promise, (e) => {
    err = e
    return true
  })
  assert.ok(err instanceof Error, `not an Error: ${err}`)
  assert.equal(err.code, code, `${err.code}: ${err.message}`)
  assert.ok(err.message.length > 0)
  if (re) assert.match(err.message, re)
  return err
}

/** Asserts that `fn()` throws an Error whose code is `code`. */
function throwsWith(fn, code, re) {
  let err
  assert.throws(fn, (e) => {
    err = e
    return true
  })
  assert.ok(err instanceof Error, `not an Error: ${err}`)
  assert.equal(err.code, code, `${err.code}: ${err.message}`)
  if (re) assert.match(err.message, re)
  return err
}

/** A config for tests: short periods so liveness and refreshes happen within a test. */
const FAST = {
  serviceStateUpdatePeriodSeconds: 0.2,
  staleAfterSeconds: 2,
  cpuFactor: 0,
}

/** Starts pods `indexes` of `service` in `ns`; returns their server drivers. */
async function startPods(store, ns, service, indexes, config = FAST) {
  const pods = indexes.map(
    (i) => new sr.ServerDriver(store, { namespace: ns, serviceName: service, podIndex: i }, config),
  )
  await Promise.all(pods.map((p) => p.start()))
  return pods
}

function newClient(store, ns, config = FAST) {
  const c = new sr.ClientDriver(
    store,
    { namespace: ns, serviceName: 'gateway', podIndex: 0 },
    config,
  )
  c.init()
  return c
}

/** tests/vectors/links.json of the checkout this package was installed from. */
function vectorsPath() {
  if (process.env.STATEFUL_ROUTE_VECTORS) return process.env.STATEFUL_ROUTE_VECTORS
  const pkg = fs.realpathSync(path.dirname(require.resolve('stateful-route/package.json')))
  return path.join(pkg, '..', 'tests', 'vectors', 'links.json')
}

// The lease holder of ownRedis(): a Python process that starts redis-server with
// tests/redis_launch.py (tests/PORTS.md) and keeps the port's lease for its whole life, so that
// a restart after SIGKILL gets the same port back. Commands on stdin, one a line: `restart`
// (a fresh, empty server on the same port); EOF kills the server and exits. After the start
// and after each restart it prints {"port", "pid", "log"} as one JSON line.
const LEASE_HOLDER = `
import json, pathlib, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
import redis_launch
DATA = ["--save", "", "--appendonly", "no"]
s = redis_launch.start_redis(sys.argv[2], DATA)
proc = s.proc
def tell():
    print(json.dumps({"port": s.port, "pid": proc.pid, "log": str(s.log)}), flush=True)
tell()
for line in sys.stdin:
    if line.strip() != "restart":
        continue
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    proc = subprocess.Popen(
        ["redis-server", *DATA, "--port", str(s.port), "--bind", "127.0.0.1",
         "--dir", str(s.dir), "--logfile", str(s.log)],
        cwd=s.dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while redis_launch.server_pid(s.port) != proc.pid:
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit("the restarted redis-server did not answer: " + redis_launch.tail(s.log))
        time.sleep(0.02)
    tell()
if proc.poll() is None:
    proc.kill()
proc.wait()
`

/** Whether something accepts connections on 127.0.0.1:`port`. */
function accepts(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1')
    sock.once('connect', () => (sock.destroy(), resolve(true)))
    sock.once('error', () => resolve(false))
  })
}

/**
 * A redis-server of one test's own on a leased port (see LEASE_HOLDER). Returns
 * { url, port, pid, signal(sig), kill(), restart(), close(), log() }: `kill` is SIGKILL and
 * waits until the port refuses connections; `restart` starts an empty server on the same port.
 */
async function ownRedis() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sr-node-redis-'))
  const tests = path.dirname(path.dirname(vectorsPath()))
  const holder = spawn('python3', ['-c', LEASE_HOLDER, tests, dir], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const lines = readline.createInterface({ input: holder.stdout })[Symbol.asyncIterator]()
  const next = async (what) => {
    const { value, done } = await lines.next()
    if (done) assert.fail(`the redis lease holder exited before ${what}`)
    return JSON.parse(value)
  }
  let server = await next('the start')
  const r = {
    url: `redis://127.0.0.1:${server.port}`,
    port: server.port,
    get pid() {
      return server.pid
    },
    stopped: false,
    signal(sig) {
      process.kill(server.pid, sig)
      r.stopped = sig === 'SIGSTOP'
    },
    async kill() {
      process.kill(server.pid, 'SIGKILL')
      r.stopped = false
      await until(async () => !(await accepts(server.port)), 'the killed redis-server gone')
    },
    async restart() {
      holder.stdin.write('restart\n')
      server = await next('the restart')
      assert.equal(server.port, r.port)
    },
    log() {
      return fs.existsSync(server.log) ? fs.readFileSync(server.log, 'utf8') : ''
    },
    async close() {
      if (r.stopped) r.signal('SIGCONT')
      const exited = new Promise((resolve) => holder.once('exit', resolve))
      holder.stdin.end()
      if (holder.exitCode === null) await exited
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
  return r
}

module.exports = {
  sr,
  REDIS_URL,
  STORES,
  FAST,
  unique,
  redisCli,
  redisKeys,
  until,
  streamUp,
  rejectsWith,
  throwsWith,
  startPods,
  newClient,
  vectorsPath,
  ownRedis,
  accepts,
}
