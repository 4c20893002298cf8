'use strict'
// The release scenario for the installed npm tarball (tests/dist-check.sh): two pods, the busy
// one loaded before start; a gateway places user1, pod 0 drains, user2 goes to pod 1, a bad uid
// is INVALID_ARGUMENT. Memory store, then Redis. Usage: node scenario.js REDIS_URL SERVICE
const { Store, ServerDriver, ClientDriver, RoutingState } = require('stateful-route')

async function scenario(label, store, svc) {
  const config = { serviceStateUpdatePeriodSeconds: 30, cpuFactor: 0 }
  const info = (podIndex) => ({ namespace: 'default', serviceName: svc, podIndex })
  const s0 = new ServerDriver(store, info(0), config)
  const s1 = new ServerDriver(store, info(1), config)
  s1.setLoadState(1000)
  await s0.start()
  await s1.start()
  const client = new ClientDriver(store, info(0), config)
  client.init()
  console.log(`${label}: user1 -> pod ${await client.computeLinkedPod('', 'user1', svc)}`)
  await s0.setRoutingState(RoutingState.DenyNewCall)
  await client.refreshService(svc)
  const pod = await client.computeLinkedPod('', 'user1', svc)
  console.log(`${label}: user1 -> pod ${pod} after draining pod 0`)
  console.log(`${label}: user2 -> pod ${await client.computeLinkedPod('', 'user2', svc)}`)
  try {
    await client.computeLinkedPod('', 'bad}uid', svc)
    console.log(`${label}: bad}uid -> accepted`)
  } catch (err) {
    console.log(`${label}: bad}uid -> ${err.code}`)
  }
  client.close()
  await s0.stop()
  await s1.stop()
}

async function main() {
  const [url, svc] = process.argv.slice(2)
  await scenario('memory', Store.memory(), svc)
  await scenario('redis', await Store.connect(url), svc)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
