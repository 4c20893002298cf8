'use strict'
// Edge values of every float field of the config (issue item 8), property style: each value
// is either rejected with INVALID_CONFIG naming the field, or accepted, and then a pod with
// that config starts on the memory store, a client with the same config reads its state and
// routes a user to it, and the pod keeps publishing (a later publish is seen). Nothing panics,
// nothing silently stops.

const assert = require('node:assert/strict')
const { describe, it } = require('node:test')
const { sr, until, unique } = require('./helpers')

const SVC = 'room'
// camelCase field → the core's name for it in error messages.
const FIELDS = {
  serviceStateUpdatePeriodSeconds: 'service_state_update_period_seconds',
  cpuFactor: 'cpu_factor',
  staleAfterSeconds: 'stale_after_seconds',
  drainSeconds: 'drain_seconds',
  serveStaleSeconds: 'serve_stale_seconds',
  slowStartSeconds: 'slow_start_seconds',
}
const VALUES = [
  NaN,
  Infinity,
  -Infinity,
  5e-324, // the smallest subnormal
  1e-300,
  -0,
  0,
  1e300,
  1.7976931348623157e308, // Number.MAX_VALUE
  -1,
  0.5,
]
// The rest of the config: short periods (a second publish comes quickly), CPU off.
const BASE = { serviceStateUpdatePeriodSeconds: 0.2, cpuFactor: 0 }

/** The driver made with `config`, or the INVALID_CONFIG error (anything else fails). */
function tryServer(store, info, config) {
  try {
    return { server: new sr.ServerDriver(store, info, config) }
  } catch (e) {
    assert.ok(e instanceof Error, `not an Error: ${e}`)
    assert.equal(e.code, 'INVALID_CONFIG', `${e.code}: ${e.message}`)
    return { error: e }
  }
}

async function publishes(store, ns, server, config) {
  const info = { namespace: ns, serviceName: SVC, podIndex: 0 }
  await server.start()
  const client = new sr.ClientDriver(store, info, config)
  client.init()
  try {
    const states = await client.podStates(SVC)
    assert.deepEqual(
      states.map((s) => [s.podIndex, s.routingState]),
      [[0, 'READY']],
    )
    const first = states[0].updateMs
    await until(
      async () => {
        await client.refreshService(SVC)
        return (await client.podStates(SVC))[0].updateMs > first
      },
      'a second publish',
      (config.serviceStateUpdatePeriodSeconds + 5) * 1000,
    )
    assert.equal(await client.isPodAlive(SVC, 0), true)
    assert.equal(await client.computeLinkedPod(ns, 'u', SVC), 0)
  } finally {
    client.close()
    await server.stop()
  }
  assert.equal((await store.podStates(ns, SVC))[0].routingState, 'SHUTDOWN')
}

describe('config edge values', () => {
  for (const [field, core] of Object.entries(FIELDS)) {
    for (const value of VALUES) {
      it(`${field} = ${Object.is(value, -0) ? '-0' : value}: rejected by name, or it works`, async () => {
        const store = sr.Store.memory()
        const ns = unique('edge')
        const config = { ...BASE, [field]: value }
        const info = { namespace: ns, serviceName: SVC, podIndex: 0 }
        const { server, error } = tryServer(store, info, config)
        if (error) {
          assert.ok(error.message.includes(core), `${error.message} does not name ${core}`)
          // The client side refuses it the same way.
          assert.throws(
            () => new sr.ClientDriver(store, info, config),
            (e) => e.code === 'INVALID_CONFIG' && e.message.includes(core),
          )
          return
        }
        // Read back as given (staleAfterSeconds and slowStartSeconds as the durations in
        // force, to the nanosecond).
        assert.ok(Math.abs(server.config[field] - value) <= 1e-9, `${server.config[field]}`)
        await publishes(store, ns, server, config)
      })
    }
  }

  it('the accepted values are the documented bounds', () => {
    const store = sr.Store.memory()
    const info = { namespace: 'edge', serviceName: SVC, podIndex: 0 }
    const accepted = (field) =>
      VALUES.filter((v) => tryServer(store, info, { ...BASE, [field]: v }).server !== undefined)
    const dayOrZero = [5e-324, 1e-300, -0, 0, 0.5]
    assert.deepEqual(accepted('serviceStateUpdatePeriodSeconds'), [0.5])
    assert.deepEqual(accepted('staleAfterSeconds'), [0.5])
    assert.deepEqual(accepted('cpuFactor'), dayOrZero)
    assert.deepEqual(accepted('drainSeconds'), dayOrZero)
    assert.deepEqual(accepted('serveStaleSeconds'), dayOrZero)
    assert.deepEqual(accepted('slowStartSeconds'), dayOrZero)
  })
})
