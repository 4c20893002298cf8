'use strict'
// Extension points (issue 6) from JS: a function as placement policy (per service and in the
// config) and as load calculator, load signals, errors of user code as typed rejections, many
// concurrent computes through a JS policy, a blocked event loop (TIMEOUT, never a hang), and
// a process or worker with callbacks registered ending by itself.

const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const { describe, it, after } = require('node:test')
const { Worker } = require('node:worker_threads')
const h = require('./helpers')
const { sr, FAST, unique, until, rejectsWith, throwsWith, startPods, newClient } = h

const SVC = 'room'
const PKG = require.resolve('stateful-route')

/** New users `prefix0…prefix{n-1}`, one after the other; pod → count. */
async function spread(c, prefix, n) {
  const out = {}
  for (let i = 0; i < n; i++) {
    const pod = await c.computeLinkedPod('', `${prefix}${i}`, SVC)
    out[pod] = (out[pod] ?? 0) + 1
  }
  return out
}

for (const kind of h.STORES) {
  describe(`extension points on the ${kind.name} store`, () => {
    const open = []
    const track = (...drivers) => (open.push(...drivers), drivers)
    after(async () => {
      for (const d of open) {
        if (d instanceof sr.ClientDriver) d.close()
        else await d.stop()
      }
    })

    it('a JS placement policy decides where new users go and sees plain data', async () => {
      const { store } = await kind.make()
      const ns = unique('ns')
      track(...(await startPods(store, ns, SVC, [0, 1, 2])))
      const [c] = track(newClient(store, ns))
      const calls = []
      c.setServicePlacement(SVC, (candidates, request) => {
        calls.push({ candidates, request })
        return candidates.length - 1 // always the highest pod index
      })
      assert.deepEqual(await spread(c, 'hi', 30), { 2: 30 })
      assert.equal(calls.length, 30)
      const { candidates, request } = calls[0]
      assert.deepEqual(
        candidates.map((x) => x.podIndex),
        [0, 1, 2],
      )
      for (const x of candidates) {
        assert.deepEqual(Object.keys(x).sort(), [
          'ageMs',
          'effectiveLoad',
          'load',
          'placed',
          'podIndex',
          'routingState',
          'weight',
        ])
        assert.equal(x.routingState, 'READY')
        assert.equal(x.effectiveLoad, x.load + x.placed)
        assert.equal(x.weight, 100)
        assert.equal(typeof x.ageMs, 'number')
      }
      assert.deepEqual(request, { namespace: ns, uid: 'hi0', service: SVC, sequence: 0 })
      assert.equal(calls[29].request.sequence, 29)
      // Sticky: a known user does not ask the policy again.
      assert.equal(await c.computeLinkedPod('', 'hi0', SVC), 2)
      assert.equal(calls.length, 30)
      // bestPod asks it too; a name switches back to a built-in policy.
      c.setServicePlacement(SVC, () => 0)
      assert.equal(await c.bestPod(SVC), 0)
      c.setServicePlacement(SVC, 'round_robin')
      const rr = await spread(c, 'rr', 30)
      assert.deepEqual(rr, { 0: 10, 1: 10, 2: 10 })
    })

    it('a JS policy in the config applies to every service and reads back as custom', async () => {
      const { store } = await kind.make()
      const ns = unique('ns')
      track(...(await startPods(store, ns, SVC, [3, 5, 7])))
      const [c] = track(
        newClient(store, ns, {
          ...FAST,
          placement: (cands) => cands.findIndex((x) => x.podIndex === 5),
        }),
      )
      assert.equal(c.config.placement, 'custom')
      assert.deepEqual(await spread(c, 'cfg', 12), { 5: 12 })
      // Refusing (null / undefined) is NO_AVAILABLE_POD, with nothing written.
      c.setServicePlacement(SVC, () => null)
      await rejectsWith(c.computeLinkedPod('', 'refused', SVC), 'NO_AVAILABLE_POD')
      c.setServicePlacement(SVC, () => undefined)
      await rejectsWith(c.computeLinkedPod('', 'refused', SVC), 'NO_AVAILABLE_POD')
      assert.equal(await store.getLink(ns, 'refused', SVC), null)
    })

    it("a policy's throw or bad answer rejects with a code and writes nothing", async () => {
      const { store, keys } = await kind.make()
      const ns = unique('ns')
      track(...(await startPods(store, ns, SVC, [0, 1])))
      const [c] = track(newClient(store, ns))
      const before = keys ? keys() : null
      const cases = [
        [
          () => {
            throw new TypeError('policy broke')
          },
          'INTERNAL',
          /JS placement policy threw TypeError: policy broke/,
        ],
        [
          () => {
            throw Object.assign(new Error('full'), { code: 'NO_AVAILABLE_POD' })
          },
          'NO_AVAILABLE_POD',
          /threw Error: full/,
        ],
        [
          () => {
            throw 'a string' // eslint-disable-line no-throw-literal
          },
          'INTERNAL',
          /threw a string/,
        ],
        [
          () => {
            throw Symbol('s')
          },
          'INTERNAL',
          /threw a value of type symbol/,
        ],
        [() => '1', 'INTERNAL', /returned a value of type string/],
        [() => 1.5, 'INTERNAL', /returned 1.5, not an index/],
        [() => -1, 'INTERNAL', /returned -1, not an index/],
        [() => 2, 'INTERNAL', /chose index 2 of 2 candidates/],
        [() => ({}), 'INTERNAL', /returned a value of type object/],
      ]
      for (const [i, [policy, code, re]] of cases.entries()) {
        c.setServicePlacement(SVC, policy)
        await rejectsWith(c.computeLinkedPod('', `bad${i}`, SVC), code, re)
        await rejectsWith(c.bestPod(SVC), code, re)
        assert.equal(await store.getLink(ns, `bad${i}`, SVC), null)
        assert.equal(c.getLinkedInCache('', `bad${i}`, SVC), null)
      }
      if (keys) assert.deepEqual(keys(), before)
      // The driver still works afterwards.
      c.setServicePlacement(SVC, () => 1)
      assert.equal(await c.computeLinkedPod('', 'good', SVC), 1)
    })

    it('many concurrent computes through a JS policy: each user placed as it chose', async () => {
      const { store } = await kind.make()
      const ns = unique('ns')
      track(...(await startPods(store, ns, SVC, [0, 1, 2])))
      const [c] = track(newClient(store, ns))
      let calls = 0
      const asked = new Set()
      c.setServicePlacement(SVC, (cands, req) => {
        calls++
        asked.add(req.uid)
        return Number(req.uid.slice('many'.length)) % cands.length
      })
      const n = 600
      // Every user asked twice at once. The core asks the policy before its set-if-absent, so
      // a compute that starts after another one's placement finished asks again (the stored
      // link wins); a deterministic policy makes the outcome exact anyway.
      const uids = Array.from({ length: n }, (_, i) => `many${i}`)
      const pods = await Promise.all([...uids, ...uids].map((u) => c.computeLinkedPod('', u, SVC)))
      assert.deepEqual(pods.slice(0, n), pods.slice(n))
      assert.deepEqual(
        pods.slice(0, n),
        uids.map((_, i) => i % 3),
      )
      assert.equal(asked.size, n)
      assert.ok(calls >= n && calls <= 2 * n, `${calls} calls`)
      const links = await Promise.all(uids.map((u) => store.getLink(ns, u, SVC)))
      assert.deepEqual(
        links.map((l) => l.podIndex),
        pods.slice(0, n),
      )
    })

    it('a JS load calculator changes the published load and so where new users go', async () => {
      const { store } = await kind.make()
      const ns = unique('ns')
      const [p0, p1] = track(...(await startPods(store, ns, SVC, [0, 1])))
      const [c] = track(newClient(store, ns))
      const inputs = []
      // Pod 0 reports its queue length as load: far above load_range (500) over pod 1.
      p0.setLoadCalculator((input) => {
        inputs.push(input)
        return input.load + (input.signals.queue ?? 0)
      })
      p0.setLoadState(3)
      p0.setLoadSignal('queue', 10_000)
      assert.equal(p0.tryWeightedLoad(), 10_003)
      assert.equal(p0.weightedLoad(), 10_003)
      assert.deepEqual(inputs.at(-1), {
        load: 3,
        cpuPercent: 0,
        cpuFactor: 0,
        signals: { queue: 10_000 },
      })
      await until(async () => {
        await c.refreshService(SVC)
        const s = await c.podStates(SVC)
        return s.find((x) => x.podIndex === 0)?.load === 10_003
      }, 'the calculated load published')
      // Calls from the publish loop (runtime threads) reached the JS function too.
      assert.ok(inputs.length > 2, `${inputs.length} calls`)
      assert.deepEqual(await spread(c, 'calc', 20), { 1: 20 })

      // A failing calculator: the error for tryWeightedLoad, SPEC's formula for publishing.
      p1.setLoadState(7)
      p1.setLoadCalculator(() => {
        throw new RangeError('no signal')
      })
      throwsWith(() => p1.tryWeightedLoad(), 'INTERNAL', /load calculator threw RangeError/)
      assert.equal(p1.weightedLoad(), 7)
      p1.setLoadCalculator(() => 'high')
      throwsWith(() => p1.tryWeightedLoad(), 'INTERNAL', /returned a value of type string/)
      p1.setLoadCalculator(() => -1)
      throwsWith(() => p1.tryWeightedLoad(), 'INTERNAL', /returned -1/)
      p1.setLoadCalculator(() => 2.6)
      assert.equal(p1.tryWeightedLoad(), 3)
      // null restores the formula; pod 0's load drops and it takes new users again.
      p0.setLoadCalculator(null)
      assert.equal(p0.tryWeightedLoad(), 3)
      await until(async () => {
        await c.refreshService(SVC)
        const s = await c.podStates(SVC)
        return s.find((x) => x.podIndex === 0)?.load === 3
      }, 'the default load published')
      c.setServicePlacement(SVC, (cands) => cands.findIndex((x) => x.podIndex === 0))
      assert.equal(await c.computeLinkedPod('', 'back', SVC), 0)
    })
  })
}

