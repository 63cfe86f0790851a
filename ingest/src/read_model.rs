//! The reading side of the CQL read model (the edge's order status API, the operator console): a session with the status API's prepared selects
//! ([`interchange_core::readmodel::statements`]), connected in the background (the edge starts
//! and ingests without CQL), answering with [`interchange_core::readmodel`]'s views.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use interchange_core::readmodel::{statements, Decimal, EventView, LookupView, OrderView};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlDecimal, CqlTimestamp};
use tokio_util::sync::CancellationToken;

/// Where the read model is and how to reach it.
#[derive(Debug, Clone)]
pub struct ReadModelConfig {
    pub nodes: Vec<String>,
    pub keyspace: String,
}

/// The read model once connected; empty until then.
pub type Slot = Arc<OnceLock<ReadModel>>;

/// The edge's CQL session and prepared reads, once connected.
pub struct ReadModel {
    session: Session,
    order: PreparedStatement,
    events: PreparedStatement,
    by_order_id: PreparedStatement,
    /// The console's search by creation time, prepared at its first use (the edge never needs it,
    /// so a keyspace migrated before the table existed still serves the status API).
    by_minute: tokio::sync::OnceCell<PreparedStatement>,
    keyspace: String,
}

impl std::fmt::Debug for ReadModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadModel").finish_non_exhaustive()
    }
}

/// [`statements::ORDER_VIEW_COLUMNS`] as the driver decodes them.
type OrderColumns = (
    String,
    String,
    i64,
    String,
    Option<CqlDecimal>,
    Option<CqlDecimal>,
    Option<CqlDecimal>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<CqlTimestamp>,
    Option<CqlTimestamp>,
    Option<CqlTimestamp>,
);

/// [`statements::EVENT_VIEW_COLUMNS`] as the driver decodes them.
type EventColumns =
    (i64, Option<CqlTimestamp>, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>);

/// [`statements::LOOKUP_VIEW_COLUMNS`] as the driver decodes them.
type LookupColumns = (String, Option<String>, Option<i64>, Option<CqlTimestamp>);

fn decimal(d: Option<CqlDecimal>) -> Option<Decimal> {
    d.map(|d| {
        let (unscaled, scale) = d.as_signed_be_bytes_slice_and_exponent();
        Decimal { unscaled: unscaled.to_vec(), scale }
    })
}

fn millis(t: Option<CqlTimestamp>) -> Option<i64> {
    t.map(|CqlTimestamp(ms)| ms)
}

fn order_view(c: OrderColumns) -> OrderView {
    let (
        order_id,
        status,
        version,
        currency,
        subtotal,
        discount,
        total,
        items,
        reference,
        failure,
        deadline,
        created,
        updated,
    ) = c;
    OrderView {
        order_id,
        status,
        version,
        currency,
        subtotal: decimal(subtotal),
        discount: decimal(discount),
        total: decimal(total),
        items_json: items,
        partner_reference: reference,
        failure_reason: failure,
        deadline: millis(deadline),
        created_at: millis(created),
        updated_at: millis(updated),
    }
}

fn event_view(c: EventColumns) -> EventView {
    let (version, at, from_status, to_status, event_id, event_type, detail) = c;
    EventView { version, at: millis(at), from_status, to_status, event_id, event_type, detail }
}

fn lookup_view(c: LookupColumns) -> LookupView {
    let (correlation_id, status, version, created) = c;
    LookupView { correlation_id, status, version, created_at: millis(created) }
}

impl ReadModel {
    async fn connect(config: &ReadModelConfig) -> Result<Self, String> {
        let session = SessionBuilder::new()
            .known_nodes(&config.nodes)
            .connection_timeout(Duration::from_secs(3))
            .build()
            .await
            .map_err(|e| e.to_string())?;
        let prepare = async |text: String| {
            let mut statement = session.prepare(text).await.map_err(|e| e.to_string())?;
            statement.set_is_idempotent(true);
            Ok::<_, String>(statement)
        };
        let ks = &config.keyspace;
        let order = prepare(statements::select_order(ks)).await?;
        let events = prepare(statements::select_events(ks)).await?;
        let by_order_id = prepare(statements::select_by_order_id(ks)).await?;
        Ok(Self { session, order, events, by_order_id, by_minute: tokio::sync::OnceCell::new(), keyspace: ks.clone() })
    }

