'use strict'
// Metrics, explain, Kubernetes helpers (README "Metrics", "Kubernetes"): on both stores,
// `metrics()` and the Prometheus text of `metricsText()` count exactly what a test did (round
// robin, no CPU sampling, no slow start, as core/tests/metrics.rs); `metrics: false` counts
// nothing; `explainPlacement` gives each pod's verdict and writes and counts nothing;
// `serverInfoFromEnv` reads the pod's environment; `stopOnSignal` stops a pod on SIGTERM, in
// this process and in a child process that then exits by itself.

const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const readline = require('node:readline')
const { after, describe, it } = require('node:test')
const h = require('./helpers')
const { sr, REDIS_URL, unique, until, streamUp, rejectsWith, throwsWith } = h

const SVC = 'room'
/** As core/tests/metrics.rs, with a long staleness bound so that a busy machine keeps the pods
 * alive through a test. */
const CONFIG = {
  serviceStateUpdatePeriodSeconds: 0.2,
  staleAfterSeconds: 10,
  slowStartSeconds: 0,
  cpuFactor: 0,
  placement: 'round_robin',
}

/** Starts pod `index` of `service` in `ns` publishing `load`. */
async function startPod(store, ns, index, load, config = CONFIG, service = SVC) {
  const pod = new sr.ServerDriver(
    store,
    { namespace: ns, serviceName: service, podIndex: index },
    config,
  )
  pod.setLoadState(load)
  await pod.start()
  return pod
}

/** An initialised gateway of `ns` whose event stream is up (nothing it caches is dropped by
 * the first subscription). */
async function gateway(store, ns, config = CONFIG) {
  const c = new sr.ClientDriver(
    store,
    { namespace: ns, serviceName: 'gateway', podIndex: 0 },
    config,
  )
  c.init()
  await streamUp(c, store, ns, 'marker')
  return c
}

/**
 * The series of a Prometheus text exposition: `name{labels}` → value. Checks the format on the
 * way: every series follows the `# HELP` and `# TYPE` of its family.
 */
function parseText(text) {
  assert.ok(text.endsWith('\n'), 'the text ends with a newline')
  const series = new Map()
  const typed = new Set()
  for (const line of text.split('\n').filter(Boolean)) {
    const meta = line.match(/^# (HELP|TYPE) (\w+) (.+)$/)
    if (meta) {
      if (meta[1] === 'TYPE') {
        assert.match(meta[3], /^(counter|gauge|histogram)$/, line)
        typed.add(meta[2])
      }
      continue
    }
    const m = line.match(/^(\w+)(\{[^}]*\})? (\S+)$/)
    assert.ok(m, `not a series line: ${line}`)
    const family = m[1].replace(/_(bucket|sum|count)$/, '')
    assert.ok(typed.has(m[1]) || typed.has(family), `${m[1]} has no # TYPE before it`)
    const key = m[1] + (m[2] ?? '')
    assert.ok(!series.has(key), `${key} twice`)
    series.set(key, m[3] === '+Inf' ? Infinity : Number(m[3]))
  }
  return series
}

/** The value of one series of `text`; fails if it is absent. */
function value(series, key) {
  assert.ok(series.has(key), `no ${key} in the text`)
  return series.get(key)
}

function serviceOf(snapshot, service) {
  const s = snapshot.services.find((x) => x.service === service)
  assert.ok(
    s,
    `no service ${service} in ${JSON.stringify(snapshot.services.map((x) => x.service))}`,
  )
  return s
}

const podsIn = (s, state) => s.pods.filter((p) => p.state === state).length