describe('extension points: arguments and the event loop', () => {
  it('bad arguments are INVALID_ARGUMENT / INVALID_CONFIG', async () => {
    const store = sr.Store.memory()
    const ns = unique('ns')
    const [p] = await startPods(store, ns, SVC, [0])
    const c = newClient(store, ns)
    throwsWith(() => c.setServicePlacement(SVC, 42), 'INVALID_ARGUMENT')
    // The core's Placement::from_setting decides, for every binding: INVALID_CONFIG.
    throwsWith(() => c.setServicePlacement(SVC, 'nearest'), 'INVALID_CONFIG', /nearest/)
    throwsWith(() => c.setServicePlacement('bad}', () => 0), 'INVALID_ARGUMENT')
    throwsWith(
      () =>
        new sr.ClientDriver(
          store,
          { namespace: ns, serviceName: 'g', podIndex: 0 },
          { placement: 'x' },
        ),
      'INVALID_CONFIG',
    )
    throwsWith(
      () =>
        new sr.ClientDriver(
          store,
          { namespace: ns, serviceName: 'g', podIndex: 0 },
          { placement: 1 },
        ),
      'INVALID_ARGUMENT',
    )
    throwsWith(() => p.setLoadCalculator('formula'), 'INVALID_ARGUMENT')
    throwsWith(() => p.setLoadCalculator(), 'INVALID_ARGUMENT')
    throwsWith(() => p.setLoadSignal('q', NaN), 'INVALID_ARGUMENT')
    throwsWith(() => p.setLoadSignal('bad name', 1), 'INVALID_ARGUMENT')
    throwsWith(() => p.setLoadSignal('q', '1'), 'INVALID_ARGUMENT')
    await p.stop()
    throwsWith(() => p.setLoadSignal('q', 1), 'CLOSED')
    c.close()
  })

  it('a blocked event loop makes the compute fail with TIMEOUT, never hang', async () => {
    const store = sr.Store.memory()
    const ns = unique('ns')
    const [p] = await startPods(store, ns, SVC, [0])
    const c = newClient(store, ns)
    let calls = 0
    c.setServicePlacement(SVC, () => (calls++, 0))
    const pending = c.computeLinkedPod('', 'blocked', SVC)
    const deadline = Date.now() + 2_600
    while (Date.now() < deadline); // the JS thread does not answer for 2.6 s
    await rejectsWith(pending, 'TIMEOUT', /did not answer within 2 s/)
    assert.equal(await store.getLink(ns, 'blocked', SVC), null)
    // The late call still ran (its answer was dropped); the next compute works.
    assert.equal(calls, 1)
    assert.equal(await c.computeLinkedPod('', 'unblocked', SVC), 0)
    c.close()
    await p.stop()
  })
})

