'use strict'
// Faults and routing guarantees through the Node package (README "Operating it"): a store that
// stops answering (SIGSTOP: TIMEOUT within commandTimeout) or is killed (SIGKILL:
// STORE_UNAVAILABLE), then routes again after SIGCONT or a restart on the same port;
// stale-if-error while the store is silent; a pod that stops publishing stops being alive after
// staleAfterSeconds; a cached temporary link never outlives its TTL minus the cache margin.
// Each fault test has a redis-server of its own (helpers.ownRedis: tests/redis_launch.py).

const assert = require('node:assert/strict')
const { describe, it } = require('node:test')
const h = require('./helpers')
const { sr, FAST, unique, until, rejectsWith, startPods, newClient } = h

const SVC = 'room'
const COMMAND_TIMEOUT = 0.3
// How much later than the command timeout a failing call may settle (a loaded 2-core machine).
const SLACK_MS = 1000

/** Runs `call()`, which must reject with `code`; returns how long it took in ms. */
async function failsWith(call, code) {
  const t0 = Date.now()
  await rejectsWith(call(), code)
  return Date.now() - t0
}

/** Polls until a new user is routed; each failure before must be one of `codes` and bounded. */
async function routesAgain(client, ns, stem, ms, codes) {
  const t0 = Date.now()
  let n = 0
  await until(
    async () => {
      n++
      const t = Date.now()
      try {
        return [0, 1].includes(await client.computeLinkedPod(ns, `${stem}${n}`, SVC))
      } catch (e) {
        assert.ok(codes.includes(e.code), `${stem}: ${e.code}: ${e.message}`)
        assert.ok(Date.now() - t <= COMMAND_TIMEOUT * 1000 + SLACK_MS, `${stem}: call too slow`)
        return false
      }
    },
    `a new user routed (${stem})`,
    ms,
  )
  return Date.now() - t0
}

/** Runs `body(redis)` with a redis-server of its own; shows its log if the body fails. */
async function withOwnRedis(body) {
  const redis = await h.ownRedis()
  try {
    await body(redis)
  } catch (e) {
    e.message += `\n--- own redis-server (:${redis.port}) log:\n${redis.log()}`
    throw e
  } finally {
    await redis.close()
  }
}

function connect(redis) {
  return sr.Store.connect(redis.url, {
    keyPrefix: unique('nf'),
    connectTimeout: COMMAND_TIMEOUT,
    commandTimeout: COMMAND_TIMEOUT,
  })
}

