//! The edge's routes: one POST (and its `:batch`) per topology route, the order status API beside
//! every route that takes orders, plus health, metrics and the OpenAPI document.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;

use crate::state::{Gate, Intake, RouteSpec, RouterState, ORDER_CONTRACT};
use crate::{handlers, health, order_lookup, orders};

/// The router of `routes` over `state`; `tls`: the edge terminates TLS itself.
pub(crate) fn router(routes: &[Arc<RouteSpec>], state: RouterState, tls: bool) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi));
    let by_path: HashMap<String, Arc<RouteSpec>> = routes.iter().map(|r| (r.path.clone(), Arc::clone(r))).collect();
    for (path, route) in by_path {
        if route.contract == ORDER_CONTRACT {
            let base: Arc<str> = Arc::from(path.as_str());
            let for_events = Arc::clone(&base);
            router = router
                .route(
                    &format!("{path}/{{id}}"),
                    get(move |gate, reads, connect, id, headers| {
                        orders::status(gate, reads, connect, id, headers, Arc::clone(&base))
                    }),
                )
                .route(
                    &format!("{path}/{{id}}/events"),
                    get(move |gate, reads, connect, id, page, headers| {
                        orders::events(gate, reads, connect, id, page, headers, Arc::clone(&for_events))
                    }),
                );
        }
        let single = Arc::clone(&route);
        let mut methods = post(
            move |gate: State<Arc<Gate>>,
                  intake: State<Arc<Intake>>,
                  connect: ConnectInfo<SocketAddr>,
                  headers: HeaderMap,
                  body: Body| {
                handlers::accept(gate, intake, connect, headers, body, Arc::clone(&single))
            },
        );
        if route.contract == ORDER_CONTRACT {
            // GET <route>?order_id=: an order by the partner's own order id.
            let base: Arc<str> = Arc::from(path.as_str());
            methods = methods.get(move |gate, reads, connect, query, headers| {
                order_lookup::lookup(gate, reads, connect, query, headers, Arc::clone(&base))
            });
        }
        router = router.route(&path, methods);
        router = router.route(
            &format!("{path}:batch"),
            post(
                move |gate: State<Arc<Gate>>,
                      intake: State<Arc<Intake>>,
                      connect: ConnectInfo<SocketAddr>,
                      headers: HeaderMap,
                      body: Body| {
                    handlers::batch(gate, intake, connect, headers, body, Arc::clone(&route))
                },
            ),
        );
    }
    router
        .fallback(handlers::not_found)
        .layer(axum::middleware::from_fn_with_state(tls, handlers::common_headers))
        .with_state(state)
}