/** Runs `node -e code args…`; resolves with { code, stdout, stderr }; fails after `ms`. */
function runNode(code, args, ms) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', code, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`the child did not exit within ${ms} ms\n${stdout}\n${stderr}`))
    }, ms)
    child.on('error', reject)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

// argv[1]: memory | redis. Registers a policy and a calculator, routes, stops, and must exit.
const WITH_CALLBACKS = `
const sr = require(${JSON.stringify(PKG)})
async function main(kind) {
  const store = kind === 'redis'
    ? await sr.Store.connect(process.env.STATEFUL_ROUTE_TEST_REDIS, { keyPrefix: 'xexit' + process.pid })
    : sr.Store.memory()
  const info = { namespace: 'exit', serviceName: 'room', podIndex: 4 }
  const cfg = { serviceStateUpdatePeriodSeconds: 0.1, cpuFactor: 0 }
  const server = new sr.ServerDriver(store, info, cfg)
  server.setLoadCalculator((i) => i.load + 1)
  await server.start()
  const client = new sr.ClientDriver(store, info, { ...cfg, placement: (c) => c.length - 1 })
  client.init()
  client.setServicePlacement('room', (c) => c.length - 1)
  const pod = await client.computeLinkedPod('exit', 'user' + process.pid, 'room')
  // A few publishes go through the calculator before the end.
  await new Promise((r) => setTimeout(r, 300))
  await server.stop()
  client.close()
  console.log('routed to', pod)
}
main(process.argv[1]).catch((e) => { console.error(e); process.exit(1) })
`

