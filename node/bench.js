'use strict'
/**
 * Speed of the Node package (issue 8 "Speed"); prints figures and ratios from one run.
 *
 *   node/bench.sh [--redis URL]     # installs the package and ioredis into a temp dir, runs this
 *
 * or, in a directory where `stateful-route` and `ioredis` are installed:
 *
 *   node <repo>/node/bench.js [--redis URL] [--hits N] [--new-users N]
 *
 * Measures, each the median of ROUNDS rounds:
 *  1. `computeLinkedPod` on a cache hit (the call, which returns a resolved Promise), next to a
 *     bare napi call (one string in, a number out) and the core's own hit cost
 *     (`compute_cached` looped in Rust); the target is hit <= 3 x bare + core;
 *  2. awaited cache hits per second (a hit resolves on the JS thread), next to a cached read
 *     that crosses to the core's runtime (`getLinkedPod`) and to ioredis + a TTL Map cache;
 *  3. new-user computes per second against Redis with 64 concurrent Promises, next to the
 *     core's own figure (64 tokio tasks) from the same run (target >= 50 %) and to the same
 *     routing written with ioredis + a TTL Map cache + the same Lua script;
 *  4. the cost per placement of a JS function as placement policy (issue 6): new users on the
 *     memory store placed by the built-in p2c and by the same p2c written in JS, alternating in
 *     one run; the figure is the median of the per-round paired differences, for the core's own
 *     loop (64 tokio tasks), 64 concurrent Promises and one Promise at a time
 *     (`--placements N` users a round; `--callback-only` runs this part alone, without Redis).
 * Redis: --redis, else $STATEFUL_ROUTE_TEST_REDIS, else a throwaway tests/redis-server.sh.
 */

const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const { createRequire } = require('node:module')
const os = require('node:os')
const path = require('node:path')

// From the directory the bench runs in (where the package and ioredis are installed).
const cwdRequire = createRequire(path.join(process.cwd(), 'bench.js'))
const sr = cwdRequire('stateful-route')
if (typeof sr.benchBareCall !== 'function') {
  throw new Error(
    'the addon has no measuring points: build it with the bench feature (node/bench.sh)',
  )
}

const NS = 'bench'
const SVC = 'bench'
const ROUNDS = 5
const TASKS = 64

// core/src/store/scripts.rs SET_LINK_IF_ABSENT (with its write_link helper), verbatim.
const SET_LINK_IF_ABSENT = `
local function write_link(svc, pod, ttl)
  if ttl < 0 then
    redis.call('SET', KEYS[1], pod)
    redis.call('HSET', KEYS[2], svc, pod)
  else
    redis.call('SET', KEYS[1], pod, 'EX', ttl)
    redis.call('HDEL', KEYS[2], svc)
  end
end
local cur = redis.call('GET', KEYS[1])
if cur then
  return {cur, redis.call('PTTL', KEYS[1])}
end
local ttl = tonumber(ARGV[3])
write_link(ARGV[1], ARGV[2], ttl)
if ttl < 0 then return {ARGV[2], -1} end
return {ARGV[2], ttl * 1000}
`

/**
 * The routing a Node team would write without stateful-route: ioredis, a Map cache with
 * expiry times, a pod-state snapshot refreshed every period, power-of-two-choices placement
 * and the same set-if-absent Lua script (one round trip per new user).
 */
class IoredisRouter {
  constructor(redis, prefix, period = 30) {
    this.redis = redis
    this.prefix = prefix
    this.period = period
    this.cache = new Map()
    this.snapshots = new Map()
    redis.defineCommand('setLinkIfAbsent', { numberOfKeys: 2, lua: SET_LINK_IF_ABSENT })
  }