for (const kind of h.STORES) {
  describe(`metrics on the ${kind.name} store`, () => {
    const open = []
    after(async () => {
      for (const d of open.reverse()) {
        if (d instanceof sr.ClientDriver) d.close()
        else await d.stop()
      }
    })

    it('counts hits, misses, placements by pod and errors by code; metricsText() has the same numbers', async () => {
      const { store } = await kind.make()
      const ns = unique('mt')
      const p0 = await startPod(store, ns, 0, 10)
      const p1 = await startPod(store, ns, 1, 10)
      const gw = await gateway(store, ns)
      open.push(p0, p1, gw)

      // 4 new users (round robin: pods 0, 1, 0, 1), then 6 hits on them.
      const placed = []
      for (let i = 0; i < 4; i++) placed.push(await gw.computeLinkedPod('', `u${i}`, SVC))
      assert.deepEqual(placed, [0, 1, 0, 1])
      for (let i = 0; i < 6; i++) {
        assert.equal(await gw.computeLinkedPod('', `u${i % 4}`, SVC), placed[i % 4])
      }
      // One error of a known kind: a service nobody serves.
      await rejectsWith(gw.computeLinkedPod('', 'u0', 'empty'), 'NO_AVAILABLE_POD')
      // A hit through the synchronous probe counts too.
      assert.equal(gw.computeCached('', 'u0', SVC), 0)

      const m = gw.metrics()
      assert.equal(m.namespace, ns)
      assert.equal(m.enabled, true)
      assert.equal(m.cacheEntries, 4)
      const s = serviceOf(m, SVC)
      assert.deepEqual([s.hits, s.misses, s.stale, s.errors], [7, 4, 0, 0])
      assert.deepEqual(s.placements, { 0: 2, 1: 2 })
      assert.ok(s.snapshotReads >= 1)
      assert.equal(s.snapshotReadErrors, 0)
      assert.equal(typeof s.snapshotAgeSeconds, 'number')
      assert.deepEqual(
        s.pods.map((p) => [p.podIndex, p.state, p.routingState, p.load, p.weight]),
        [
          [0, 'routable', 'READY', 10, 100],
          [1, 'routable', 'READY', 10, 100],
        ],
      )
      for (const p of s.pods) assert.ok(p.ageSeconds >= 0 && p.ageSeconds < 10, `${p.ageSeconds}`)
      const empty = serviceOf(m, 'empty')
      assert.deepEqual([empty.hits, empty.misses, empty.errors], [0, 0, 1])
      assert.deepEqual(empty.pods, [])
      assert.deepEqual(m.errors, { NO_AVAILABLE_POD: 1 })
      const sla = m.storeCalls.find((c) => c.op === 'set_link_if_absent')
      assert.ok(sla, JSON.stringify(m.storeCalls.map((c) => c.op)))
      assert.equal(sla.calls, 4)
      assert.equal(sla.errors, 0)
      assert.ok(sla.secondsSum > 0 && sla.secondsSum < 10)
      assert.equal(sla.buckets.length, 14)
      for (let i = 1; i < sla.buckets.length; i++) {
        assert.ok(sla.buckets[i].le > sla.buckets[i - 1].le, 'ascending bounds')
        assert.ok(sla.buckets[i].count >= sla.buckets[i - 1].count, 'cumulative counts')
      }
      assert.ok(sla.buckets.at(-1).count <= sla.calls)
      assert.equal(m.propagation.enabled, true)
      assert.equal(m.propagation.connected, true)
      assert.ok(m.propagation.linkEvents >= 1, 'the marker moves of streamUp')
      assert.equal(m.propagation.gaps, 0)

      const t = parseText(gw.metricsText())
      const computes = (svc, result) =>
        value(t, `stateful_route_computes_total{service="${svc}",result="${result}"}`)
      assert.deepEqual(
        ['hit', 'miss', 'stale', 'error'].map((r) => computes(SVC, r)),
        [s.hits, s.misses, s.stale, s.errors],
      )
      assert.equal(computes('empty', 'error'), 1)
      for (const [pod, n] of Object.entries(s.placements)) {
        assert.equal(value(t, `stateful_route_placements_total{service="room",pod="${pod}"}`), n)
      }
      assert.equal(value(t, 'stateful_route_errors_total{kind="NO_AVAILABLE_POD"}'), 1)
      assert.equal(value(t, 'stateful_route_cache_entries'), 4)
      assert.equal(value(t, 'stateful_route_pods{service="room",state="routable"}'), 2)
      assert.equal(value(t, 'stateful_route_pods{service="room",state="draining"}'), 0)
      assert.equal(value(t, 'stateful_route_pod_load{service="room",pod="1"}'), 10)
      const op = '{op="set_link_if_absent"}'
      assert.equal(value(t, `stateful_route_store_call_seconds_count${op}`), 4)
      assert.equal(
        value(t, 'stateful_route_store_call_seconds_bucket{op="set_link_if_absent",le="+Inf"}'),
        4,
      )
      assert.equal(value(t, `stateful_route_store_call_errors_total${op}`), 0)
      assert.equal(value(t, 'stateful_route_event_stream_up'), 1)
      assert.equal(value(t, 'stateful_route_event_gaps_total'), 0)
      assert.ok(![...t.keys()].some((k) => /u[0-3]/.test(k)), 'no uid in any label')

      // A drain shows as a draining pod once the gateway sees it.
      await p1.setRoutingState(sr.RoutingState.DenyNewCall)
      await until(() => podsIn(serviceOf(gw.metrics(), SVC), 'draining') === 1, 'pod 1 draining')
      assert.equal(
        value(parseText(gw.metricsText()), 'stateful_route_pods{service="room",state="draining"}'),
        1,
      )
      // A link moved elsewhere counts as a link event and drops the cached entry.
      const before = gw.metrics().propagation
      await store.setLink(ns, 'u0', SVC, 1, -1)
      await until(
        () => gw.metrics().propagation.invalidations === before.invalidations + 1,
        'the move',
      )
      const after = gw.metrics()
      assert.ok(after.propagation.linkEvents > before.linkEvents)
      assert.equal(after.cacheEntries, 3)
      assert.equal(
        value(parseText(gw.metricsText()), 'stateful_route_cache_invalidations_total'),
        after.propagation.invalidations,
      )
    })

    it('metrics: false counts nothing and still reports the gauges', async () => {
      const { store } = await kind.make()
      const ns = unique('mf')
      const config = { ...CONFIG, metrics: false }
      const p0 = await startPod(store, ns, 0, 10, config)
      const gw = await gateway(store, ns, config)
      open.push(p0, gw)
      assert.equal(gw.config.metrics, false)
      assert.equal(await gw.computeLinkedPod('', 'u', SVC), 0)
      assert.equal(await gw.computeLinkedPod('', 'u', SVC), 0)
      await rejectsWith(gw.computeLinkedPod('', 'u', 'empty'), 'NO_AVAILABLE_POD')

      const m = gw.metrics()
      assert.equal(m.enabled, false)
      assert.deepEqual(m.errors, {})
      const s = serviceOf(m, SVC)
      assert.deepEqual([s.hits, s.misses, s.stale, s.errors], [0, 0, 0, 0])
      assert.deepEqual(s.placements, {})
      assert.equal(podsIn(s, 'routable'), 1)
      assert.equal(m.cacheEntries, 1)
      const t = parseText(gw.metricsText())
      assert.equal(value(t, 'stateful_route_computes_total{service="room",result="hit"}'), 0)
      assert.equal(value(t, 'stateful_route_computes_total{service="room",result="miss"}'), 0)
      assert.ok(![...t.keys()].some((k) => k.startsWith('stateful_route_placements_total')))
      assert.ok(![...t.keys()].some((k) => k.startsWith('stateful_route_errors_total')))
      assert.equal(value(t, 'stateful_route_pods{service="room",state="routable"}'), 1)
      assert.equal(value(t, 'stateful_route_cache_entries'), 1)
    })

    it('explainPlacement: each pod with its verdict; a dry run that writes and counts nothing', async () => {
      const made = await kind.make()
      const { store } = made
      const ns = unique('ex')
      const config = { ...CONFIG, loadRange: 100 }
      const pods = [
        await startPod(store, ns, 0, 10, config),
        await startPod(store, ns, 1, 500, config),
        await startPod(store, ns, 2, 20, config),
      ]
      await pods[2].setRoutingState(sr.RoutingState.DenyNewCall)
      const gw = await gateway(store, ns, config)
      open.push(...pods, gw)

      const keys = made.keys ? made.keys() : null
      const e = await gw.explainPlacement('', 'newcomer', SVC)
      if (keys) assert.deepEqual(made.keys(), keys, 'explain writes no key')
      assert.equal(await store.getLink(ns, 'newcomer', SVC), null)
      assert.equal(gw.getLinkedInCache('', 'newcomer', SVC), null)
      assert.equal(e.namespace, ns)
      assert.equal(e.uid, 'newcomer')
      assert.equal(e.service, SVC)
      assert.equal(e.link, null)
      assert.equal(e.cachedPod, null)
      assert.equal(e.policy, 'round_robin')
      assert.equal(e.loadFactor, 0)
      assert.equal(e.loadRange, 100)
      assert.deepEqual(
        e.pods.map((p) => [p.podIndex, p.verdict, p.load, p.routingState, p.alive, p.weight]),
        [
          [0, 'kept', 10, 'READY', true, 100],
          [1, 'over_load_range', 500, 'READY', true, 100],
          [2, 'not_routable', 20, 'DENY_NEW_CALL', true, 100],
        ],
      )
      assert.match(e.pods[1].reason, /load 500/)
      for (const p of e.pods) {
        assert.equal(p.placed, 0)
        assert.ok(p.ageSeconds >= 0 && p.ageSeconds < 10, `${p.ageSeconds}`)
        assert.ok(p.reason.length > 0)
      }
      assert.equal(e.wouldPlaceOn, 0)
      assert.equal(e.answer, 0)
      assert.match(e.summary, /no link/)
      assert.equal(typeof e.snapshotAgeSeconds, 'number')
      const s = serviceOf(gw.metrics(), SVC)
      assert.deepEqual([s.hits, s.misses, s.placements], [0, 0, {}], 'no placement, hit or miss')

      // The same user placed for real: the explanation now shows its link, cached here.
      assert.equal(await gw.computeLinkedPod('', 'newcomer', SVC), 0)
      const placed = await gw.explainPlacement('', 'newcomer', SVC)
      assert.equal(placed.link.podIndex, 0)
      assert.equal(placed.link.persistent, false)
      assert.ok(
        placed.link.ttlSeconds > 0 && placed.link.ttlSeconds <= 300,
        `${placed.link.ttlSeconds}`,
      )
      assert.equal(placed.link.podAlive, true)
      assert.equal(placed.cachedPod, 0)
      assert.equal(placed.answer, 0)
      assert.match(placed.summary, /temporary/)

      // A persistent link to the draining pod: explained and answered with it.
      await store.setLink(ns, 'linked', SVC, 2, -1)
      const linked = await gw.explainPlacement('', 'linked', SVC)
      assert.deepEqual(linked.link, {
        podIndex: 2,
        persistent: true,
        ttlSeconds: null,
        podAlive: true,
      })
      assert.equal(linked.answer, 2)
      assert.match(linked.summary, /persistent/)
      assert.equal(linked.wouldPlaceOn, 0)

      // Still nothing counted by the explanations: one miss and one placement, from the real call.
      const counted = serviceOf(gw.metrics(), SVC)
      assert.deepEqual([counted.hits, counted.misses, counted.placements], [0, 1, { 0: 1 }])

      // A service without pods: no answer, said in words.
      const none = await gw.explainPlacement('', 'u', 'empty')
      assert.deepEqual([none.pods, none.wouldPlaceOn, none.answer], [[], null, null])
      assert.match(none.summary, /NO_AVAILABLE_POD/)

      // Bad input: typed errors, as a rejection.
      await rejectsWith(gw.explainPlacement('', '', SVC), 'INVALID_ARGUMENT')
      await rejectsWith(gw.explainPlacement('', 'a}b', SVC), 'INVALID_ARGUMENT')
      await rejectsWith(gw.explainPlacement('elsewhere', 'u', SVC), 'NAMESPACE_NOT_LOCAL')
      await rejectsWith(gw.explainPlacement('', 42, SVC), 'INVALID_ARGUMENT')
      await rejectsWith(gw.explainPlacement(), 'INVALID_ARGUMENT')
    })
  })
}

