'use strict'
// Change propagation (README "Propagation"): a link change or a routing-state change made by
// any writer reaches every gateway sharing the store within 1 s, with the default config (a
// 240 s cache and a 30 s refresh, so neither the TTL rule nor the periodic refresh can explain
// it); `onLinkChanged` listeners see the change on the JS thread; `propagation: false` turns
// it off. On Redis each gateway and the pods use their own Store (their own connections and
// subscriber); the memory store is one object, shared.

const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const { after, describe, it } = require('node:test')
const h = require('./helpers')
const { sr, REDIS_URL, unique, until, startPods } = h

const PKG = require.resolve('stateful-route')
const SVC = 'room'
/** Every gateway follows a change within this (ms) of the writing call's reply. */
const BOUND = 1000
/** Pods with the default 30 s period (no CPU sampling, so loads stay 0). */
const POD_CONFIG = { cpuFactor: 0 }

/** Another handle on the store `made` of `kind`: a new connection with the same key prefix on
 * Redis, the same object in memory (a memory store is not shared between objects). */
async function sameStore(kind, made, config = {}) {
  if (kind.name === 'memory') return made.store
  return sr.Store.connect(REDIS_URL, { keyPrefix: made.prefix, ...config })
}

/** A gateway with the default config (240 s cache, 30 s refresh). */
function gateway(store, ns) {
  const c = new sr.ClientDriver(store, { namespace: ns, serviceName: 'gateway', podIndex: 0 })
  c.init()
  return c
}

/** Runs `node args…`; resolves with { code, signal, stdout, stderr } once it exits, fails (and
 * kills it) if it is still running after `ms` (as lifecycle.test.js). */
function runNode(args, ms) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: __dirname,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`node ${args.join(' ')} did not exit within ${ms} ms\n${stdout}\n${stderr}`))
    }, ms)
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

// Run as `node --expose-gc -e LINK_LISTENER_EXIT <memory|redis>` (argv[1] under -e): a client
// with link listeners (one that throws) that saw a change, one listener removed and collected,
// then close() and stop(): the script must exit by itself.
const LINK_LISTENER_EXIT = `
const sr = require(${JSON.stringify(PKG)})
async function main(kind) {
  const store = kind === 'redis'
    ? await sr.Store.connect(process.env.STATEFUL_ROUTE_TEST_REDIS, { keyPrefix: 'lexit' + process.pid })
    : sr.Store.memory()
  const info = { namespace: 'lexit', serviceName: 'room', podIndex: 0 }
  const server = new sr.ServerDriver(store, info, { serviceStateUpdatePeriodSeconds: 0.2, cpuFactor: 0 })
  await server.start()
  const client = new sr.ClientDriver(store, info)
  client.init()
  // Removal releases the JS function: it is collected although the driver lives on.
  let released = false
  const registry = new FinalizationRegistry(() => (released = true))
  ;(() => {
    const f = () => console.log('removed listener called')
    registry.register(f, 'f')
    if (!client.removeLinkListener(client.onLinkChanged(f))) throw new Error('not removed')
  })()
  const warned = new Promise((resolve) => process.once('warning', resolve))
  client.onLinkChanged(() => { throw new Error('listener bug') })
  const seen = new Promise((resolve) => client.onLinkChanged(resolve))
  await client.computeLinkedPod('lexit', 'user123', 'room')
  await server.removeLinkedPod('lexit', 'user123', 'room', 0)
  // The listeners do not keep the event loop alive: a timer holds it open while waiting.
  const hold = setInterval(() => {}, 1000)
  const [change, warning] = await Promise.all([seen, warned])
  const deadline = Date.now() + 10000
  while (!released) {
    if (Date.now() > deadline) throw new Error('the removed listener was not released')
    global.gc()
    await new Promise((r) => setTimeout(r, 5))
  }
  clearInterval(hold)
  await server.stop()
  client.close()
  console.log(JSON.stringify(change))
  console.log(warning.name + ': ' + warning.message)
}
main(process.argv[1]).catch((e) => { console.error(e); process.exit(1) })
`