describe('store faults on a redis-server of its own', () => {
  it('SIGSTOP is TIMEOUT, SIGKILL is STORE_UNAVAILABLE, and routing comes back after each', async () => {
    await withOwnRedis(async (redis) => {
      const store = await connect(redis)
      const ns = unique('ns')
      // The pause (about 1.2 s) is shorter than staleAfterSeconds, so the pods are alive when
      // the store answers again, whichever comes first: their next publish or the next read.
      const staleAfter = 3
      const cfg = { ...FAST, staleAfterSeconds: staleAfter }
      const pods = await startPods(store, ns, SVC, [0, 1], cfg)
      const c = newClient(store, ns, cfg)
      try {
        // A first subscription (or a resume) empties the cache: cache once the stream is up.
        await h.streamUp(c, store, ns)
        const cached = await c.computeLinkedPod(ns, 'cached', SVC)

        // Silent: every call fails with TIMEOUT, within the command timeout.
        redis.signal('SIGSTOP')
        for (let i = 0; i < 3; i++) {
          const took = await failsWith(() => c.computeLinkedPod(ns, `paused${i}`, SVC), 'TIMEOUT')
          assert.ok(took >= COMMAND_TIMEOUT * 900, `failed after ${took} ms`)
          assert.ok(took <= COMMAND_TIMEOUT * 1000 + SLACK_MS, `failed after ${took} ms`)
        }
        await failsWith(() => store.getLink(ns, 'cached', SVC), 'TIMEOUT')
        assert.equal(await c.computeLinkedPod(ns, 'cached', SVC), cached, 'a cache hit')
        redis.signal('SIGCONT')
        // Liveness froze while the store was silent: no NO_AVAILABLE_POD on the way back.
        assert.ok(
          (await routesAgain(c, ns, 'after-pause', 5000, ['TIMEOUT', 'STORE_UNAVAILABLE'])) < 5000,
        )
        // If the pause was a gap of the event stream (an unanswered PING), its resume emptied
        // the cache: cache the user again once the stream is up, for the outage below.
        await h.streamUp(c, store, ns)
        assert.equal(await c.computeLinkedPod(ns, 'cached', SVC), cached)

        // Gone: every call fails with STORE_UNAVAILABLE (connection refused), fast, for longer
        // than staleAfterSeconds, during which liveness stays frozen at the last good read.
        await redis.kill()
        const down = Date.now()
        for (let i = 0; Date.now() - down < staleAfter * 1000 + 500; i++) {
          const took = await failsWith(
            () => c.computeLinkedPod(ns, `killed${i}`, SVC),
            'STORE_UNAVAILABLE',
          )
          assert.ok(took <= COMMAND_TIMEOUT * 1000 + SLACK_MS, `failed after ${took} ms`)
          assert.equal(await c.computeLinkedPod(ns, 'cached', SVC), cached)
          assert.deepEqual(
            await c.alivePods(SVC),
            [0, 1],
            'liveness freezes while the store is gone',
          )
          await new Promise((r) => setTimeout(r, 50)) // pacing the probes, not waiting for anything
        }

        // Restarted empty on the same port: new users are routed again; the pods republish.
        await redis.restart()
        const codes = ['TIMEOUT', 'STORE_UNAVAILABLE', 'NO_AVAILABLE_POD'] // empty until republished
        assert.ok((await routesAgain(c, ns, 'after-restart', 10_000, codes)) < 10_000)
        await until(
          async () => (await store.podStates(ns, SVC)).map((s) => s.podIndex).join() === '0,1',
          'both pods republished',
        )
      } finally {
        if (redis.stopped) redis.signal('SIGCONT')
        c.close()
        for (const p of pods) await p.stop().catch(() => {}) // a stop with the store gone still closes
      }
    })
  })

  it('stale-if-error serves an expired cached link while the store is silent; a new user is TIMEOUT', async () => {
    await withOwnRedis(async (redis) => {
      const store = await connect(redis)
      const ns = unique('ns')
      // Cache entries live 1 s (TTL 10 − margin 9, and the 1 s cache time); stale-if-error
      // serves them up to 5 s past that (below the 9 s margin, so not cut by it). The pause
      // (about 2 s) is shorter than staleAfterSeconds: the pod is alive when the store answers.
      const cfg = {
        ...FAST,
        staleAfterSeconds: 5,
        tempLinkInfoCacheTimeSeconds: 10,
        userLinkInfoCacheTimeSeconds: 1,
      }
      const [pod] = await startPods(store, ns, SVC, [0], cfg)
      const c = newClient(store, ns, { ...cfg, serveStaleSeconds: 5 })
      const noStale = newClient(store, ns, { ...cfg, serveStaleSeconds: 0 })
      try {
        // A first subscription empties the cache: cache once the streams are up.
        await h.streamUp(c, store, ns)
        await h.streamUp(noStale, store, ns)
        assert.equal(await c.computeLinkedPod(ns, 'old', SVC), 0)
        assert.equal(await noStale.computeLinkedPod(ns, 'old', SVC), 0)
        redis.signal('SIGSTOP')
        await until(
          () =>
            c.getLinkedInCache(ns, 'old', SVC) === null &&
            noStale.getLinkedInCache(ns, 'old', SVC) === null,
          'the cache entries expired',
        )
        const t0 = Date.now()
        assert.equal(await c.computeLinkedPod(ns, 'old', SVC), 0, 'served stale')
        assert.ok(Date.now() - t0 <= COMMAND_TIMEOUT * 1000 + SLACK_MS)
        // Without stale-if-error the same user fails like a new one.
        await failsWith(() => noStale.computeLinkedPod(ns, 'old', SVC), 'TIMEOUT')
        const took = await failsWith(() => c.computeLinkedPod(ns, 'new', SVC), 'TIMEOUT')
        assert.ok(took <= COMMAND_TIMEOUT * 1000 + SLACK_MS, `failed after ${took} ms`)
        redis.signal('SIGCONT')
        assert.equal(await c.computeLinkedPod(ns, 'new', SVC), 0)
      } finally {
        if (redis.stopped) redis.signal('SIGCONT')
        c.close()
        noStale.close()
        await pod.stop()
      }
    })
  })
})

