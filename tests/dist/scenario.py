"""The release scenario for an installed wheel or sdist (tests/dist-check.sh): two pods, the
busy one loaded before start; a gateway places user1, pod 0 drains, user2 goes to pod 1, a bad
uid is INVALID_ARGUMENT. Memory store, then Redis. Usage: scenario.py REDIS_URL SERVICE."""

import asyncio
import sys

from stateful_route import BaseConfig, ClientDriver, ServerDriver, ServerInfo, Store
from stateful_route import InvalidArgumentError, RoutingState


async def scenario(label: str, store: Store, svc: str) -> None:
    config = BaseConfig(service_state_update_period_seconds=30, cpu_factor=0)
    s0 = ServerDriver(store, ServerInfo(namespace="default", service_name=svc, pod_index=0), config)
    s1 = ServerDriver(store, ServerInfo(namespace="default", service_name=svc, pod_index=1), config)
    await s1.set_load_state(1000)
    async with s0, s1:
        me = ServerInfo(namespace="default", service_name=svc, pod_index=0)
        async with ClientDriver(store, me, config) as client:
            print(f"{label}: user1 -> pod {await client.compute_linked_pod('', 'user1', svc)}")
            await s0.set_routing_state(RoutingState.DENY_NEW_CALL)
            await client.refresh_service(svc)
            pod = await client.compute_linked_pod("", "user1", svc)
            print(f"{label}: user1 -> pod {pod} after draining pod 0")
            print(f"{label}: user2 -> pod {await client.compute_linked_pod('', 'user2', svc)}")
            try:
                await client.compute_linked_pod("", "bad}uid", svc)
                print(f"{label}: bad}}uid -> accepted")
            except InvalidArgumentError as e:
                print(f"{label}: bad}}uid -> {e.code}")


async def main() -> None:
    url, svc = sys.argv[1], sys.argv[2]
    await scenario("memory", Store.memory(), svc)
    await scenario("redis", await Store.connect(url), svc)


asyncio.run(main())