describe('metrics and config', () => {
  it('metrics defaults to true, reads back, and must be a boolean', () => {
    const store = sr.Store.memory()
    const info = { namespace: unique('mc'), serviceName: 'gateway', podIndex: 0 }
    assert.equal(sr.defaultBaseConfig().metrics, true)
    assert.equal(new sr.ClientDriver(store, info).config.metrics, true)
    assert.equal(new sr.ClientDriver(store, info, { metrics: false }).config.metrics, false)
    assert.equal(new sr.ServerDriver(store, info, { metrics: false }).config.metrics, false)
    throwsWith(() => new sr.ClientDriver(store, info, { metrics: 'no' }), 'INVALID_ARGUMENT')
  })

  it('a driver reports metrics before init() and after close()', async () => {
    const store = sr.Store.memory()
    const ns = unique('ml')
    const c = new sr.ClientDriver(store, { namespace: ns, serviceName: 'gateway', podIndex: 0 })
    const before = c.metrics()
    assert.deepEqual([before.services, before.errors, before.cacheEntries], [[], {}, 0])
    assert.equal(before.propagation.connected, false)
    assert.equal(typeof c.metricsText(), 'string')
    c.init()
    await rejectsWith(c.computeLinkedPod('', 'u', SVC), 'NO_AVAILABLE_POD')
    c.close()
    assert.deepEqual(c.metrics().errors, { NO_AVAILABLE_POD: 1 })
    assert.equal(c.metrics().propagation.connected, false)
    assert.match(c.metricsText(), /^stateful_route_errors_total\{kind="NO_AVAILABLE_POD"\} 1$/m)
  })
})