for (const kind of h.STORES) {
  describe(`routing guarantees on the ${kind.name} store`, () => {
    it('a pod that stops publishing stops being alive after staleAfterSeconds, not before', async () => {
      const { store } = await kind.make()
      const ns = unique('ns')
      const staleAfter = 1
      // Publishes at start, then every 30 s only.
      const quiet = {
        serviceStateUpdatePeriodSeconds: 30,
        cpuFactor: 0,
        staleAfterSeconds: staleAfter,
      }
      const before = Date.now()
      const [pod] = await startPods(store, ns, SVC, [0], quiet)
      const c = newClient(store, ns, { ...FAST, staleAfterSeconds: staleAfter }) // refreshes every 0.2 s
      try {
        assert.equal(await c.isPodAlive(SVC, 0), true)
        assert.deepEqual(await c.alivePods(SVC), [0])
        assert.equal(await c.computeLinkedPod(ns, 'early', SVC), 0)
        await until(async () => !(await c.isPodAlive(SVC, 0)), 'pod 0 not alive', 6000)
        const deadAfter = Date.now() - before
        // 50 ms for the millisecond clocks of the store and of the check.
        assert.ok(deadAfter >= staleAfter * 1000 - 50, `declared dead after ${deadAfter} ms`)
        assert.deepEqual(await c.alivePods(SVC), [])
        await c.refreshService(SVC)
        assert.equal(
          await c.isPodAlive(SVC, 0),
          false,
          'a fresh read of the old state is still stale',
        )
        assert.deepEqual(
          (await store.podStates(ns, SVC)).map((s) => [s.podIndex, s.routingState]),
          [[0, 'READY']],
        )
        await rejectsWith(c.computeLinkedPod(ns, 'late', SVC), 'NO_AVAILABLE_POD')
      } finally {
        c.close()
        await pod.stop()
      }
    })

    it('a cached temporary link never outlives its TTL minus the cache margin', async () => {
      const { store } = await kind.make()
      const ns = unique('ns')
      // TTL 3 s, cache time 1 s: margin 2 s.
      const cfg = { ...FAST, tempLinkInfoCacheTimeSeconds: 3, userLinkInfoCacheTimeSeconds: 1 }
      const [pod] = await startPods(store, ns, SVC, [0], cfg)
      const c = newClient(store, ns, cfg)
      try {
        await h.streamUp(c, store, ns) // a first subscription would empty the cache early
        const t0 = Date.now()
        const link = await c.setLinkedPodIfAbsent(ns, 'fresh', SVC, 0, 3)
        assert.equal(link.podIndex, 0)
        assert.ok(link.ttlSeconds <= 3, `${link.ttlSeconds}`)
        assert.equal(c.getLinkedInCache(ns, 'fresh', SVC), 0)
        await until(() => c.getLinkedInCache(ns, 'fresh', SVC) === null, 'the cache entry gone')
        const goneAfter = Date.now() - t0
        assert.ok(goneAfter >= 900 && goneAfter <= 1500, `cached for ${goneAfter} ms (3 − 2 = 1 s)`)
        const inStore = await store.getLink(ns, 'fresh', SVC)
        assert.equal(inStore.podIndex, 0, 'the store still holds it')
        assert.ok(inStore.ttlSeconds > 1, `${inStore.ttlSeconds}`)

        // 2 s left, not more than the 2 s margin: answered, not cached (the 1 s cache time
        // alone would keep it).
        await store.setLink(ns, 'short', SVC, 0, 2)
        assert.equal(await c.computeLinkedPod(ns, 'short', SVC), 0)
        assert.equal(c.getLinkedInCache(ns, 'short', SVC), null)
        assert.equal(c.computeCached(ns, 'short', SVC), null)
        // A persistent link has no TTL: the cache time alone applies.
        await store.setLink(ns, 'owned', SVC, 0, -1)
        assert.equal(await c.computeLinkedPod(ns, 'owned', SVC), 0)
        assert.equal(c.getLinkedInCache(ns, 'owned', SVC), 0)
      } finally {
        c.close()
        await pod.stop()
      }
    })
  })
}
