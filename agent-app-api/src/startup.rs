//! Building and running the gateway: binds its listener (port 0 in tests), starts the hub, the
//! push subscription and the heartbeat, and drains connections on the shutdown signal.

use std::future::Future;
use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use http_kit::{health, method_not_allowed, not_found, Probe, Readiness};
use ledger::{Ledger, PayRules};
use shared::config::{ConfigError, Settings};
use shared::store::{Store, StoreError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;
use crate::ws::Gateway;
use crate::{me, push, ws};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A configuration value is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listen address cannot be bound.
    #[error("AGENT_API_LISTEN: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// Redis refused the function library (a build whose Lua does not load): starting would
    /// only fail every call.
    #[error("redis refused the function library: {0}")]
    Library(StoreError),
}

/// A running gateway.
pub struct Application {
    port: u16,
    instance: String,
    server: Server,
    workers: Vec<JoinHandle<()>>,
    shutdown: CancellationToken,
}

/// What `/readyz` checks: Redis and the push subscription (needed to dispatch), PostgreSQL
/// (needed only by `/v1/me/shifts`).
fn readiness(store: &Store, ledger: &Ledger, subscription: &push::Subscription) -> Readiness {
    let (store, ledger, subscription) = (store.clone(), ledger.clone(), subscription.clone());
    Readiness(vec![
        Probe::required("redis", move || {
            let store = store.clone();
            async move { store.takes_writes().await }
        }),
        Probe::required("push", move || {
            let live = subscription.is_live();
            async move { live }
        }),
        Probe::optional("postgres", move || {
            let ledger = ledger.clone();
            async move { ledger.ping().await }
        }),
    ])
}

impl Application {
    /// Validates the settings, binds the listener and starts every loop.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let verifier = settings.verifier()?;
        // A transition that frees an agent (accept, complete, decline, going available) offers
        // it the next waiting ticket, with the deployment's offer timeout.
        let store = Store::open(&settings.redis_url, &settings.namespace)
            .map_err(|e| ConfigError::new("REDIS_URL", e.to_string()))?
            .with_offer_timeout(settings.offer_timeout);
        match store.load_library().await {
            Ok(()) => {}
            Err(StoreError::Unavailable(e)) => {
                tracing::warn!(error = %e, "redis not reachable at start; will load the function library when it is");
            }
            Err(e) => return Err(StartupError::Library(e)),
        }
        let ledger = ledger::Ledger::open(&settings.database_url, &settings.namespace)
            .map_err(|e| ConfigError::new("DATABASE_URL", e.to_string()))?;
        let bind_error = |source| StartupError::Bind {
            addr: settings.agent_api_listen.clone(),
            source,
        };
        let listener = TcpListener::bind(&settings.agent_api_listen).map_err(bind_error)?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();

        let shutdown = CancellationToken::new();
        let instance = format!("gw-{}", uuid::Uuid::new_v4().simple());
        let (unreached, unreached_rx) = tokio::sync::mpsc::channel(1024);
        let hub = Hub::start_reporting(unreached);
        let gateway = web::Data::new(Gateway {
            store: store.clone(),
            verifier: verifier.clone(),
            hub: hub.clone(),
            instance: instance.clone(),
            grace: settings.disconnect_grace,
            origins: settings.agent_app_origins.clone(),
            shutdown: shutdown.clone(),
        });
        let subscription = push::Subscription::default();
        let readiness = web::Data::new(readiness(&store, &ledger, &subscription));
        let data = (
            web::Data::new(store.clone()),
            web::Data::new(verifier),
            web::Data::new(ledger),
            web::Data::new(PayRules {
                breaks_paid: settings.breaks_paid,
            }),
        );
        ws::register_metrics();
        let web_dir = settings.web_dir.clone();
        let server = HttpServer::new(move || {
            // Each worker its own Redis connection, driven on its own thread.
            let own = data.0.with_own_connection();
            let gateway = web::Data::new(Gateway {
                store: own.clone(),
                ..Gateway::clone(&gateway)
            });
            App::new()
                .app_data(web::Data::new(own))
                .app_data(data.1.clone())
                .app_data(data.2.clone())
                .app_data(data.3.clone())
                .app_data(gateway)
                .app_data(readiness.clone())
                .configure(health)
                .route("/metrics", web::get().to(http_kit::metrics))
                .configure(crate::docs::routes)
                .configure(|cfg| http_kit::web::app(cfg, "app", &web_dir))
                .service(
                    web::resource("/v1/agent/ws")
                        .route(web::get().to(ws::upgrade))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/v1/me")
                        .route(web::get().to(me::me))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/v1/me/shifts")
                        .route(web::get().to(me::shifts))
                        .default_service(web::to(method_not_allowed)),
                )
                .default_service(web::to(not_found))
        })
        .listen(listener)
        .map_err(bind_error)?
        .disable_signals()
        .shutdown_timeout(10)
        .run();

        let workers = vec![
            tokio::spawn(push::subscribe(
                store.clone(),
                hub.clone(),
                instance.clone(),
                subscription,
                shutdown.clone(),
            )),
            tokio::spawn(push::report_unreached(
                store.clone(),
                instance.clone(),
                settings.disconnect_grace,
                unreached_rx,
                shutdown.clone(),
            )),
            tokio::spawn(push::heartbeat(
                store,
                hub,
                instance.clone(),
                shutdown.clone(),
            )),
        ];
        tracing::info!(port, %instance, namespace = %settings.namespace, "agent-app-api listening");
        Ok(Self {
            port,
            instance,
            server,
            workers,
            shutdown,
        })
    }

    /// The port the HTTP server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// This instance's id in Redis.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Serves until `stop` resolves, then drains: sockets close with 1001, requests finish.
    pub async fn run_until_stopped(self, stop: impl Future<Output = ()>) -> std::io::Result<()> {
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        stop.await;
        tracing::info!("shutting down: closing agent connections");
        self.shutdown.cancel();
        handle.stop(true).await;
        for worker in self.workers {
            let _ = worker.await;
        }
        server.await.map_err(std::io::Error::other)?
    }
}
