'use strict'
// Shared fixtures of the Node suite: both stores, unique key prefixes and namespaces, polling
// with a deadline (never a sleep as synchronisation), and raw Redis access via redis-cli.

const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const { randomBytes } = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')
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

module.exports = {
  sr,
  REDIS_URL,
  STORES,
  FAST,
  unique,
  redisCli,
  redisKeys,
  until,
  rejectsWith,
  throwsWith,
  startPods,
  newClient,
  vectorsPath,
}
