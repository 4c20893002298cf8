use stateful_route::{BaseConfig, ClientDriver, RoutingState, ServerDriver, ServerInfo, Store};

#[tokio::main]
async fn main() -> stateful_route::Result<()> {
    let store = Store::memory(); // or: Store::redis("redis://127.0.0.1:6379").await?

    // In each pod: publish state, own users.
    let me = ServerInfo::new("default", "room", 0);
    let server = ServerDriver::new(store.clone(), me.clone(), BaseConfig::default())?;
    server.set_load_state(150)?;
    server.start().await?;

    // In each gateway: route users.
    let client = ClientDriver::new(store, me, BaseConfig::default())?;
    client.init()?;
    let pod = client
        .compute_linked_pod("default", "user123", "room")
        .await?;
    println!("user123 -> pod {pod}");

    server.set_routing_state(RoutingState::DenyNewCall).await?; // drain
    server.stop().await?;
    client.close();
    Ok(())
}