    /// The orders of `partner` whose order id is `order_id` (at most `limit`).
    pub async fn by_order_id(&self, partner: &str, order_id: &str, limit: i32) -> Result<Vec<LookupView>, String> {
        let result = self
            .session
            .execute_unpaged(&self.by_order_id, (partner, order_id, limit))
            .await
            .map_err(|e| e.to_string())?;
        let rows = result.into_rows_result().map_err(|e| e.to_string())?;
        let iter = rows.rows::<LookupColumns>().map_err(|e| e.to_string())?;
        iter.map(|row| row.map(lookup_view)).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())
    }

    /// The orders of `partner` created in the minute starting at `minute` (epoch ms), at or after
    /// `from` and before `until`, newest first, whose latest status is `status` (any without):
    /// at most `want` of them, reading at most `budget` rows (paged). Returns them, the rows read
    /// and the creation time of the oldest row read.
    #[allow(clippy::too_many_arguments)]
    pub async fn by_minute(
        &self,
        partner: &str,
        minute: i64,
        from: i64,
        until: i64,
        status: Option<&str>,
        want: usize,
        budget: usize,
    ) -> Result<(Vec<LookupView>, usize, Option<i64>), String> {
        use futures::StreamExt;
        let statement = self
            .by_minute
            .get_or_try_init(|| async {
                let mut statement = self
                    .session
                    .prepare(statements::select_by_minute(&self.keyspace))
                    .await
                    .map_err(|e| format!("{e} (is `hub readmodel migrate` done?)"))?;
                statement.set_is_idempotent(true);
                statement.set_page_size(5_000);
                Ok::<_, String>(statement)
            })
            .await?;
        // Without a status every row read is one found: read no more than wanted.
        let limit = i32::try_from(if status.is_some() { budget } else { want.min(budget) }).unwrap_or(i32::MAX);
        let values = (partner, CqlTimestamp(minute), CqlTimestamp(from), CqlTimestamp(until), limit);
        let pager = self.session.execute_iter(statement.clone(), values).await.map_err(|e| e.to_string())?;
        let mut rows = pager.rows_stream::<LookupColumns>().map_err(|e| e.to_string())?;
        let (mut found, mut read, mut oldest) = (Vec::new(), 0, None);
        while let Some(row) = rows.next().await {
            let order = lookup_view(row.map_err(|e| e.to_string())?);
            read += 1;
            oldest = order.created_at;
            if status.is_none_or(|s| order.status.as_deref() == Some(s)) {
                found.push(order);
                if found.len() >= want {
                    break;
                }
            }
        }
        Ok((found, read, oldest))
    }

    /// The order `id` of `partner`, if the read model has it.
    pub async fn order(&self, partner: &str, id: &str) -> Result<Option<OrderView>, String> {
        let result = self.session.execute_unpaged(&self.order, (partner, id)).await.map_err(|e| e.to_string())?;
        let rows = result.into_rows_result().map_err(|e| e.to_string())?;
        Ok(rows.maybe_first_row::<OrderColumns>().map_err(|e| e.to_string())?.map(order_view))
    }

    /// The transitions of order `id` of `partner` below version `before`, newest first (at most `limit`).
    pub async fn events(&self, partner: &str, id: &str, before: i64, limit: i32) -> Result<Vec<EventView>, String> {
        let result = self
            .session
            .execute_unpaged(&self.events, (partner, id, before, limit))
            .await
            .map_err(|e| e.to_string())?;
        let rows = result.into_rows_result().map_err(|e| e.to_string())?;
        let iter = rows.rows::<EventColumns>().map_err(|e| e.to_string())?;
        iter.map(|row| row.map(event_view)).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())
    }
}

/// Connects in the background, retrying, so the edge starts (and ingests) without CQL.
pub fn connect_in_background(config: ReadModelConfig, slot: Slot, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut wait = Duration::from_millis(500);
        loop {
            match ReadModel::connect(&config).await {
                Ok(model) => {
                    let _ = slot.set(model);
                    tracing::info!(keyspace = %config.keyspace, "order status API connected to the read model");
                    return;
                }
                Err(error) => tracing::warn!(%error, "read model not reachable; the order status API answers 503"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(Duration::from_secs(10));
        }
    });
}