/** The variables serverInfoFromEnv reads. */
const ENV = ['POD_NAMESPACE', 'POD_NAME', 'HOSTNAME', 'STATEFUL_ROUTE_SERVICE']
const NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace'

/** Runs `fn` with exactly `vars` of ENV set (the others unset), then restores them. */
function withEnv(vars, fn) {
  const saved = Object.fromEntries(ENV.map((k) => [k, process.env[k]]))
  try {
    for (const k of ENV) delete process.env[k]
    Object.assign(process.env, vars)
    return fn()
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
}

describe('serverInfoFromEnv', () => {
  it('reads POD_NAMESPACE and POD_NAME, HOSTNAME as a fallback, STATEFUL_ROUTE_SERVICE and the argument', () => {
    const hostname = process.env.HOSTNAME
    withEnv({ POD_NAMESPACE: 'games', POD_NAME: 'room-12' }, () => {
      assert.deepEqual(sr.serverInfoFromEnv(), {
        namespace: 'games',
        serviceName: 'room',
        podIndex: 12,
      })
    })
    withEnv({ POD_NAMESPACE: 'prod', HOSTNAME: 'room-0' }, () => {
      assert.deepEqual(sr.serverInfoFromEnv('chat'), {
        namespace: 'prod',
        serviceName: 'chat',
        podIndex: 0,
      })
      assert.deepEqual(sr.serverInfoFromEnv(undefined), {
        namespace: 'prod',
        serviceName: 'room',
        podIndex: 0,
      })
      assert.deepEqual(sr.serverInfoFromEnv(null), {
        namespace: 'prod',
        serviceName: 'room',
        podIndex: 0,
      })
    })
    withEnv(
      {
        POD_NAMESPACE: 'a',
        POD_NAME: 'my-room-3',
        HOSTNAME: 'other-7',
        STATEFUL_ROUTE_SERVICE: 'lobby',
      },
      () => {
        assert.deepEqual(sr.serverInfoFromEnv(), {
          namespace: 'a',
          serviceName: 'lobby',
          podIndex: 3,
        })
        // The argument wins over the variable.
        assert.equal(sr.serverInfoFromEnv('chat').serviceName, 'chat')
      },
    )
    assert.equal(process.env.HOSTNAME, hostname, 'the environment is restored')
    // What it returns is a ServerInfo the drivers take.
    withEnv({ POD_NAMESPACE: 'games', POD_NAME: 'room-2' }, () => {
      const server = new sr.ServerDriver(sr.Store.memory(), sr.serverInfoFromEnv())
      assert.deepEqual(server.serverInfo, { namespace: 'games', serviceName: 'room', podIndex: 2 })
    })
  })

  it('throws INVALID_CONFIG naming the variable it could not use', () => {
    const cases = [
      [{ POD_NAMESPACE: 'a' }, /POD_NAME/],
      [{ POD_NAMESPACE: 'a', POD_NAME: 'room' }, /POD_NAME.*"room"/],
      [{ POD_NAMESPACE: 'a', HOSTNAME: 'room-x' }, /HOSTNAME.*"room-x"/],
      [{ POD_NAMESPACE: 'a', POD_NAME: 'room-007' }, /POD_NAME/],
      [{ POD_NAMESPACE: 'Bad_NS', POD_NAME: 'room-1' }, /POD_NAMESPACE/],
      [
        { POD_NAMESPACE: 'a', POD_NAME: 'room-1', STATEFUL_ROUTE_SERVICE: 'ro:om' },
        /STATEFUL_ROUTE_SERVICE/,
      ],
    ]
    for (const [vars, re] of cases) {
      withEnv(vars, () => {
        const e = throwsWith(() => sr.serverInfoFromEnv(), 'INVALID_CONFIG', re)
        assert.ok(e instanceof Error)
      })
    }
    // No POD_NAMESPACE: the service-account file, which only exists inside Kubernetes.
    withEnv({ POD_NAME: 'room-1' }, () => {
      if (fs.existsSync(NAMESPACE_FILE)) {
        const ns = fs.readFileSync(NAMESPACE_FILE, 'utf8').trim()
        assert.equal(sr.serverInfoFromEnv().namespace, ns)
      } else {
        throwsWith(() => sr.serverInfoFromEnv(), 'INVALID_CONFIG', /POD_NAMESPACE/)
      }
    })
    // A service that is not a string is a bad argument.
    withEnv({ POD_NAMESPACE: 'a', POD_NAME: 'room-1' }, () => {
      throwsWith(() => sr.serverInfoFromEnv(42), 'INVALID_ARGUMENT')
      throwsWith(() => sr.serverInfoFromEnv({}), 'INVALID_ARGUMENT')
    })
  })
})

/** The published routing state of `pod` of `service` in `ns`, read through `store`. */
async function published(store, ns, pod, service = SVC) {
  const state = (await store.podStates(ns, service)).find((p) => p.podIndex === pod)
  return state?.routingState
}

/** The listeners of each of `signals`, to compare before and after. */
const listenersOf = (signals) => signals.map((s) => process.listeners(s))

describe('stopOnSignal', () => {
  const open = []
  after(async () => {
    for (const s of open) await s.stop()
  })

  it('stops the pod on SIGTERM sent to this process: drained, SHUTDOWN published, listeners gone', async () => {
    const { store, prefix } = await h.STORES.find((k) => k.name === 'redis').make()
    const ns = unique('sig')
    const server = await startPod(store, ns, 0, 0, { ...CONFIG, drainSeconds: 0.2 })
    open.push(server)
    const signals = ['SIGTERM', 'SIGUSR2']
    const before = listenersOf(signals)
    const stop = sr.stopOnSignal(server, { signals })
    for (const [i, s] of signals.entries()) {
      assert.equal(process.listenerCount(s), before[i].length + 1, s)
    }
    let outcome
    stop.done.then(
      (v) => (outcome = { v }),
      (e) => (outcome = { e }),
    )
    const sent = Date.now()
    process.kill(process.pid, 'SIGTERM')
    // Polled: a signal listener does not keep the event loop alive.
    await until(() => outcome, 'stop() after SIGTERM')
    assert.deepEqual(outcome, { v: 'SIGTERM' })
    assert.ok(Date.now() - sent >= 190, `done after ${Date.now() - sent} ms: the 0.2 s drain`)
    assert.deepEqual(listenersOf(signals), before, 'no listener of the helper remains')
    // Read through another connection: the pod published SHUTDOWN before done resolved.
    const reader = await sr.Store.connect(REDIS_URL, { keyPrefix: prefix })
    assert.equal(await published(reader, ns, 0), sr.RoutingState.Shutdown)
    assert.equal(server.getRoutingState(), sr.RoutingState.Shutdown)
    const gw = new sr.ClientDriver(
      reader,
      { namespace: ns, serviceName: 'gateway', podIndex: 0 },
      CONFIG,
    )
    gw.init()
    assert.deepEqual(await gw.alivePods(SVC), [])
    gw.close()
    stop.cancel() // after the signal: nothing left to remove
    assert.deepEqual(listenersOf(signals), before)
  })

  it('cancel() removes the listeners and resolves done with null; the pod keeps running', async () => {
    const store = sr.Store.memory()
    const ns = unique('sigc')
    const server = await startPod(store, ns, 0, 0)
    open.push(server)
    const before = listenersOf(['SIGTERM', 'SIGINT'])
    const stop = sr.stopOnSignal(server, { signals: ['SIGINT', 'SIGTERM', 'SIGINT'] })
    assert.equal(process.listenerCount('SIGINT'), before[1].length + 1, 'one listener a signal')
    stop.cancel()
    stop.cancel()
    assert.equal(await stop.done, null)
    assert.deepEqual(listenersOf(['SIGTERM', 'SIGINT']), before)
    assert.equal(await published(store, ns, 0), sr.RoutingState.Ready)
  })

  it('bad arguments throw INVALID_ARGUMENT and install nothing', async () => {
    const server = new sr.ServerDriver(sr.Store.memory(), {
      namespace: 'a',
      serviceName: SVC,
      podIndex: 0,
    })
    const before = listenersOf(['SIGTERM'])
    for (const args of [
      [],
      [null],
      [{}],
      [server, null],
      [server, 'SIGTERM'],
      [server, { signals: 'SIGTERM' }],
      [server, { signals: [] }],
      [server, { signals: ['SIGTERM', 'SIGKILL'] }],
      [server, { signals: ['SIGSTOP'] }],
      [server, { signals: ['TERM'] }],
      [server, { signals: [15] }],
    ]) {
      throwsWith(() => sr.stopOnSignal(...args), 'INVALID_ARGUMENT', /stopOnSignal/)
    }
    assert.deepEqual(listenersOf(['SIGTERM']), before)
  })

  it('in a child process: SIGTERM stops the pod, then the process exits by itself', async () => {
    const { store, prefix } = await h.STORES.find((k) => k.name === 'redis').make()
    const ns = unique('sigp')
    // The app's own work (an HTTP server) is an interval here; it ends once the pod stopped,
    // and nothing of the package keeps the process alive.
    const script = `
      const sr = require(${JSON.stringify(require.resolve('stateful-route'))})
      ;(async () => {
        const store = await sr.Store.connect(${JSON.stringify(REDIS_URL)}, { keyPrefix: ${JSON.stringify(prefix)} })
        const info = { namespace: ${JSON.stringify(ns)}, serviceName: 'room', podIndex: 3 }
        const server = new sr.ServerDriver(store, info, { cpuFactor: 0, drainSeconds: 0.2 })
        await server.start()
        const work = setInterval(() => {}, 1000)
        const { done } = sr.stopOnSignal(server)
        console.log('ready')
        const signal = await done
        clearInterval(work)
        console.log('stopped on ' + signal + ', listeners ' + process.listenerCount('SIGTERM'))
      })().catch((e) => { console.error(e); process.exit(2) })
    `
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    const exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    )
    const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]()
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    try {
      assert.deepEqual(await lines.next(), { value: 'ready', done: false }, stderr)
      assert.equal(await published(store, ns, 3), sr.RoutingState.Ready)
      child.kill('SIGTERM')
      assert.deepEqual(
        await lines.next(),
        { value: 'stopped on SIGTERM, listeners 0', done: false },
        stderr,
      )
      assert.deepEqual(await exited, { code: 0, signal: null }, stderr)
    } finally {
      clearTimeout(timer)
    }
    assert.equal(await published(store, ns, 3), sr.RoutingState.Shutdown)
  })
})

describe('the ESM entry', () => {
  it('exports serverInfoFromEnv and stopOnSignal, the same functions as index.js', async () => {
    const esm = await import('stateful-route')
    assert.equal(esm.serverInfoFromEnv, sr.serverInfoFromEnv)
    assert.equal(esm.stopOnSignal, sr.stopOnSignal)
    assert.equal(esm.default, sr)
  })
})
