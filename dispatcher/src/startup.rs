//! Building and running the dispatcher: binds its own listener (port 0 in tests), starts the
//! event consumer and the timers, and stops all of them on the shutdown signal it is given.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use http_kit::{health, not_found, BodyLimit, Probe, Readiness};
use ledger::{Ledger, PayRules};
use shared::config::{ConfigError, Settings};
use shared::store::{Store, StoreError};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::geofence::Geofences;
use crate::matcher::Matcher;
use crate::outbound::sse::Live;
use crate::outbound::waits::Waits;
use crate::outbound::Publisher;
use crate::routes;
use crate::timers::Timers;
use crate::webhooks::deliver::Deliverer;
use crate::webhooks::fanout::Fanout;

/// Why the dispatcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A configuration value is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listen address cannot be bound.
    #[error("DISPATCHER_LISTEN: cannot listen on {addr}: {source}")]
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

/// A running dispatcher.
pub struct Application {
    port: u16,
    server: Server,
    workers: Vec<JoinHandle<()>>,
    shutdown: CancellationToken,
}

/// What `/readyz` checks: Redis (needed to dispatch) and PostgreSQL (needed only by payroll).
fn readiness(store: &Store, ledger: &Ledger) -> Readiness {
    let (store, ledger) = (store.clone(), ledger.clone());
    Readiness(vec![
        Probe::required("redis", move || {
            let store = store.clone();
            async move { store.takes_writes().await }
        }),
        Probe::optional("postgres", {
            let ledger = ledger.clone();
            move || {
                let ledger = ledger.clone();
                async move { ledger.ping().await }
            }
        }),
        Probe::report("ledger", move || {
            let ledger = ledger.clone();
            async move { ledger.gap_report().await }
        }),
    ])
}

impl Application {
    /// Validates the settings, binds the listener and starts every loop.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let verifier = settings.verifier()?;
        let fences = match &settings.geofences_file {
            Some(path) => {
                Geofences::load(path).map_err(|e| ConfigError::new("GEOFENCES_FILE", e))?
            }
            None => Geofences::default(),
        };
        let store = Store::open(&settings.redis_url, &settings.namespace)
            .map_err(|e| ConfigError::new("REDIS_URL", e.to_string()))?
            .with_offer_timeout(settings.offer_timeout)
            .with_min_replicas(settings.redis_min_replicas);
        match store.load_library().await {
            Ok(()) => {}
            Err(StoreError::Unavailable(e)) => {
                tracing::warn!(error = %e, "redis not reachable at start; will load the function library when it is");
            }
            Err(e) => return Err(StartupError::Library(e)),
        }
        let ledger = ledger::Ledger::open(&settings.database_url, &settings.namespace)
            .map_err(|e| ConfigError::new("DATABASE_URL", e.to_string()))?
            .with_stream_retention(settings.event_retention)
            .with_backlog_max(settings.ledger_backlog_max)
            .with_breaks_paid(settings.breaks_paid);
        let listener = TcpListener::bind(&settings.dispatcher_listen).map_err(|source| {
            StartupError::Bind {
                addr: settings.dispatcher_listen.clone(),
                source,
            }
        })?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let matcher = Matcher::new(store.clone());
        let waits = Waits::default();
        let publisher = Publisher::new(store.clone(), ledger.clone(), waits.clone());
        let live = Live::new(store.clone(), publisher.clone(), waits.clone());
        let queued = Arc::new(Notify::new());

        let readiness = web::Data::new(readiness(&store, &ledger));
        let data = (
            web::Data::new(store.clone()),
            web::Data::new(verifier),
            web::Data::new(fences),
            web::Data::new(BodyLimit::default()),
            web::Data::new(ledger.clone()),
            web::Data::new(PayRules {
                breaks_paid: settings.breaks_paid,
            }),
            web::Data::new(live.clone()),
            web::Data::new(waits),
        );
        let web_dir = settings.web_dir.clone();
        let server = HttpServer::new(move || {
            // Each worker its own Redis connection, driven on its own thread.
            let own = data.0.with_own_connection();
            App::new()
                .app_data(web::Data::new(own.clone()))
                .app_data(data.1.clone())
                .app_data(data.2.clone())
                .app_data(data.3.clone())
                .app_data(data.4.clone())
                .app_data(data.5.clone())
                .app_data(data.6.clone())
                .app_data(data.7.clone())
                .app_data(web::Data::new(Matcher::new(own)))
                .app_data(readiness.clone())
                .configure(health)
                .configure(routes::configure)
                .configure(|cfg| http_kit::web::app(cfg, "console", &web_dir))
                .default_service(web::to(not_found))
        })
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            addr: settings.dispatcher_listen.clone(),
            source,
        })?
        .disable_signals()
        .shutdown_timeout(10)
        .run();

        let shutdown = CancellationToken::new();
        let holder = format!("dispatcher-{}", uuid::Uuid::new_v4().simple());
        let writer = ledger.run_writer(store.clone(), holder.clone(), shutdown.clone());
        let fanout = Fanout {
            store: store.clone(),
            publisher,
            consumer: holder,
            backlog_max: settings.webhook_backlog_max,
            queued: queued.clone(),
        };
        let deliverer = Deliverer::new(
            store.clone(),
            settings.webhook_retry_schedule.clone(),
            queued,
        );
        let timers = Timers {
            store,
            matcher: matcher.clone(),
            missed_before_away: settings.missed_offers_before_away,
            grace: settings.disconnect_grace,
            ticket_retention: settings.ticket_retention,
        };
        let mut workers = vec![
            tokio::spawn(timers.run(shutdown.clone())),
            tokio::spawn(writer),
            tokio::spawn(live.run(shutdown.clone())),
            tokio::spawn(fanout.run(shutdown.clone())),
            tokio::spawn(deliverer.run(shutdown.clone())),
        ];
        for _ in 0..crate::matcher::ROUTERS {
            workers.push(tokio::spawn(matcher.clone().run(shutdown.clone())));
        }
        tracing::info!(port, namespace = %settings.namespace, "dispatcher listening");
        Ok(Self {
            port,
            server,
            workers,
            shutdown,
        })
    }

    /// The port the HTTP server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `stop` resolves, then drains: in-flight requests finish, loops stop.
    pub async fn run_until_stopped(self, stop: impl Future<Output = ()>) -> std::io::Result<()> {
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        stop.await;
        tracing::info!("shutting down: draining requests");
        handle.stop(true).await;
        self.shutdown.cancel();
        for worker in self.workers {
            let _ = worker.await;
        }
        server.await.map_err(std::io::Error::other)?
    }
}