  async snapshot(svc) {
    const now = performance.now() / 1000
    let snap = this.snapshots.get(svc)
    if (!snap || now - snap.at > this.period) {
      const [[, fields], [, [secs, micros]]] = await this.redis
        .pipeline()
        .hgetall(`${this.prefix}:{${NS}:state:${svc}}`)
        .time()
        .exec()
      const storeMs = Number(secs) * 1000 + Math.floor(Number(micros) / 1000)
      const pods = new Map()
      for (const [f, v] of Object.entries(fields)) {
        const [load, updateMs, routing] = v.split('-', 3)
        const age = (storeMs - Number(updateMs)) / 1000
        pods.set(Number(f), {
          load: Number(load),
          routing,
          aliveUntil: now + 3 * this.period - age,
        })
      }
      snap = { at: now, pods }
      this.snapshots.set(svc, snap)
    }
    return snap.pods
  }

  async compute(uid, svc) {
    const now = performance.now() / 1000
    const key = `${svc}\u0000${uid}`
    const hit = this.cache.get(key)
    if (hit && hit.until > now) {
      const state = this.snapshots.get(svc)?.pods.get(hit.pod)
      if (state && state.routing !== 'SHUTDOWN' && state.aliveUntil > now) return hit.pod
    }
    const pods = await this.snapshot(svc)
    const routable = [...pods].filter(([, s]) => s.routing === 'READY' && s.aliveUntil > now)
    if (routable.length === 0) throw new Error('no routable pod')
    const a = routable[Math.floor(Math.random() * routable.length)]
    const b = routable[Math.floor(Math.random() * routable.length)]
    const best = a[1].load <= b[1].load ? a[0] : b[0]
    const k = `${this.prefix}:{${NS}:lk:${uid}}`
    const [pod, pttl] = await this.redis.setLinkIfAbsent(k + svc, k, svc, best, 300)
    const ttl = Number(pttl) < 0 ? 240 : Math.min(240, Number(pttl) / 1000 - 60)
    this.cache.set(key, { pod: Number(pod), until: now + ttl })
    return Number(pod)
  }
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

/** Median over ROUNDS of the per-call time of `fn`, in ns. */
function perCallNs(fn, n) {
  const rounds = []
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < n; i++) fn()
    rounds.push(Number(process.hrtime.bigint() - start) / n)
  }
  return median(rounds)
}

/** Median over ROUNDS of awaited calls per second. */
async function awaitedPerSecond(fn, n) {
  const rounds = []
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < n; i++) await fn()
    rounds.push(n / (Number(process.hrtime.bigint() - start) / 1e9))
  }
  return median(rounds)
}

/** `n` new users computed by TASKS concurrent loops; users per second. */
async function newUsersPerSecond(compute, prefix, n) {
  let next = 0
  const worker = async () => {
    for (let i = next++; i < n; i = next++) await compute(`${prefix}${i}`)
  }
  const start = process.hrtime.bigint()
  await Promise.all(Array.from({ length: TASKS }, worker))
  return n / (Number(process.hrtime.bigint() - start) / 1e9)
}

/** p2c, written in JS: what the built-in default does, as a placement policy. */
function jsP2c(candidates) {
  const n = candidates.length
  if (n === 1) return 0
  const a = Math.floor(Math.random() * n)
  let b = Math.floor(Math.random() * (n - 1))
  if (b >= a) b++
  const la = candidates[a].load + candidates[a].placed
  const lb = candidates[b].load + candidates[b].placed
  return la < lb || (la === lb && Math.random() < 0.5) ? a : b
}

