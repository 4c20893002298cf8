'use strict'
// Bad arguments: wrong types, undefined, huge strings, a uid with '}' … reject (or, for the
// synchronous methods, throw) an Error with code INVALID_ARGUMENT and a clear message, and
// nothing is written to the store.

const assert = require('node:assert/strict')
const { describe, it, after } = require('node:test')
const h = require('./helpers')
const { sr, unique, rejectsWith, throwsWith, startPods, newClient } = h

const SVC = 'room'
const HUGE = 'u'.repeat(1 << 20)

for (const kind of h.STORES) {
  describe(`bad arguments on the ${kind.name} store`, () => {
    const open = []
    after(async () => {
      for (const d of open) {
        if (d instanceof sr.ClientDriver) d.close()
        else await d.stop()
      }
    })

    it('reject with INVALID_ARGUMENT and write nothing', async () => {
      const { store, keys } = await kind.make()
      const ns = unique('ns')
      const pods = await startPods(store, ns, SVC, [0])
      const c = newClient(store, ns)
      open.push(...pods, c)
      const before = keys ? keys() : null

      const badCalls = {
        'uid with }': () => c.computeLinkedPod(ns, 'a}b', SVC),
        'uid with {': () => c.computeLinkedPod(ns, 'a{b', SVC),
        'empty uid': () => c.computeLinkedPod(ns, '', SVC),
        'uid with a control character': () => c.computeLinkedPod(ns, 'a\u0000b', SVC),
        'huge uid': () => c.computeLinkedPod(ns, HUGE, SVC),
        'huge service': () => c.computeLinkedPod(ns, 'u', HUGE),
        'huge namespace': () => c.computeLinkedPod(HUGE, 'u', SVC),
        'service with :': () => c.computeLinkedPod(ns, 'u', 'ro:om'),
        'undefined uid': () => c.computeLinkedPod(ns, undefined, SVC),
        'missing arguments': () => c.computeLinkedPod(),
        'number uid': () => c.computeLinkedPod(ns, 42, SVC),
        'object service': () => c.computeLinkedPod(ns, 'u', {}),
        'null namespace': () => c.computeLinkedPod(null, 'u', SVC),
        'uncached with }': () => c.computeLinkedPodUncached(ns, 'x}', SVC),
        'getLinkedPod undefined': () => c.getLinkedPod(ns, undefined, SVC),
        'setCache pod -1': () => c.setCache(ns, 'u', SVC, -1),
        'setCache pod 1.5': () => c.setCache(ns, 'u', SVC, 1.5),
        'setCache pod "1"': () => c.setCache(ns, 'u', SVC, '1'),
        'setLinkedPodIfAbsent ttl 0': () => c.setLinkedPodIfAbsent(ns, 'u', SVC, 0, 0),
        'setLinkedPodIfAbsent ttl NaN': () => c.setLinkedPodIfAbsent(ns, 'u', SVC, 0, NaN),
        'batch with a bad uid': () => c.batchGetLinkedPod(ns, ['ok', 'b}'], SVC),
        'batch not an array': () => c.batchGetLinkedPod(ns, 'ok', SVC),
        'batch of numbers': () => c.batchGetLinkedPod(ns, [1, 2], SVC),
        'isPodAlive pod 2^31': () => c.isPodAlive(SVC, 2 ** 31),
        'store setLink pod 2^31': () => store.setLink(ns, 'u', SVC, 2 ** 31, -1),
        'store setLink pod Infinity': () => store.setLink(ns, 'u', SVC, Infinity, -1),
        'store setLink ttl -2': () => store.setLink(ns, 'u', SVC, 0, -2),
        'store setLink uid undefined': () => store.setLink(ns, undefined, SVC, 0, -1),
        'store setLink huge uid': () => store.setLink(ns, HUGE, SVC, 0, -1),
        'store trySetLink uid }': () => store.trySetLink(ns, 'a}', SVC, 0, -1),
        'store removeLink delay "x"': () => store.removeLink(ns, 'u', SVC, 'x'),
        'store namespace empty': () => store.setLink('', 'u', SVC, 0, -1),
        'server setLinkedPod uid }': () => pods[0].setLinkedPod(ns, '}', SVC, 0),
        'server setLinkedPod pod undefined': () => pods[0].setLinkedPod(ns, 'u', SVC, undefined),
        'server setRoutingState bad word': () => pods[0].setRoutingState('ASLEEP'),
        'server setRoutingState number': () => pods[0].setRoutingState(3),
        'workload state with spaces': () => c.setWorkloadState(SVC, 'not ready'),
        'tag with }': () => c.setGlobalServiceNameTag('t}', SVC),
      }
      for (const [what, call] of Object.entries(badCalls)) {
        let p
        assert.doesNotThrow(() => {
          p = call()
        }, `${what}: a Promise-returning method must reject, not throw`)
        const e = await rejectsWith(p, 'INVALID_ARGUMENT').catch((err) => {
          throw new Error(`${what}: ${err.message}`)
        })
        assert.ok(e.message.length < 2000, `${what}: message of ${e.message.length} chars`)
      }

      // Synchronous methods throw the same errors.
      throwsWith(() => c.computeCached(ns, 'a}b', SVC), 'INVALID_ARGUMENT', /uid/)
      throwsWith(() => c.computeCached(ns, undefined, SVC), 'INVALID_ARGUMENT', /computeCached/)
      throwsWith(() => c.getLinkedInCache(ns, HUGE, SVC), 'INVALID_ARGUMENT')
      throwsWith(() => c.cacheExpired(1, 2, 3), 'INVALID_ARGUMENT')
      throwsWith(() => pods[0].setLoadState(-1), 'INVALID_ARGUMENT', /load/)
      throwsWith(() => pods[0].setLoadState('7'), 'INVALID_ARGUMENT')
      throwsWith(() => new sr.ClientDriver(store), 'INVALID_ARGUMENT', /ClientDriver/)
      throwsWith(
        () => new sr.ClientDriver({}, { namespace: ns, serviceName: SVC, podIndex: 0 }),
        'INVALID_ARGUMENT',
      )
      throwsWith(
        () => new sr.ServerDriver(store, { namespace: ns, serviceName: SVC }),
        'INVALID_ARGUMENT',
      )
      throwsWith(
        () => new sr.ServerDriver(store, { namespace: ns, serviceName: 'a}', podIndex: 0 }),
        'INVALID_ARGUMENT',
      )
      throwsWith(() => sr.Store.memory(5), 'INVALID_ARGUMENT')
      throwsWith(() => sr.setLogger(() => {}, 'loud'), 'INVALID_ARGUMENT', /level/)
      throwsWith(() => sr.setLogger(5), 'INVALID_ARGUMENT')
      await rejectsWith(sr.Store.connect(undefined), 'INVALID_ARGUMENT')
      await rejectsWith(sr.Store.connect(h.REDIS_URL, 5), 'INVALID_ARGUMENT')

      // Nothing was written.
      if (keys) assert.deepEqual(keys(), before)
      assert.equal(await store.getLink(ns, 'u', SVC), null)
      assert.equal(await store.getLink(ns, 'a', SVC), null)
      assert.deepEqual(await store.getLinkServices(ns, 'u'), {})
      assert.equal(c.getLinkedInCache(ns, 'u', SVC), null)
      assert.equal(await c.getWorkloadState(SVC), 'READY')
      assert.equal(await c.getServiceNameByTag('t'), null)
      assert.equal(pods[0].getRoutingState(), 'READY')
      assert.equal(pods[0].getLoadState(), 0)
      // And the driver still works.
      assert.equal(await c.computeLinkedPod(ns, 'u', SVC), 0)
    })
  })
}
