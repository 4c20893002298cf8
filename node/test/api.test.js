'use strict'
// The wrapper (index.js) against the generated index.d.ts: every method with parameters that
// the types declare as returning a Promise rejects on bad arguments (never throws), and every
// other one throws; both with INVALID_ARGUMENT. Keeps index.js's list of async methods honest.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { describe, it } = require('node:test')
const { sr, unique } = require('./helpers')

const dts = fs.readFileSync(
  path.join(path.dirname(require.resolve('stateful-route')), 'index.d.ts'),
  'utf8',
)

/** { className: [{ name, isStatic, params, returnsPromise }] } from the declarations. */
function declaredMethods() {
  const out = {}
  for (const m of dts.matchAll(/export declare class (\w+) \{([\s\S]*?)\n\}/g)) {
    out[m[1]] = [...m[2].matchAll(/^ {2}(static )?(\w+)\((.*)\): (.+)$/gm)].map((x) => ({
      isStatic: Boolean(x[1]),
      name: x[2],
      params: x[3],
      returnsPromise: x[4].startsWith('Promise<'),
    }))
  }
  return out
}

describe('the API as declared in index.d.ts', () => {
  it('declares the classes and the string enum', () => {
    const classes = declaredMethods()
    assert.deepEqual(Object.keys(classes).sort(), ['ClientDriver', 'ServerDriver', 'Store'])
    assert.ok(classes.ClientDriver.length > 25)
    assert.match(dts, /export declare enum RoutingState \{/)
    assert.deepEqual(
      { ...sr.RoutingState },
      { Ready: 'READY', DenyNewCall: 'DENY_NEW_CALL', Shutdown: 'SHUTDOWN' },
    )
  })

  it('methods with parameters reject (Promise) or throw (sync) INVALID_ARGUMENT when called without arguments', async () => {
    const store = sr.Store.memory()
    const info = { namespace: unique('api'), serviceName: 'room', podIndex: 0 }
    const objects = {
      Store: { self: store, cls: sr.Store },
      ClientDriver: { self: new sr.ClientDriver(store, info), cls: sr.ClientDriver },
      ServerDriver: { self: new sr.ServerDriver(store, info), cls: sr.ServerDriver },
    }
    objects.ClientDriver.self.init()
    let checked = 0
    for (const [cls, methods] of Object.entries(declaredMethods())) {
      const { self, cls: ctor } = objects[cls]
      for (const m of methods) {
        if (m.params === '' || m.params.split(',').every((p) => p.includes('?:'))) continue
        const where = `${cls}.${m.name}`
        const target = m.isStatic ? ctor : self
        assert.equal(typeof target[m.name], 'function', where)
        if (m.returnsPromise) {
          let p
          assert.doesNotThrow(() => (p = target[m.name]()), `${where} threw instead of rejecting`)
          assert.ok(p instanceof Promise, `${where} did not return a Promise`)
          await assert.rejects(p, (e) => e.code === 'INVALID_ARGUMENT', where)
        } else {
          assert.throws(
            () => target[m.name](),
            (e) => e.code === 'INVALID_ARGUMENT',
            where,
          )
        }
        checked++
      }
    }
    assert.ok(checked > 40, `only ${checked} methods checked`)
    objects.ClientDriver.self.close()
  })
})
