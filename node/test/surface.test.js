'use strict'
// tests/vectors/surface.json (the core's public surface in one neutral snake_case spelling)
// against the package, in camelCase: the methods of Store, ClientDriver and ServerDriver with
// their parameter names in order (read from the generated index.d.ts: functions of a native
// addon carry no parameter names; a method of a plain object type such as ServerInfo.from_env
// is the module function serverInfoFromEnv), the fields of every type, the config fields and
// their defaults (null in the file: undefined here), the routing states, the error codes and
// the placement names.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { describe, it } = require('node:test')
const {
  sr,
  unique,
  until,
  vectorsPath,
  throwsWith,
  rejectsWith,
  startPods,
  newClient,
} = require('./helpers')

const surface = JSON.parse(
  fs.readFileSync(path.join(path.dirname(vectorsPath()), 'surface.json'), 'utf8'),
)
const dts = fs.readFileSync(
  path.join(path.dirname(require.resolve('stateful-route')), 'index.d.ts'),
  'utf8',
)

const camel = (s) => s.replace(/_([a-z])/g, (_, c) => c.toUpperCase())

/** `a: T, b?: (x: X, y: Y) => Z` → ['a', 'b']: splits at the commas outside brackets. */
function paramNames(list) {
  const names = []
  let depth = 0
  let start = 0
  for (let i = 0; i <= list.length; i++) {
    const ch = list[i]
    if ('(<[{'.includes(ch) && ch !== undefined) depth++
    else if (')>]}'.includes(ch) && ch !== undefined && list[i - 1] !== '=') depth--
    else if ((ch === ',' && depth === 0) || ch === undefined) {
      const p = list.slice(start, i).trim()
      if (p) names.push(p.match(/^(\w+)\??:/)[1])
      start = i + 1
    }
  }
  return names
}

/** { ClassName: { method: [parameter names] } } as index.d.ts declares them. */
const declaredClasses = {}
for (const [, cls, body] of dts.matchAll(/^export declare class (\w+) \{$([\s\S]*?)^\}$/gm)) {
  declaredClasses[cls] = {}
  for (const [, name, params] of body.matchAll(/^ {2}(?:static )?(\w+)\((.*)\): .+$/gm)) {
    declaredClasses[cls][name] = paramNames(params)
  }
}

/** { functionName: [parameter names] } of the module functions index.d.ts declares. */
const declaredFunctions = {}
for (const [, name, params] of dts.matchAll(/^export declare function (\w+)\((.*)\): .+$/gm)) {
  declaredFunctions[name] = paramNames(params)
}

/** Types of the file the package does not have: C and Go's flat form of the metrics (the
 * package returns the structured MetricsSnapshot, see the file's "about"). */
const FLAT_ONLY = new Set(['Sample'])

/** { InterfaceName: [field names] } as index.d.ts declares them. */
const declaredInterfaces = {}
for (const [, name, body] of dts.matchAll(/^export interface (\w+) \{$([\s\S]*?)^\}$/gm)) {
  declaredInterfaces[name] = [...body.matchAll(/^ {2}(\w+)\??: /gm)].map((m) => m[1])
}

const info = (ns) => ({ namespace: ns, serviceName: 'room', podIndex: 0 })

