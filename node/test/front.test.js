'use strict'
// The front cache of `ClientDriver#computeLinkedPod` (README "Front caches"): a repeated hit is
// answered in JS, and every change that can make it wrong reaches it as fast as it reaches the
// core's cache (a move or a removal elsewhere, a local write, a pod's stop, `close()`); every
// hit it answers is counted in the metrics. Each test first shows that the front cache holds
// the answer, so the check after the change is not a core hit in disguise.

const assert = require('node:assert/strict')
const { after, describe, it } = require('node:test')
const h = require('./helpers')
const { sr, unique, until, startPods, newClient } = h

const SVC = 'room'

/** The driver's front cache (a symbol-keyed own property, made on the first call). */
function frontOf(driver) {
  const [sym] = Object.getOwnPropertySymbols(driver)
  assert.ok(sym, 'the driver has a front cache')
  return driver[sym]
}

/** Places `uid`, then asks until the front cache answers it; returns the pod. */
async function fronted(gw, uid) {
  const pod = await gw.computeLinkedPod('', uid, SVC)
  assert.equal(await gw.computeLinkedPod('', uid, SVC), pod) // the core's hit fills the front
  const s = frontOf(gw).services.get(SVC)
  assert.equal(s.links.get(uid).pod, pod, 'the front cache holds the answer')
  const hits = s.hits
  assert.equal(await gw.computeLinkedPod('', uid, SVC), pod)
  assert.equal(s.hits, hits + 1, 'the front cache answered')
  return pod
}

for (const kind of h.STORES) {
  describe(`the front cache on the ${kind.name} store`, () => {
    const open = []
    const track = (...drivers) => (open.push(...drivers), drivers)
    after(async () => {
      for (const d of open) {
        if (d instanceof sr.ClientDriver) d.close()
        else await d.stop().catch(() => {})
      }
    })

    async function setup(n = 2, config) {
      const made = await kind.make()
      const ns = unique('front')
      const pods = track(...(await startPods(made.store, ns, SVC, [...Array(n).keys()])))
      const [gw] = track(newClient(made.store, ns, config))
      return { ns, pods, gw }
    }

    it('follows a move and a removal made elsewhere', async () => {
      const { pods, gw } = await setup()
      const pod = await fronted(gw, 'u1')
      const to = 1 - pod
      await pods[0].setLinkedPod('', 'u1', SVC, to)
      await until(async () => (await gw.computeLinkedPod('', 'u1', SVC)) === to, 'the move', 1000)
      assert.equal(await fronted(gw, 'u1'), to)
      const f = frontOf(gw)
      const e = f.services.get(SVC).links.get('u1')
      await pods[0].removeLinkedPod('', 'u1', SVC, 0)
      await until(() => f.epochs[e.stripe] !== e.epoch, 'the removal moves the epoch', 1000)
    })

    it('follows local writes, a pod stop and close()', async () => {
      const { pods, gw } = await setup()
      const pod = await fronted(gw, 'u1')
      await gw.setCache('', 'u1', SVC, 1 - pod)
      assert.equal(await gw.computeLinkedPod('', 'u1', SVC), 1 - pod)
      const serving = await fronted(gw, 'u2')
      await pods[serving].stop()
      await gw.refreshService(SVC)
      assert.equal(await gw.computeLinkedPod('', 'u2', SVC), 1 - serving)
      await fronted(gw, 'u3')
      gw.close()
      await h.rejectsWith(gw.computeLinkedPod('', 'u3', SVC), 'CLOSED')
    })

    it('counts every front hit once and still rejects bad input', async () => {
      const { gw } = await setup(1)
      await fronted(gw, 'u1') // a placement, a core hit, a front hit
      for (let i = 0; i < 97; i++) await gw.computeLinkedPod('', 'u1', SVC)
      assert.equal(gw.metrics().services.find((s) => s.service === SVC).hits, 99)
      await gw.computeLinkedPod('', 'u1', SVC)
      const line = `stateful_route_computes_total{service="${SVC}",result="hit"} 100`
      assert.ok(gw.metricsText().split('\n').includes(line))
      for (const bad of [
        [null, 'u1', SVC],
        ['', 1, SVC],
        ['', 'u1', {}],
      ]) {
        await h.rejectsWith(gw.computeLinkedPod(...bad), 'INVALID_ARGUMENT')
      }
      await h.rejectsWith(gw.computeLinkedPod('elsewhere', 'u1', SVC), 'NAMESPACE_NOT_LOCAL')
      await h.rejectsWith(
        sr.ClientDriver.prototype.computeLinkedPod.call({}, '', 'u1', SVC),
        'INVALID_ARGUMENT',
      )
    })

    it('answers a frozen driver without a front cache', async () => {
      const { gw } = await setup(1)
      Object.freeze(gw)
      const pod = await gw.computeLinkedPod('', 'u1', SVC)
      for (let i = 0; i < 3; i++) assert.equal(await gw.computeLinkedPod('', 'u1', SVC), pod)
      assert.equal(Object.getOwnPropertySymbols(gw).length, 0)
      assert.equal(gw.metrics().services.find((s) => s.service === SVC).hits, 3)
    })

    it('is bounded by the cache capacity', async () => {
      const { gw, ns } = await setup(1, { ...h.FAST, cacheCapacity: 8 })
      for (let i = 0; i < 40; i++) {
        await gw.computeLinkedPod('', `u${i}`, SVC)
        await gw.computeLinkedPod('', `u${i}`, SVC)
        const held = [...frontOf(gw).services.values()].reduce((n, s) => n + s.links.size, 0)
        assert.ok(held <= 8, `${held} entries`)
      }
      const made = await kind.make()
      track(...(await startPods(made.store, ns, SVC, [0])))
      const [off] = track(newClient(made.store, ns, { ...h.FAST, cacheCapacity: 0 }))
      await off.computeLinkedPod('', 'u1', SVC)
      await off.computeLinkedPod('', 'u1', SVC)
      assert.equal(frontOf(off).services.size, 0, 'no cache, no front cache')
    })
  })
}