for (const kind of h.STORES) {
  describe(`propagation on the ${kind.name} store`, () => {
    const open = []
    const track = (...drivers) => (open.push(...drivers), drivers)
    after(async () => {
      for (const d of open) {
        if (d instanceof sr.ClientDriver) d.close()
        else await d.stop()
      }
    })

    /** Pods 0 and 1 on their own store, and gateways A and B on one store each. */
    async function setup(stem) {
      const made = await kind.make()
      const ns = unique(stem)
      const pods = track(
        ...(await startPods(await sameStore(kind, made), ns, SVC, [0, 1], POD_CONFIG)),
      )
      const [a] = track(gateway(made.store, ns))
      const [b] = track(gateway(await sameStore(kind, made), ns))
      return { made, ns, pods, a, b }
    }

    it('a persistent move by a pod reaches every gateway within 1 s; their listeners see it', async () => {
      const { ns, pods, a, b } = await setup('pm')
      const seenA = []
      const seenB = []
      a.onLinkChanged((ch) => seenA.push(ch))
      b.onLinkChanged((ch) => seenB.push(ch))
      const u = 'mover'
      const p = await a.computeLinkedPod(ns, u, SVC)
      assert.equal(await b.computeLinkedPod(ns, u, SVC), p)
      assert.equal(b.getLinkedInCache(ns, u, SVC), p, 'B caches the old answer')
      const other = 1 - p
      assert.equal(await pods[other].setLinkedPod(ns, u, SVC, other), p)
      await until(
        async () =>
          (await a.computeLinkedPod(ns, u, SVC)) === other &&
          (await b.computeLinkedPod(ns, u, SVC)) === other,
        `both gateways answering pod ${other}`,
        BOUND,
      )
      const change = { namespace: ns, service: SVC, uid: u, pod: other, persistent: true }
      await until(() => seenB.length > 0 && seenA.length > 0, 'the link listeners', BOUND)
      assert.deepEqual(seenB, [change])
      assert.deepEqual(seenA, [change])
    })

    it('logout then re-placement elsewhere: the gateway follows within 1 s and saw one removal', async () => {
      const { made, ns, pods, a, b } = await setup('lo')
      const seenA = []
      a.onLinkChanged((ch) => seenA.push(ch))
      const u = 'leaver'
      const p = await a.computeLinkedPod(ns, u, SVC)
      const otherPod = 1 - p
      assert.equal(await pods[p].removeLinkedPod(ns, u, SVC, 0), true)
      const link = await b.setLinkedPodIfAbsent(ns, u, SVC, otherPod, 300)
      assert.deepEqual([link.podIndex, link.persistent], [otherPod, false])
      await until(
        async () => (await a.computeLinkedPod(ns, u, SVC)) === otherPod,
        `A answering pod ${otherPod}`,
        BOUND,
      )
      // A change of another user's link: events of one namespace arrive in order, so once
      // this one is here every earlier one is too.
      await made.store.setLink(ns, 'marker', SVC, 0, -1) // new: no event
      await made.store.setLink(ns, 'marker', SVC, 1, -1) // a move: an event
      await until(() => seenA.some((ch) => ch.uid === 'marker'), 'the marker event')
      assert.deepEqual(
        seenA.filter((ch) => ch.uid === u),
        [{ namespace: ns, service: SVC, uid: u, pod: null, persistent: false }],
        'the new link of a user without one is not a change',
      )
    })

    it('a drain reaches a gateway with the default 30 s refresh within 1 s', async () => {
      const { ns, pods, a } = await setup('dr')
      const routing = []
      a.onRoutingStateChanged((ch) => routing.push(ch))
      assert.equal(await a.isPodRoutable(SVC, 1), true)
      await pods[1].setRoutingState(sr.RoutingState.DenyNewCall)
      await until(
        async () => !(await a.isPodRoutable(SVC, 1)),
        'DENY_NEW_CALL at the gateway',
        BOUND,
      )
      assert.equal(await a.isPodAlive(SVC, 1), true)
      assert.deepEqual(await a.routablePods(SVC), [0])
      assert.equal(await a.computeLinkedPod(ns, 'newcomer', SVC), 0)
      const drained = () => routing.filter((ch) => ch.new === 'DENY_NEW_CALL')
      await until(() => drained().length > 0, 'the routing-state listener', BOUND)
      assert.deepEqual(drained(), [
        { service: SVC, podIndex: 1, old: 'READY', new: 'DENY_NEW_CALL' },
      ])
    })

    it('listeners: ids, removal, and a throwing listener stops neither the others nor the process', async () => {
      const { made, ns, a } = await setup('ll')
      let removedCalls = 0
      let throwerCalls = 0
      const kept = []
      const removed = a.onLinkChanged(() => removedCalls++)
      const thrower = a.onLinkChanged(() => {
        throwerCalls++
        throw new Error('listener bug')
      })
      const keeper = a.onLinkChanged((ch) => kept.push(ch))
      assert.equal(new Set([removed, thrower, keeper]).size, 3)
      assert.ok([removed, thrower, keeper].every((id) => Number.isInteger(id) && id >= 0))
      assert.equal(a.removeLinkListener(removed), true)
      assert.equal(a.removeLinkListener(removed), false)
      for (const bad of [-1, 1.5, NaN, 2 ** 53]) assert.equal(a.removeLinkListener(bad), false)
      // The ids of the two kinds of listener are separate: removing a link listener's id as a
      // routing-state listener does nothing to it.
      a.removeRoutingStateListener(keeper)
      const warnings = []
      const onWarning = (w) => w.name === 'StatefulRouteWarning' && warnings.push(w)
      process.on('warning', onWarning)
      try {
        for (const uid of ['l1', 'l2']) {
          await made.store.setLink(ns, uid, SVC, 0, -1)
          await made.store.setLink(ns, uid, SVC, 1, 60) // to pod 1, temporary: an event
        }
        await until(
          () => kept.length === 2 && warnings.length === 2,
          'both changes at the kept listener, and two warnings',
        )
        assert.deepEqual(
          kept,
          ['l1', 'l2'].map((uid) => ({
            namespace: ns,
            service: SVC,
            uid,
            pod: 1,
            persistent: false,
          })),
        )
        assert.equal(throwerCalls, 2, 'a listener that threw stays registered')
        assert.equal(removedCalls, 0)
        assert.match(warnings[0].message, /a link listener threw: .*listener bug/)
        assert.equal(a.removeLinkListener(thrower), true)
        assert.equal(a.removeLinkListener(keeper), true)
      } finally {
        process.off('warning', onWarning)
      }
    })

    it('a script with link listeners exits by itself after close()/stop()', async () => {
      const r = await runNode(['--expose-gc', '-e', LINK_LISTENER_EXIT, kind.name], 30_000)
      assert.equal(r.code, 0, r.stderr)
      assert.equal(
        r.stdout,
        JSON.stringify({
          namespace: 'lexit',
          service: 'room',
          uid: 'user123',
          pod: null,
          persistent: false,
        }) + '\nStatefulRouteWarning: a link listener threw: listener bug\n',
      )
    })

    it('propagation: false keeps the cached answer after a move (the TTL rule alone)', async () => {
      // On Redis: a gateway on a store without propagation next to a propagating one (the
      // control), one database. In memory (one object per store): the same move on a store of
      // each kind.
      const made = await kind.make()
      const ns = unique('po')
      const stores =
        kind.name === 'memory'
          ? { on: made.store, off: sr.Store.memory({ propagation: false }) }
          : { on: made.store, off: await sameStore(kind, made, { propagation: false }) }
      const writers =
        kind.name === 'memory'
          ? { on: stores.on, off: stores.off }
          : { on: await sameStore(kind, made), off: await sameStore(kind, made) }
      const gateways = {}
      const seen = { on: [], off: [] }
      for (const which of ['on', 'off']) {
        ;[gateways[which]] = track(gateway(stores[which], ns))
        gateways[which].onLinkChanged((ch) => seen[which].push(ch))
      }
      const u = 'stays'
      for (const which of ['on', 'off']) {
        await writers[which].setLink(ns, u, SVC, 0, -1)
        assert.equal(await gateways[which].getLinkedPod(ns, u, SVC), 0)
      }
      // The move: by a propagating store on Redis (a store without propagation publishes
      // nothing, so no gateway would follow it).
      if (kind.name === 'memory') {
        for (const w of Object.values(writers)) assert.equal(await w.setLink(ns, u, SVC, 1, -1), 0)
      } else {
        assert.equal(await writers.on.setLink(ns, u, SVC, 1, -1), 0)
      }
      await until(
        async () => (await gateways.on.getLinkedPod(ns, u, SVC)) === 1,
        'the control',
        BOUND,
      )
      await until(() => seen.on.length > 0, "the control's listener", BOUND)
      assert.equal(gateways.off.getLinkedInCache(ns, u, SVC), 0, 'the old answer stays cached')
      assert.equal(await gateways.off.getLinkedPod(ns, u, SVC), 0)
      assert.equal(await gateways.off.getLinkedPodNotCache(ns, u, SVC), 1, 'the store has moved')
      assert.deepEqual(seen.off, [])
    })

    it('StoreConfig.propagation: default true, checked as a boolean', async () => {
      assert.equal(sr.defaultStoreConfig().propagation, true)
      for (const propagation of [true, false, undefined]) sr.Store.memory({ propagation })
      h.throwsWith(() => sr.Store.memory({ propagation: 'no' }), 'INVALID_ARGUMENT')
      if (kind.name === 'redis') {
        const s = await sr.Store.connect(REDIS_URL, { keyPrefix: unique('pf'), propagation: false })
        assert.equal(await s.setLink('x', 'u', SVC, 0, -1), null)
      }
    })
  })
}