describe('the surface of tests/vectors/surface.json', () => {
  it('every method exists with the listed parameter names in order', () => {
    for (const [cls, methods] of Object.entries(surface.methods)) {
      if (!declaredClasses[cls] && declaredInterfaces[cls]) {
        // A plain object type: its methods are module functions (ServerInfo.from_env →
        // serverInfoFromEnv).
        for (const [method, params] of Object.entries(methods)) {
          const name = camel(`${cls[0].toLowerCase()}${cls.slice(1)}_${method}`)
          assert.equal(typeof sr[name], 'function', name)
          assert.deepEqual(declaredFunctions[name], params.map(camel), `${name}'s parameters`)
        }
        continue
      }
      assert.ok(declaredClasses[cls], `index.d.ts declares no class ${cls}`)
      for (const [method, params] of Object.entries(methods)) {
        const name = camel(method)
        assert.equal(typeof sr[cls].prototype[name], 'function', `${cls}#${name}`)
        assert.deepEqual(
          declaredClasses[cls][name],
          params.map(camel),
          `${cls}#${name}'s parameters`,
        )
      }
    }
  })

  it('one spelling of each parameter: service, namespace, ttl, delay', () => {
    const other = /^(serviceName|svc|ns|ttlSeconds|delaySeconds|delaySecs|ttlSecs)$/
    for (const [cls, methods] of Object.entries(declaredClasses)) {
      for (const [name, params] of Object.entries(methods)) {
        for (const p of params) assert.doesNotMatch(p, other, `${cls}#${name}(${params})`)
      }
    }
  })

  it('every type has the listed fields, and the objects the package returns have them', async () => {
    for (const [type, fields] of Object.entries(surface.types)) {
      if (FLAT_ONLY.has(type)) {
        assert.equal(declaredInterfaces[type], undefined, type)
        continue
      }
      assert.deepEqual(
        [...(declaredInterfaces[type] ?? [])].sort(),
        fields.map(camel).sort(),
        `interface ${type}`,
      )
    }
    const keys = (o) => Object.keys(o).sort()
    const want = (type) => surface.types[type].map(camel).sort()
    const store = sr.Store.memory()
    const ns = unique('sf')
    const [pod] = await startPods(store, ns, 'room', [0])
    const client = newClient(store, ns)
    try {
      assert.deepEqual(keys(pod.serverInfo), want('ServerInfo'))
      assert.deepEqual(keys((await store.podStates(ns, 'room'))[0]), want('PodState'))
      assert.deepEqual(keys((await client.podStates('room'))[0]), want('PodState'))
      assert.deepEqual(keys(await store.setLinkIfAbsent(ns, 'u', 'room', 0, 60)), want('Link'))
      assert.deepEqual(keys(await store.trySetLink(ns, 'u', 'room', 0, -1)), want('TrySetOutcome'))
      const seen = []
      client.setServicePlacement('room', (candidates, request) => {
        seen.push(keys(candidates[0]), keys(request))
        return 0
      })
      await client.computeLinkedPod(ns, 'new', 'room')
      assert.deepEqual(seen, [want('Candidate'), want('PlacementRequest')])
      pod.setLoadCalculator((input) => {
        seen.push(keys(input))
        return 1
      })
      pod.tryWeightedLoad()
      assert.deepEqual(seen[2], want('LoadInput'))
      let change
      client.onLinkChanged((ch) => (change = ch))
      await pod.setLinkedPod(ns, 'new', 'room', 0) // the temporary link turns persistent
      // Polled: a listener does not keep the event loop alive, so a bare await could end it.
      assert.deepEqual(keys(await until(() => change, 'the link change')), want('LinkChange'))
      const m = client.metrics()
      assert.deepEqual(keys(m), want('MetricsSnapshot'))
      const room = m.services.find((s) => s.service === 'room')
      assert.deepEqual(keys(room), want('ServiceMetrics'))
      assert.deepEqual(keys(room.pods[0]), want('PodMetrics'))
      assert.deepEqual(keys(m.storeCalls[0]), want('StoreCallMetrics'))
      assert.deepEqual(keys(m.storeCalls[0].buckets[0]), ['count', 'le'])
      assert.deepEqual(keys(m.propagation), want('PropagationMetrics'))
      const e = await client.explainPlacement(ns, 'new', 'room')
      assert.deepEqual(keys(e), want('Explanation'))
      assert.deepEqual(keys(e.link), want('ExplainedLink'))
      assert.deepEqual(keys(e.pods[0]), want('ExplainedPod'))
    } finally {
      client.close()
      await pod.stop()
    }
  })

  it('config fields and defaults: defaultBaseConfig(), defaultStoreConfig(), and what a driver applies', () => {
    const defaults = { BaseConfig: sr.defaultBaseConfig(), StoreConfig: sr.defaultStoreConfig() }
    for (const [type, fields] of Object.entries(surface.config)) {
      assert.deepEqual(
        [...declaredInterfaces[type]].sort(),
        fields.map((f) => camel(f.name)).sort(),
        `interface ${type}`,
      )
      for (const f of fields) {
        const want = f.default === null ? undefined : f.default
        assert.equal(defaults[type][camel(f.name)], want, `${type}.${camel(f.name)}`)
      }
    }
    // A driver given no config runs with those defaults (the fields with a null default read
    // back as what they stand for).
    const applied = new sr.ClientDriver(sr.Store.memory(), info('sd')).config
    for (const f of surface.config.BaseConfig) {
      if (f.default !== null) assert.equal(applied[camel(f.name)], f.default, camel(f.name))
    }
    const period = applied.serviceStateUpdatePeriodSeconds
    assert.equal(applied.staleAfterSeconds, 3 * period)
    assert.equal(applied.slowStartSeconds, period)
    assert.equal(applied.placementLoadFactor, undefined) // p2c takes none
  })

  it('routing states', () => {
    assert.deepEqual(Object.values(sr.RoutingState), surface.routing_states)
  })

  it('error codes: the package lists exactly the core codes, and async rejections carry them', async () => {
    assert.deepEqual(sr.errorCodes(), surface.error_codes)
    const c = newClient(sr.Store.memory(), unique('ec'))
    try {
      // Rejections of the addon's async fns (bestPod) and of the settler (computeLinkedPod).
      const e = await rejectsWith(c.bestPod('room'), 'NO_AVAILABLE_POD')
      assert.equal(e.cause, undefined)
      assert.equal('podIndex' in e, false)
      await rejectsWith(c.computeLinkedPod('', 'u', 'room'), 'NO_AVAILABLE_POD')
      await rejectsWith(c.isPodAlive('room', -1), 'INVALID_ARGUMENT', /pod/)
    } finally {
      c.close()
    }
  })

  it('placement names: each is accepted and read back; anything else is INVALID_CONFIG', () => {
    const store = sr.Store.memory()
    for (const name of surface.placements) {
      const c = new sr.ClientDriver(store, info('pl'), { placement: name })
      assert.equal(c.config.placement, name)
      c.setServicePlacement('room', name)
    }
    throwsWith(
      () => new sr.ClientDriver(store, info('pl'), { placement: 'nearest' }),
      'INVALID_CONFIG',
      /nearest/,
    )
    const c = new sr.ClientDriver(store, info('pl'))
    throwsWith(() => c.setServicePlacement('room', 'nearest'), 'INVALID_CONFIG', /nearest/)
  })

  it('the rendezvous load factor: placementLoadFactor and setServicePlacement(service, placement, loadFactor)', () => {
    const store = sr.Store.memory()
    const make = (config) => new sr.ClientDriver(store, info('lf'), config)
    assert.equal(make({ placement: 'rendezvous' }).config.placementLoadFactor, 1.25)
    assert.equal(
      make({ placement: 'rendezvous', placementLoadFactor: 0 }).config.placementLoadFactor,
      1.25,
    )
    assert.equal(
      make({ placement: 'rendezvous', placementLoadFactor: 2 }).config.placementLoadFactor,
      2,
    )
    for (const bad of [
      { placementLoadFactor: 2 },
      { placement: 'random', placementLoadFactor: 2 },
    ]) {
      throwsWith(() => make(bad), 'INVALID_CONFIG', /placement_load_factor/)
    }
    throwsWith(
      () => make({ placement: () => 0, placementLoadFactor: 2 }),
      'INVALID_CONFIG',
      /load factor/,
    )
    throwsWith(() => make({ placement: 'rendezvous', placementLoadFactor: 0.5 }), 'INVALID_CONFIG')
    const c = make({})
    c.setServicePlacement('room', 'rendezvous', 3)
    c.setServicePlacement('room', 'rendezvous', undefined)
    throwsWith(() => c.setServicePlacement('room', 'p2c', 3), 'INVALID_CONFIG', /rendezvous/)
    throwsWith(() => c.setServicePlacement('room', () => 0, 3), 'INVALID_CONFIG')
    throwsWith(() => c.setServicePlacement('room', 'rendezvous', 'big'), 'INVALID_ARGUMENT')
  })
})