/** 4. Cost per placement of a JS policy vs the built-in one, memory store, same run. */
async function callbackCost(n) {
  const store = sr.Store.memory()
  const cfg = { cpuFactor: 0 }
  const servers = [0, 1, 2, 3].map(
    (i) => new sr.ServerDriver(store, { namespace: NS, serviceName: SVC, podIndex: i }, cfg),
  )
  await Promise.all(servers.map((s) => s.start()))
  const client = new sr.ClientDriver(
    store,
    { namespace: NS, serviceName: 'gateway', podIndex: 0 },
    cfg,
  )
  client.init()
  let calls = 0
  const policy = (c) => (calls++, jsP2c(c))
  // µs per placement of each way of computing, with `placement` in force.
  const modes = {
    core: async (prefix) => (await sr.benchCoreNewUsers(client, prefix, SVC, n, TASKS)) / n,
    concurrent: async (prefix) =>
      1 / (await newUsersPerSecond((u) => client.computeLinkedPod(NS, u, SVC), prefix, n)),
    sequential: async (prefix) => {
      const start = process.hrtime.bigint()
      for (let i = 0; i < n; i++) await client.computeLinkedPod(NS, `${prefix}${i}`, SVC)
      return Number(process.hrtime.bigint() - start) / 1e9 / n
    },
  }
  const out = {}
  for (const [mode, run] of Object.entries(modes)) {
    const builtin = []
    const js = []
    const diff = []
    await run(`w${mode}-`) // warm-up, built-in
    for (let r = 0; r < ROUNDS; r++) {
      client.setServicePlacement(SVC, 'p2c')
      const b = (await run(`b${mode}${r}-`)) * 1e6
      client.setServicePlacement(SVC, policy)
      const j = (await run(`j${mode}${r}-`)) * 1e6
      builtin.push(b)
      js.push(j)
      diff.push(j - b)
    }
    out[mode] = { builtin: median(builtin), js: median(js), diff: median(diff) }
  }
  client.close()
  await Promise.all(servers.map((s) => s.stop()))
  console.log(
    `4. cost per placement of a JS placement policy (memory store, ${n} new users a round)`,
  )
  console.log('                                       built-in p2c   p2c in JS   JS callback cost')
  const label = {
    core: 'core loop (64 tokio tasks)   ',
    concurrent: `Node, ${TASKS} concurrent Promises`,
    sequential: 'Node, one Promise at a time  ',
  }
  for (const [mode, f] of Object.entries(out)) {
    console.log(
      `   ${label[mode]}    ${fmt(f.builtin, 8, 2)} µs ${fmt(f.js, 8, 2)} µs ${fmt(f.diff, 8, 2)} µs`,
    )
  }
  if (calls < ROUNDS * 3 * n) throw new Error(`the JS policy ran ${calls} times`)
}

function redisUrl(arg) {
  const url = arg || process.env.STATEFUL_ROUTE_TEST_REDIS
  if (url) return { url, stop: () => {} }
  const script = path.join(__dirname, '..', 'tests', 'redis-server.sh')
  const state = fs.mkdtempSync(path.join(os.tmpdir(), 'sr-bench-'))
  const out = execFileSync(script, ['start', state], { encoding: 'utf8' })
  const found = /STATEFUL_ROUTE_TEST_REDIS=(\S+)/.exec(out)
  return { url: found[1], stop: () => execFileSync(script, ['stop', state]) }
}

function arg(name, fallback) {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : fallback
}

const fmt = (x, w = 10, d = 0) => x.toFixed(d).padStart(w)