describe('extension points: process and workers', () => {
  for (const kind of ['memory', 'redis']) {
    it(`a script with a JS policy and calculator exits by itself (${kind} store)`, async () => {
      const r = await runNode(WITH_CALLBACKS, [kind], 20_000)
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout.trim(), 'routed to 4')
    })
  }

  it('a script that never closes its drivers still exits (the callbacks are weak)', async () => {
    const code = `
      const sr = require(${JSON.stringify(PKG)})
      const store = sr.Store.memory()
      const info = { namespace: 'leak', serviceName: 'room', podIndex: 1 }
      const server = new sr.ServerDriver(store, info, { serviceStateUpdatePeriodSeconds: 0.1 })
      server.setLoadCalculator((i) => i.load)
      server.start().then(async () => {
        const client = new sr.ClientDriver(store, info, { placement: () => 0 })
        client.init()
        console.log(await client.computeLinkedPod('', 'u', 'room'))
      })
    `
    const r = await runNode(code, [], 20_000)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout.trim(), '1')
  })

  it('a JS policy and calculator work in worker threads, and a terminated worker is harmless', async () => {
    const code = `
      const { parentPort, workerData } = require('node:worker_threads')
      const sr = require(workerData.pkg)
      ;(async () => {
        const store = sr.Store.memory()
        const info = (i) => ({ namespace: 'wk', serviceName: 'room', podIndex: i })
        const cfg = { serviceStateUpdatePeriodSeconds: 0.1, cpuFactor: 0 }
        const servers = [0, 1, 2].map((i) => new sr.ServerDriver(store, info(i), cfg))
        servers[2].setLoadCalculator((x) => x.load + 42)
        await Promise.all(servers.map((s) => s.start()))
        const client = new sr.ClientDriver(store, info(0), cfg)
        client.init()
        client.setServicePlacement('room', (c) => c.findIndex((x) => x.podIndex === workerData.pod))
        const pods = await Promise.all([1, 2, 3].map((i) => client.computeLinkedPod('', 'u' + i, 'room')))
        const load = servers[2].tryWeightedLoad()
        if (workerData.hang) {
          // Leave computes waiting on this thread's policy and a publishing calculator, then
          // be terminated.
          client.setServicePlacement('room', () => 0)
          for (let i = 0; i < 200; i++) client.computeLinkedPod('', 'h' + i, 'room').catch(() => {})
          parentPort.postMessage({ pods, load })
          return
        }
        await Promise.all(servers.map((s) => s.stop()))
        client.close()
        parentPort.postMessage({ pods, load })
      })().catch((e) => { parentPort.postMessage({ error: String(e) }) })
    `
    const runWorker = (workerData, terminate) =>
      new Promise((resolve, reject) => {
        const w = new Worker(code, { eval: true, workerData: { pkg: PKG, ...workerData } })
        let msg
        w.on('message', (m) => {
          msg = m
          if (terminate) w.terminate()
        })
        w.on('error', reject)
        w.on('exit', (exitCode) => resolve({ exitCode, msg }))
      })
    const [a, b] = await Promise.all([runWorker({ pod: 1 }), runWorker({ pod: 2 })])
    assert.deepEqual(a, { exitCode: 0, msg: { pods: [1, 1, 1], load: 42 } })
    assert.deepEqual(b, { exitCode: 0, msg: { pods: [2, 2, 2], load: 42 } })
    for (let round = 0; round < 3; round++) {
      const t = await runWorker({ pod: 0, hang: true }, true)
      assert.deepEqual(t.msg, { pods: [0, 0, 0], load: 42 })
    }
    // The main thread is unaffected.
    const store = sr.Store.memory()
    const ns = unique('ns')
    const pods = await startPods(store, ns, SVC, [0, 1])
    const c = newClient(store, ns)
    c.setServicePlacement(SVC, () => 1)
    assert.equal(await c.computeLinkedPod('', 'after', SVC), 1)
    c.close()
    await Promise.all(pods.map((p) => p.stop()))
  })
})
