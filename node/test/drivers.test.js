'use strict'
// Driver behaviour through the Node API on both stores: placement and stickiness, pod 0,
// concurrent computes of one new user, draining and shutdown, the routing-state callback,
// and every error code that SPEC assigns to a driver call.

const assert = require('node:assert/strict')
const { describe, it, after } = require('node:test')
const h = require('./helpers')
const { sr, FAST, unique, until, rejectsWith, throwsWith, startPods, newClient } = h

const SVC = 'room'

for (const kind of h.STORES) {
  describe(`drivers on the ${kind.name} store`, () => {
    const open = []
    const track = (...drivers) => (open.push(...drivers), drivers)
    after(async () => {
      for (const d of open) {
        if (d instanceof sr.ClientDriver) d.close()
        else await d.stop()
      }
    })

    it('places a new user, keeps the link sticky and caches it (pod 0 is a pod)', async () => {
      const { store } = await kind.make()
      const ns = unique('ns')
      track(...(await startPods(store, ns, SVC, [0])))
      const [c] = track(newClient(store, ns))
      assert.equal(await c.computeLinkedPod(ns, 'u1', SVC), 0)
      assert.equal(await c.computeLinkedPod('', 'u1', SVC), 0)
      assert.equal(c.computeCached(ns, 'u1', SVC), 0)
      assert.equal(c.getLinkedInCache(ns, 'u1', SVC), 0)
      const link = await store.getLink(ns, 'u1', SVC)
      assert.deepEqual(
        { pod: link.podIndex, persistent: link.persistent },
        { pod: 0, persistent: false },
      )
      assert.ok(link.ttlSeconds > 290 && link.ttlSeconds <= 300, `${link.ttlSeconds}`)
      // Another gateway sees the same pod.
      const [other] = track(newClient(store, ns))
      assert.equal(other.computeCached(ns, 'u1', SVC), null)
      assert.equal(await other.computeLinkedPod(ns, 'u1', SVC), 0)
      // Cache operations.
      assert.equal(c.cacheExpired(ns, 'u1', SVC), 0)
      assert.equal(c.getLinkedInCache(ns, 'u1', SVC), null)
      assert.equal(await c.getLinkedPod(ns, 'u1', SVC), 0)
      assert.equal(await c.getLinkedPodNotCache(ns, 'nobody', SVC), null)
      assert.equal(await c.getLinkedPodInCacheOrIfPersist(ns, 'nobody', SVC), null)
      await c.setCache(ns, 'u9', SVC, 0)
      assert.equal(c.getLinkedInCache(ns, 'u9', SVC), 0)
      // Cached: u1 (getLinkedPod after cacheExpired) and u9 (setCache); 'nobody' was never found.
      assert.equal(c.getLinkedInCache(ns, 'u1', SVC), 0)
      assert.equal(c.cacheLen(), 2)
    })

    it('spreads new users over the routable pods and reads pod states', async () => {
      const { store } = await kind.make()
      const ns = unique('ns')
      const pods = track(...(await startPods(store, ns, SVC, [0, 1, 2])))
      const c = track(newClient(store, ns))[0]
      assert.deepEqual(await c.alivePods(SVC), [0, 1, 2])
      assert.deepEqual(await c.routablePods(SVC), [0, 1, 2])
      assert.equal(await c.isPodAlive(SVC, 1), true)
      assert.equal(await c.isPodRoutable(SVC, 7), false)
      assert.ok([0, 1, 2].includes(await c.bestPod(SVC)))
      const states = await c.podStates(SVC)
      assert.deepEqual(
        states.map((s) => [s.podIndex, s.routingState]),
        [
          [0, sr.RoutingState.Ready],
          [1, 'READY'],
          [2, 'READY'],
        ],
      )
      assert.ok(states.every((s) => s.updateMs > 1.6e12 && s.load === 0))
      const seen = new Set()
      for (let i = 0; i < 60; i++) seen.add(await c.computeLinkedPod(ns, `s${i}`, SVC))
      assert.deepEqual([...seen].sort(), [0, 1, 2])
      assert.equal(pods[0].getRoutingState(), 'READY')
    })

    it('concurrent computes of one new user (Promise.all) agree on one pod', async () => {
      const { store, keys } = await kind.make()
      const ns = unique('ns')
      track(...(await startPods(store, ns, SVC, [0, 1, 2, 3], { ...FAST, placement: 'random' })))
      const gateways = track(
        ...[0, 1, 2, 3].map(() => newClient(store, ns, { ...FAST, placement: 'random' })),
      )
      for (let round = 0; round < 5; round++) {
        const uid = `hot-${round}`
        const got = await Promise.all(
          Array.from({ length: 64 }, (_, t) =>
            gateways[t % gateways.length].computeLinkedPod(ns, uid, SVC),
          ),
        )
        assert.ok(
          got.every((p) => p === got[0]),
          `round ${round}: ${got}`,
        )
        assert.equal((await store.getLink(ns, uid, SVC)).podIndex, got[0])
      }
      if (keys) assert.equal(keys().filter((k) => k.includes(':lk:')).length, 5)
    })

    it('draining keeps linked users, sends new users elsewhere, and the callback sees it', async () => {
      const { store } = await kind.make()
      const ns = unique('ns')
      const [p0, p1] = track(...(await startPods(store, ns, SVC, [0, 1])))
      const c = track(newClient(store, ns))[0]
      const changes = []
      const id = c.onRoutingStateChanged((ch) => changes.push(ch))
      assert.equal(typeof id, 'number')
      // Link a user to each pod.
      assert.equal(await c.setLinkedPodIfAbsent(ns, 'on0', SVC, 0, 60).then((l) => l.podIndex), 0)
      assert.equal(await c.setLinkedPodIfAbsent(ns, 'on1', SVC, 1, 60).then((l) => l.podIndex), 1)
      await p1.setRoutingState(sr.RoutingState.DenyNewCall)
      assert.equal(p1.getRoutingState(), 'DENY_NEW_CALL')
      await until(async () => {
        await c.refreshService(SVC)
        return (await c.routablePods(SVC)).join() === '0'
      }, 'pod 1 draining in the snapshot')
      await until(
        () => changes.find((ch) => ch.podIndex === 1 && ch.new === 'DENY_NEW_CALL'),
        'the routing-state callback for pod 1',
      )
      const ch = changes.find((x) => x.podIndex === 1)
      assert.deepEqual(ch, { service: SVC, podIndex: 1, old: 'READY', new: 'DENY_NEW_CALL' })
      assert.equal(await c.computeLinkedPod(ns, 'on1', SVC), 1, 'a draining pod keeps its users')
      for (let i = 0; i < 20; i++) assert.equal(await c.computeLinkedPod(ns, `new${i}`, SVC), 0)

      // Shutdown of pod 0: DENY_NEW_CALL then SHUTDOWN; no pod takes new users now.
      await p0.stop()
      await p0.stop() // idempotent
      assert.equal(p0.getRoutingState(), 'SHUTDOWN')
      await until(async () => {
        await c.refreshService(SVC)
        return (await c.alivePods(SVC)).join() === '1'
      }, 'pod 0 gone from the snapshot')
      await until(() => changes.find((x) => x.podIndex === 0 && x.new === null), 'pod 0 not alive')
      await rejectsWith(c.computeLinkedPod(ns, 'late', SVC), 'NO_AVAILABLE_POD', /room/)
      await rejectsWith(c.bestPod(SVC), 'NO_AVAILABLE_POD')
      assert.equal(await c.computeLinkedPod(ns, 'on1', SVC), 1, 'still served by the draining pod')
      // A temporary link to the stopped pod moves once a pod is routable again.
      assert.ok(c.removeRoutingStateListener(id))
      assert.ok(!c.removeRoutingStateListener(id))
      await p1.setRoutingState(sr.RoutingState.Ready)
      await until(async () => {
        await c.refreshService(SVC)
        return (await c.routablePods(SVC)).join() === '1'
      }, 'pod 1 ready again')
      assert.equal(await c.computeLinkedPod(ns, 'on0', SVC), 1)
      // Pod 0 kept the workload state; after its stop it is SHUTDOWN.
      assert.equal(await c.getWorkloadState(SVC), 'SHUTDOWN')
      assert.equal(await c.isWorkloadReady(SVC), false)
    })

    it('server link operations, workload states and tags', async () => {
      const { store } = await kind.make()
      const ns = unique('ns')
      const [p2] = track(...(await startPods(store, ns, SVC, [2])))
      assert.equal(await p2.setLinkedPod(ns, 'owner', SVC, 2), null)
      assert.deepEqual(await p2.trySetLinkedPod(ns, 'owner', SVC, 3), {
        accepted: false,
        owner: 2,
        previous: 2,
      })
      const c = track(newClient(store, ns))[0]
      assert.deepEqual(await c.getLinkService(ns, 'owner'), { room: 2 })
      assert.equal(await c.getLinkedPodInCacheOrIfPersist(ns, 'owner', SVC), 2)
      assert.deepEqual(await c.batchGetLinkedPod(ns, ['x', 'owner'], SVC), { 2: ['owner'] })
      assert.equal(await p2.removeLinkedPodWithId(ns, 'owner', SVC, 5, 0), false)
      assert.equal(await p2.removeLinkedPodWithId(ns, 'owner', SVC, 2, 0), true)
      assert.equal(await p2.setLinkedPod(ns, 'owner', SVC, 2), null)
      assert.equal(await p2.removeLinkedPod(ns, 'owner', SVC, 0), true)
      assert.equal(await store.getLink(ns, 'owner', SVC), null)
      p2.setLoadState(150)
      assert.equal(p2.getLoadState(), 150)
      assert.equal(p2.weightedLoad(), 150)
      await c.setWorkloadState('chat', 'READY')
      assert.deepEqual(await c.batchGetWorkloadState(['chat', 'nothing']), ['READY', null])
      assert.equal(await c.isWorkloadReady('chat'), true)
      await c.setGlobalServiceNameTag('main', SVC)
      assert.equal(await c.getServiceNameByTag('main'), SVC)
      assert.equal(await c.getServiceNameByTag('other'), null)
      assert.equal(await store.getTag(ns, 'main'), SVC)
      assert.deepEqual(p2.serverInfo, { namespace: ns, serviceName: SVC, podIndex: 2 })
      assert.equal(c.config.serviceStateUpdatePeriodSeconds, 0.2)
      assert.equal(c.config.placement, 'p2c')
      assert.equal(
        new sr.ClientDriver(store, { namespace: ns, serviceName: 's', podIndex: 0 }).config
          .cacheCapacity,
        100000,
      )
    })

    it('weights, per-service placement policies and the new config fields', async () => {
      const { store } = await kind.make()
      const ns = unique('ns')
      const [p0, p1] = track(...(await startPods(store, ns, SVC, [0, 1])))
      assert.equal(p0.getWeight(), 100)
      await p1.setWeight(0) // never chosen by weight
      assert.equal(p1.getWeight(), 0)
      assert.equal(p0.tryWeightedLoad(), 0)
      const c = track(newClient(store, ns))[0]
      c.setServicePlacement(SVC, 'weighted')
      await until(async () => {
        await c.refreshService(SVC)
        return (await c.podStates(SVC)).find((s) => s.podIndex === 1)?.weight === 0
      }, 'weight 0 in the snapshot')
      for (let i = 0; i < 30; i++) assert.equal(await c.computeLinkedPod(ns, `w${i}`, SVC), 0)
      // Another gateway with rendezvous placement (pod 1 has weight 0 but is routable).
      const [r] = track(newClient(store, ns, { ...FAST, placement: 'rendezvous' }))
      assert.equal(r.config.placement, 'rendezvous')
      assert.ok([0, 1].includes(await r.computeLinkedPod(ns, 'rv', SVC)))
      throwsWith(() => c.setServicePlacement(SVC, 'nearest'), 'INVALID_CONFIG', /placement/)
      assert.equal(c.config.serveStaleSeconds, 60)
      const cfg = new sr.ClientDriver(
        store,
        { namespace: ns, serviceName: 'g', podIndex: 0 },
        { serveStaleSeconds: 5 },
      )
      assert.equal(cfg.config.serveStaleSeconds, 5)
      // Slow start: one period by default (read back as the window in force), 0 turns it off.
      assert.equal(c.config.slowStartSeconds, FAST.serviceStateUpdatePeriodSeconds)
      const info = { namespace: ns, serviceName: 'g', podIndex: 0 }
      assert.equal(
        new sr.ClientDriver(store, info, { slowStartSeconds: 2.5 }).config.slowStartSeconds,
        2.5,
      )
      assert.equal(
        new sr.ServerDriver(store, info, { slowStartSeconds: 0 }).config.slowStartSeconds,
        0,
      )
      for (const v of [-1, 86_400.5, NaN, Infinity]) {
        throwsWith(
          () => new sr.ClientDriver(store, info, { slowStartSeconds: v }),
          'INVALID_CONFIG',
          /slow_start_seconds/,
        )
      }
      await store.publishPodState(ns, 'other', 3, 10, sr.RoutingState.Ready, 7)
      assert.deepEqual(
        (await store.podStates(ns, 'other')).map((s) => [
          s.podIndex,
          s.load,
          s.weight,
          s.routingState,
        ]),
        [[3, 10, 7, 'READY']],
      )
    })

    for (const [slowStart, min, max] of [
      [0, 15, 45],
      [86_400, 0, 3],
    ]) {
      it(`slowStartSeconds ${slowStart} reaches placement: a pod that just turned routable takes ${min}..${max} of 60 new users`, async () => {
        // The gateway reads the service with pod 0 only, then sees pod 1 turn routable: with
        // slow start off pod 1 takes about half at once; ramping over a day, (almost) none in
        // the first seconds (each placement includes it with probability elapsed / 86 400).
        const { store } = await kind.make()
        const ns = unique('ns')
        const quiet = { serviceStateUpdatePeriodSeconds: 30, cpuFactor: 0 }
        track(...(await startPods(store, ns, SVC, [0], quiet)))
        const [c] = track(newClient(store, ns, { ...quiet, slowStartSeconds: slowStart }))
        assert.deepEqual(await c.routablePods(SVC), [0], 'the first read: pod 0 only')
        track(...(await startPods(store, ns, SVC, [1], quiet)))
        await c.refreshService(SVC)
        assert.deepEqual(await c.routablePods(SVC), [0, 1])
        const placed = [0, 0]
        for (let i = 0; i < 60; i++) placed[await c.computeLinkedPod(ns, `ss${i}`, SVC)]++
        assert.ok(placed[1] >= min && placed[1] <= max, `${placed}`)
      })
    }

    it('error codes: POD_UNAVAILABLE, NAMESPACE_NOT_LOCAL, CLOSED, INVALID_CONFIG, INVALID_ARGUMENT', async () => {
      const { store } = await kind.make()
      const ns = unique('ns')
      const [p0] = track(...(await startPods(store, ns, SVC, [0])))
      const c = track(newClient(store, ns))[0]
      // A persistent link to a pod that is not alive: the user's state lives there.
      await store.setLink(ns, 'stuck', SVC, 5, -1)
      const e = await rejectsWith(c.computeLinkedPod(ns, 'stuck', SVC), 'POD_UNAVAILABLE', /5/)
      assert.equal(e.podIndex, 5)
      // A temporary link to a dead pod is simply replaced.
      await store.setLink(ns, 'moved', SVC, 5, 60)
      assert.equal(await c.computeLinkedPod(ns, 'moved', SVC), 0)

      await rejectsWith(
        c.computeLinkedPod('elsewhere', 'u', SVC),
        'NAMESPACE_NOT_LOCAL',
        /elsewhere/,
      )
      await rejectsWith(p0.setLinkedPod('elsewhere', 'u', SVC, 0), 'NAMESPACE_NOT_LOCAL')
      throwsWith(() => c.computeCached('elsewhere', 'u', SVC), 'NAMESPACE_NOT_LOCAL')

      const fresh = new sr.ClientDriver(
        store,
        { namespace: ns, serviceName: 'g', podIndex: 0 },
        FAST,
      )
      await rejectsWith(fresh.computeLinkedPod(ns, 'u', SVC), 'CLOSED', /init/)
      fresh.init()
      fresh.close()
      fresh.close()
      await rejectsWith(fresh.computeLinkedPod(ns, 'u', SVC), 'CLOSED')
      throwsWith(() => fresh.init(), 'CLOSED')

      const server = new sr.ServerDriver(
        store,
        { namespace: ns, serviceName: 'x', podIndex: 3 },
        FAST,
      )
      await server.start()
      await rejectsWith(server.start(), 'INVALID_ARGUMENT', /already started/)
      await server.stop()
      await rejectsWith(server.start(), 'CLOSED')
      await rejectsWith(server.setRoutingState('READY'), 'CLOSED')
      throwsWith(() => server.setLoadState(1), 'CLOSED')
      await rejectsWith(server.setLinkedPod(ns, 'u', 'x', 3), 'CLOSED')

      const info = { namespace: ns, serviceName: SVC, podIndex: 0 }
      throwsWith(
        () => new sr.ClientDriver(store, info, { cpuFactor: 2 }),
        'INVALID_CONFIG',
        /cpu_factor/,
      )
      throwsWith(
        () =>
          new sr.ServerDriver(store, info, {
            tempLinkInfoCacheTimeSeconds: 10,
            userLinkInfoCacheTimeSeconds: 20,
          }),
        'INVALID_CONFIG',
      )
      throwsWith(
        () => new sr.ServerDriver(store, info, { serviceStateUpdatePeriodSeconds: 0 }),
        'INVALID_CONFIG',
      )
      throwsWith(
        () => new sr.ClientDriver(store, info, { placement: 'nearest' }),
        'INVALID_CONFIG',
        /placement/,
      )
      throwsWith(
        () => new sr.ClientDriver(store, info, { loadRange: -1 }),
        'INVALID_CONFIG',
        /load_range/,
      )
      throwsWith(() => sr.Store.memory({ keyPrefix: 'a:b' }), 'INVALID_CONFIG', /key_prefix/)
      throwsWith(
        () => new sr.ServerDriver(store, { ...info, podIndex: -1 }),
        'INVALID_ARGUMENT',
        /pod/,
      )
      throwsWith(
        () => new sr.ServerDriver(store, { ...info, namespace: '' }),
        'INVALID_ARGUMENT',
        /namespace/,
      )
      await rejectsWith(p0.setRoutingState('SLEEPING'), 'INVALID_ARGUMENT')
    })
  })
}

