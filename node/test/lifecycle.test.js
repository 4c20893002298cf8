'use strict'
// The process around the drivers: a script exits by itself after close()/stop() (callbacks
// and the logger do not keep it alive), the addon loads in worker_threads, the core's log
// events reach a JS callback, and the package loads from CommonJS and ESM.

const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const path = require('node:path')
const { describe, it } = require('node:test')
const { Worker } = require('node:worker_threads')
const h = require('./helpers')
const { sr, FAST, unique, until, startPods, newClient } = h

const PKG = require.resolve('stateful-route')

/** Runs `node args…` and resolves with { code, signal, stdout, stderr } once it exits; fails
 * (and kills it) if it is still running after `ms`. */
function runNode(args, ms, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      env: { ...process.env, ...env },
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

// Run as `node -e USE_DRIVERS <memory|redis> [env-logger]` (argv[1], argv[2] under -e).
const USE_DRIVERS = `
const sr = require(${JSON.stringify(PKG)})
async function main(kind) {
  const store = kind === 'redis'
    ? await sr.Store.connect(process.env.STATEFUL_ROUTE_TEST_REDIS, { keyPrefix: 'exit' + process.pid })
    : sr.Store.memory()
  if (process.argv[2] !== 'env-logger') sr.setLogger(() => {}, 'debug')
  const info = { namespace: 'exit', serviceName: 'room', podIndex: 0 }
  const server = new sr.ServerDriver(store, info, { serviceStateUpdatePeriodSeconds: 0.2, cpuFactor: 0.5 })
  await server.start()
  await server.setLoadState(150)
  const client = new sr.ClientDriver(store, info, { serviceStateUpdatePeriodSeconds: 0.2 })
  await client.init()
  client.onRoutingStateChanged(() => {})
  const pod = await client.computeLinkedPod('exit', 'user123', 'room')
  await client.computeLinkedPod('exit', 'user123', 'room')
  await server.stop()
  client.close()
  console.log('routed to', pod, 'on', kind)
}
main(process.argv[1]).catch((e) => { console.error(e); process.exit(1) })
`

describe('process lifecycle', () => {
  for (const kind of ['memory', 'redis']) {
    it(`a script exits by itself after close()/stop() (${kind} store)`, async () => {
      const r = await runNode(['-e', USE_DRIVERS, kind], 30_000)
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout.trim(), `routed to 0 on ${kind}`)
    })
  }

  it('STATEFUL_ROUTE_LOG prints the core events to stderr', async () => {
    const r = await runNode(['-e', USE_DRIVERS, 'memory', 'env-logger'], 30_000, {
      STATEFUL_ROUTE_LOG: 'info',
    })
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /stateful-route INFO stateful_route::server: pod started/)
  })

  it('the addon loads and routes in worker threads, next to the main thread', async () => {
    const store = sr.Store.memory()
    const ns = unique('w')
    const pods = await startPods(store, ns, 'room', [0])
    const mainClient = newClient(store, ns)
    assert.equal(await mainClient.computeLinkedPod(ns, 'main', 'room'), 0)
    const code = `
      const { parentPort, workerData } = require('node:worker_threads')
      const sr = require(workerData.pkg)
      ;(async () => {
        const store = workerData.url
          ? await sr.Store.connect(workerData.url, { keyPrefix: workerData.prefix })
          : sr.Store.memory()
        const info = { namespace: 'wk', serviceName: 'room', podIndex: workerData.pod }
        const server = new sr.ServerDriver(store, info, { serviceStateUpdatePeriodSeconds: 0.2 })
        await server.start()
        const client = new sr.ClientDriver(store, info)
        client.init()
        const pods = await Promise.all([1, 2, 3].map((i) => client.computeLinkedPod('', 'u' + i, 'room')))
        let code
        try { await client.computeLinkedPod('', 'x}', 'room') } catch (e) { code = e.code }
        await server.stop()
        client.close()
        parentPort.postMessage({ pods, code })
      })().catch((e) => { parentPort.postMessage({ error: String(e) }) })
    `
    const runWorker = (workerData) =>
      new Promise((resolve, reject) => {
        const w = new Worker(code, { eval: true, workerData })
        let msg
        w.on('message', (m) => (msg = m))
        w.on('error', reject)
        w.on('exit', (exitCode) => resolve({ exitCode, msg }))
      })
    const results = await Promise.all([
      runWorker({ pkg: PKG, pod: 4 }),
      runWorker({ pkg: PKG, pod: 5, url: h.REDIS_URL, prefix: unique('nw') }),
    ])
    assert.deepEqual(results[0], {
      exitCode: 0,
      msg: { pods: [4, 4, 4], code: 'INVALID_ARGUMENT' },
    })
    assert.deepEqual(results[1], {
      exitCode: 0,
      msg: { pods: [5, 5, 5], code: 'INVALID_ARGUMENT' },
    })
    // A second round after the first workers are gone.
    const again = await runWorker({ pkg: PKG, pod: 6 })
    assert.deepEqual(again.msg.pods, [6, 6, 6])
    // The main thread's drivers are unaffected.
    assert.equal(await mainClient.computeLinkedPod(ns, 'main2', 'room'), 0)
    mainClient.close()
    await pods[0].stop()
  })

  it('a worker terminated with Promises in flight does not disturb the process', async () => {
    const code = `
      const { parentPort, workerData } = require('node:worker_threads')
      const sr = require(workerData.pkg)
      sr.Store.connect(workerData.url, { keyPrefix: workerData.prefix }).then((store) => {
        const client = new sr.ClientDriver(store, { namespace: 'wt', serviceName: 'g', podIndex: 0 })
        client.init()
        client.onRoutingStateChanged(() => {})
        for (let i = 0; i < 2000; i++) store.setLink('wt', 'u' + i, 'room', 1, 60).catch(() => {})
        parentPort.postMessage('busy')
      })
    `
    for (let round = 0; round < 3; round++) {
      const w = new Worker(code, {
        eval: true,
        workerData: { pkg: PKG, url: h.REDIS_URL, prefix: unique('nt') },
      })
      await new Promise((resolve, reject) => {
        w.once('message', resolve)
        w.once('error', reject)
      })
      await w.terminate()
    }
    // The main thread's Promises still settle.
    const store = await sr.Store.connect(h.REDIS_URL, { keyPrefix: unique('nt') })
    assert.equal(await store.setLink('wt', 'after', 'room', 2, 60), null)
    assert.equal((await store.getLink('wt', 'after', 'room')).podIndex, 2)
  })

  it("the log callback receives the core's events", async () => {
    const records = []
    assert.equal(
      sr.setLogger((r) => records.push(r), 'debug'),
      true,
    )
    const store = sr.Store.memory()
    const ns = unique('log')
    const [pod] = await startPods(store, ns, 'room', [0], FAST)
    const c = newClient(store, ns)
    await c.computeLinkedPod(ns, 'logged', 'room')
    await pod.stop()
    c.close()
    const started = await until(
      () => records.find((r) => r.message.startsWith('pod started')),
      'the "pod started" record',
    )
    assert.equal(started.level, 'INFO')
    assert.equal(started.target, 'stateful_route::server')
    assert.match(started.message, /service=room/)
    await until(
      () => records.find((r) => r.message.startsWith('pod stopped')),
      'the "pod stopped" record',
    )
    await until(() => records.find((r) => r.level === 'DEBUG'), 'a debug record')
    // Only `warn` and above after this. The records go to a new array: the debug logger's
    // queue may still hold records for the old one.
    const warned = []
    sr.setLogger((r) => warned.push(r), 'warn')
    const [p2] = await startPods(store, ns, 'room', [1], FAST) // "pod started": INFO
    await p2.stop() // "pod stopped": INFO
    // Then a WARN: a pod-state field nobody can parse, skipped with a warning. Records reach
    // the callback in the order they were logged, so once this one has arrived, an INFO or
    // DEBUG record logged before it would have arrived too.
    const prefix = unique('nl')
    const redis = await sr.Store.connect(h.REDIS_URL, { keyPrefix: prefix })
    h.redisCli('HSET', `${prefix}:{${ns}:state:room}`, '7', 'garbage')
    assert.deepEqual(await redis.podStates(ns, 'room'), [])
    const warning = await until(
      () => warned.find((r) => r.message.startsWith('skipping unparsable pod state')),
      'the WARN record of the unparsable pod state',
    )
    assert.equal(warning.level, 'WARN')
    assert.deepEqual(
      warned.filter((r) => r.level !== 'WARN' && r.level !== 'ERROR'),
      [],
      'records below warn were forwarded',
    )
    assert.ok(!warned.some((r) => r.message.startsWith('pod st')))
    h.redisCli('DEL', `${prefix}:{${ns}:state:room}`)
    assert.equal(sr.setLogger(null), true)
  })

  it('loads from ESM with named exports', async () => {
    const r = await runNode(
      [
        '--input-type=module',
        '-e',
        `import sr, { Store, ClientDriver, ServerDriver, RoutingState, setLogger, errorCodes } from 'stateful-route'
         const store = Store.memory()
         const info = { namespace: 'esm', serviceName: 'room', podIndex: 2 }
         const server = new ServerDriver(store, info)
         await server.start()
         const client = new ClientDriver(store, info)
         client.init()
         console.log(await client.computeLinkedPod('esm', 'u', 'room'), RoutingState.DenyNewCall,
           typeof setLogger, errorCodes().length, sr.Store === Store)
         await server.stop(); client.close()`,
      ],
      30_000,
    )
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout.trim(), '2 DENY_NEW_CALL function 10 true')
  })

  it('the package is the same object from CommonJS', () => {
    assert.equal(require('stateful-route'), sr)
    assert.equal(path.basename(PKG), 'index.js')
  })
})
