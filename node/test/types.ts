// Type-checked by `tsc --noEmit` (node/test.sh): the package's generated index.d.ts describes
// the API a TypeScript user writes against. Lines marked @ts-expect-error must not compile.
import {
  ClientDriver,
  RoutingState,
  ServerDriver,
  Store,
  defaultBaseConfig,
  defaultStoreConfig,
  errorCodes,
  serverInfoFromEnv,
  setLogger,
  stopOnSignal,
  type BaseConfig,
  type Candidate,
  type Explanation,
  type ExplainedPod,
  type MetricsSnapshot,
  type SignalStop,
  type Link,
  type LinkChange,
  type LoadInput,
  type PlacementRequest,
  type LogRecord,
  type PodState,
  type RoutingStateChange,
  type ServerInfo,
  type TrySetOutcome,
} from 'stateful-route'

function client0(store: Store, info: ServerInfo): ClientDriver {
  return new ClientDriver(store, info, {
    serveStaleSeconds: 30,
    slowStartSeconds: 0,
    placement: 'weighted',
  })
}

export async function example(url: string | undefined): Promise<number> {
  const store: Store = url ? await Store.connect(url, { keyPrefix: 'sf' }) : Store.memory()
  const info: ServerInfo = { namespace: 'default', serviceName: 'room', podIndex: 0 }
  const config: BaseConfig = { serviceStateUpdatePeriodSeconds: 30, placement: 'p2c' }
  const server = new ServerDriver(store, info, config)
  await server.start()
  server.setLoadState(150)
  await server.setRoutingState(RoutingState.DenyNewCall)
  await server.setWeight(50)
  const weight: number = server.getWeight()
  client0(store, info).setServicePlacement('room', 'rendezvous')
  client0(store, info).setServicePlacement('room', 'rendezvous', 1.5)
  void new ClientDriver(store, info, { placement: 'rendezvous', placementLoadFactor: 2 })
  const period: number | undefined = defaultBaseConfig().serviceStateUpdatePeriodSeconds
  const prefix: string | undefined = defaultStoreConfig().keyPrefix
  const propagation: boolean | undefined = defaultStoreConfig().propagation
  void [propagation, Store.memory({ propagation: false })]
  void [period, prefix]
  const cluster: Promise<Store> = Store.connectCluster(['redis://127.0.0.1:7000'], {
    commandTimeout: 1,
  })
  void [weight, cluster]
  const state: RoutingState = server.getRoutingState()

  // Extension points: a JS placement policy and load calculator.
  const policy = (candidates: Candidate[], request: PlacementRequest): number | null =>
    request.uid.startsWith('vip') ? candidates.findIndex((c) => c.weight > 50) : null
  client0(store, info).setServicePlacement('room', policy)
  void new ClientDriver(store, info, { placement: (c: Candidate[]) => c.length - 1 })
  server.setLoadCalculator((input: LoadInput) => input.load + (input.signals['queue'] ?? 0))
  server.setLoadCalculator(null)
  server.setLoadSignal('queue', 12)
  const calculated: number = server.tryWeightedLoad()
  void calculated
  // @ts-expect-error a policy returns an index or null
  client0(store, info).setServicePlacement('room', () => 'pod-1')
  // @ts-expect-error a calculator returns a number
  server.setLoadCalculator(() => 'high')

  const client = new ClientDriver(store, info)
  client.init()
  const pod: number = await client.computeLinkedPod('default', 'user123', 'room')
  const cached: number | null = client.computeCached('', 'user123', 'room')
  const maybe: number | null = await client.getLinkedPod('', 'user123', 'room')
  const link: Link = await client.setLinkedPodIfAbsent('', 'u2', 'room', 1, -1)
  const ttl: number | null = link.ttlSeconds
  const outcome: TrySetOutcome = await server.trySetLinkedPod('', 'u2', 'room', 0)
  const previous: number | null = outcome.previous
  const byPod: Record<string, string[]> = await client.batchGetLinkedPod('', ['u1', 'u2'], 'room')
  const states: PodState[] = await client.podStates('room')
  const id: number = client.onRoutingStateChanged((change: RoutingStateChange) => {
    const now: RoutingState | null = change.new
    void now
  })
  client.removeRoutingStateListener(id)
  const linkId: number = client.onLinkChanged((change: LinkChange) => {
    const now: number | null = change.pod
    void [now, change.namespace, change.service, change.uid, change.persistent]
  })
  const removed: boolean = client.removeLinkListener(linkId)
  void removed
  // @ts-expect-error a link change's pod is a number or null
  client.onLinkChanged((change: LinkChange) => change.pod.toFixed())
  setLogger((r: LogRecord) => void r.message, 'info')

  // Metrics, explain and the Kubernetes helpers.
  void new ClientDriver(store, info, { metrics: false })
  const enabled: boolean | undefined = defaultBaseConfig().metrics
  const snapshot: MetricsSnapshot = client.metrics()
  const hits: number = snapshot.services[0].hits
  const onPod0: number | undefined = snapshot.services[0].placements['0']
  const age: number | null = snapshot.services[0].snapshotAgeSeconds
  const podState: 'routable' | 'draining' | 'dead' = snapshot.services[0].pods[0].state
  const le: number = snapshot.storeCalls[0].buckets[0].le
  const noPod: number | undefined = snapshot.errors['NO_AVAILABLE_POD']
  const up: boolean = snapshot.propagation.connected
  const text: string = client.metricsText()
  const why: Explanation = await client.explainPlacement('', 'user123', 'room')
  const answer: number | null = why.answer
  const linkTtl: number | null | undefined = why.link?.ttlSeconds
  const verdicts: ExplainedPod['verdict'][] = why.pods.map((p) => p.verdict)
  const published: RoutingState = why.pods[0].routingState
  void [enabled, hits, onPod0, age, podState, le, noPod, up, text, answer, linkTtl, verdicts]
  void published
  // @ts-expect-error a verdict is one of the core's words
  const wrongVerdict: ExplainedPod['verdict'] = 'chosen'
  void wrongVerdict
  const fromEnv: ServerInfo = serverInfoFromEnv()
  void new ServerDriver(store, serverInfoFromEnv('room'))
  const stopping: SignalStop = stopOnSignal(server, { signals: ['SIGTERM', 'SIGINT'] })
  const signal: string | null = await stopping.done
  stopping.cancel()
  void stopOnSignal(server).done.then(() => undefined)
  // @ts-expect-error stopOnSignal takes a ServerDriver
  stopOnSignal(client)
  void [fromEnv, signal]
  const codes: string[] = errorCodes()
  const workloads: Array<string | null | undefined> = await client.batchGetWorkloadState(['room'])
  void workloads

  try {
    await client.computeLinkedPod('', 'user}', 'room')
  } catch (e) {
    const code = (e as Error & { code: string }).code
    void code
  }

  // @ts-expect-error a pod index is a number
  await store.setLink('default', 'u', 'room', '3', -1)
  // @ts-expect-error the uid is required
  await client.computeLinkedPod('default')
  // @ts-expect-error routing states are the enum's members
  await server.setRoutingState('SLEEPING')

  await server.stop()
  client.close()
  void [state, cached, maybe, ttl, previous, byPod, states, codes]
  return pod
}