describe('store errors', () => {
  it('STORE_UNAVAILABLE when Redis cannot be reached', async () => {
    const net = require('node:net')
    const srv = net.createServer()
    await new Promise((r) => srv.listen(0, '127.0.0.1', r))
    const { port } = srv.address()
    await new Promise((r) => srv.close(r)) // nothing listens there now
    await rejectsWith(
      sr.Store.connect(`redis://127.0.0.1:${port}`, { connectTimeout: 2 }),
      'STORE_UNAVAILABLE',
    )
    await rejectsWith(sr.Store.connect('not a url'), 'INVALID_ARGUMENT', /url/)
    const opts = { connectTimeout: 1 }
    await rejectsWith(
      sr.Store.connectCluster([`redis://127.0.0.1:${port}`], opts),
      'STORE_UNAVAILABLE',
    )
    const sentinel = sr.Store.connectSentinel([`redis://127.0.0.1:${port}`], 'mymaster', opts)
    await rejectsWith(sentinel, 'STORE_UNAVAILABLE')
  })

  it('TIMEOUT when Redis does not answer in time', async () => {
    const net = require('node:net')
    const sockets = []
    const srv = net.createServer((s) => sockets.push(s)) // accepts, never answers
    await new Promise((r) => srv.listen(0, '127.0.0.1', r))
    try {
      const url = `redis://127.0.0.1:${srv.address().port}`
      await rejectsWith(
        sr.Store.connect(url, { connectTimeout: 0.3, commandTimeout: 0.3 }),
        'TIMEOUT',
      )
    } finally {
      sockets.forEach((s) => s.destroy())
      await new Promise((r) => srv.close(r))
    }
  })

  it('STORE_ERROR when Redis holds data it should not', async () => {
    const prefix = unique('ne')
    const store = await sr.Store.connect(h.REDIS_URL, { keyPrefix: prefix })
    h.redisCli('HSET', `${prefix}:{ns:lk:u1}room`, 'f', 'v') // a hash where a link string belongs
    await rejectsWith(store.getLink('ns', 'u1', 'room'), 'STORE_ERROR')
    h.redisCli('DEL', `${prefix}:{ns:lk:u1}room`)
  })

  it('every error code of the core is a code of the package', () => {
    assert.deepEqual(sr.errorCodes(), [
      'INVALID_ARGUMENT',
      'INVALID_CONFIG',
      'NAMESPACE_NOT_LOCAL',
      'NO_AVAILABLE_POD',
      'POD_UNAVAILABLE',
      'STORE_UNAVAILABLE',
      'STORE_ERROR',
      'TIMEOUT',
      'CLOSED',
      'INTERNAL',
    ])
  })
})
