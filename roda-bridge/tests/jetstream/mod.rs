//! Direct looks at the test server's streams (async-nats and tokio: roda-bridge's tests
//! only; `common` is shared with roda-cli's tests, which have neither).

use crate::common::NatsServer;

/// Runs `f` with a JetStream context on `server`, on a runtime of its own.
pub fn with_jetstream<F: std::future::Future>(
    server: &NatsServer,
    f: impl FnOnce(async_nats::jetstream::Context) -> F,
) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(server.url.as_str()).await.unwrap();
        f(async_nats::jetstream::new(client)).await
    })
}