async function main(url, nHits, nNew) {
  const runId = `b${process.pid}x${Date.now() % 1e9}`
  const store = await sr.Store.connect(url, { keyPrefix: runId })
  const cfg = { cpuFactor: 0 }
  const servers = [0, 1, 2, 3].map(
    (i) => new sr.ServerDriver(store, { namespace: NS, serviceName: SVC, podIndex: i }, cfg),
  )
  await Promise.all(servers.map((s) => s.start()))
  const client = new sr.ClientDriver(
    store,
    { namespace: NS, serviceName: 'gateway', podIndex: 0 },
    cfg,
  )
  client.init()
  const uid = 'hot-user'
  await client.computeLinkedPod(NS, uid, SVC)

  // 1. The call on a cache hit, a bare napi call, the core's own hit.
  const bareNs = perCallNs(() => sr.benchBareCall(uid), nHits)
  const probeNs = perCallNs(() => client.computeCached(NS, uid, SVC), nHits)
  const hitNs = perCallNs(() => client.computeLinkedPod(NS, uid, SVC), nHits)
  const coreNs = median(
    Array.from({ length: ROUNDS }, () => sr.benchCoreHits(client, NS, uid, SVC, nHits)),
  )
  const budget = 3 * bareNs + coreNs
  console.log('1. computeLinkedPod on a cache hit (the call; it returns a resolved Promise)')
  console.log(`   bare napi call (string -> number)   ${fmt(bareNs, 8)} ns`)
  console.log(`   core hit (compute_cached in Rust)   ${fmt(coreNs, 8)} ns`)
  console.log(`   computeCached (sync native probe)   ${fmt(probeNs, 8)} ns`)
  console.log(`   computeLinkedPod hit                ${fmt(hitNs, 8)} ns`)
  console.log(`   hit / (3 x bare + core)             ${fmt(hitNs / budget, 8, 2)}   (target <= 1)`)

  // 2. Awaited hits: ours, a cached read through the runtime, ioredis + Map cache.
  const Redis = cwdRequire('ioredis')
  const redis = new Redis(url, { lazyConnect: false })
  const router = new IoredisRouter(redis, runId)
  await router.compute(uid, SVC)
  const oursHits = await awaitedPerSecond(() => client.computeLinkedPod(NS, uid, SVC), nHits)
  const hopHits = await awaitedPerSecond(
    () => client.getLinkedPod(NS, uid, SVC),
    Math.ceil(nHits / 20),
  )
  const theirsHits = await awaitedPerSecond(() => router.compute(uid, SVC), nHits)
  console.log('2. await computeLinkedPod on a cache hit')
  console.log(
    `   stateful-route                      ${fmt(oursHits)} hits/s (${fmt(1e9 / oursHits, 0)} ns)`,
  )
  console.log(
    `   cached read via the runtime         ${fmt(hopHits)} hits/s (${fmt(1e9 / hopHits, 0)} ns)  (getLinkedPod: a thread hop)`,
  )
  console.log(
    `   ioredis + Map cache                 ${fmt(theirsHits)} hits/s (${fmt(1e9 / theirsHits, 0)} ns)`,
  )
  console.log(`   ours / ioredis                      ${fmt(oursHits / theirsHits, 10, 2)}`)

  // 3. New users against Redis, 64 concurrent Promises.
  const ours = []
  const core = []
  const theirs = []
  for (let r = 0; r < ROUNDS; r++) {
    ours.push(await newUsersPerSecond((u) => client.computeLinkedPod(NS, u, SVC), `o${r}-`, nNew))
    core.push(nNew / (await sr.benchCoreNewUsers(client, `c${r}-`, SVC, nNew, TASKS)))
    theirs.push(await newUsersPerSecond((u) => router.compute(u, SVC), `t${r}-`, nNew))
  }
  const [oursM, coreM, theirsM] = [ours, core, theirs].map(median)
  console.log(`3. new users against Redis, ${TASKS} concurrent Promises, ${nNew} users a round`)
  console.log(`   core (64 tokio tasks)               ${fmt(coreM)} users/s`)
  console.log(`   stateful-route (Node)               ${fmt(oursM)} users/s`)
  console.log(
    `   Node / core                         ${fmt(oursM / coreM, 10, 2)}   (target >= 0.5)`,
  )
  console.log(`   ioredis + Map cache                 ${fmt(theirsM)} users/s`)
  console.log(`   ours / ioredis                      ${fmt(oursM / theirsM, 10, 2)}`)

  client.close()
  await Promise.all(servers.map((s) => s.stop()))
  redis.disconnect()
}

const placements = Number(arg('--placements', 20000))
const callbackOnly = process.argv.includes('--callback-only')
const { url, stop } = callbackOnly ? { url: null, stop: () => {} } : redisUrl(arg('--redis'))
;(callbackOnly
  ? Promise.resolve()
  : main(url, Number(arg('--hits', 200000)), Number(arg('--new-users', 5000)))
)
  .then(() => callbackCost(placements))
  .catch((e) => {
    console.error(e)
    process.exitCode = 1
  })
  .finally(stop)
