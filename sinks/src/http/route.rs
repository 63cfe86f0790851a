//! Tenancy: an HTTP sink serves several partners, and each command goes to the one its `partner`
//! field names, never to another. A command for a partner this sink does not serve is left to the
//! sink of the topology that serves it, or, when none does, dead-lettered naming the partner,
//! contract, topic, partition and offset. Pure: no I/O.

use std::collections::BTreeSet;

use interchange_core::topology::{Sink, SinkParams, Topology};

/// Where a command goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// To the served partner at this index (its delivery stack and lane).
    Deliver(usize),
    /// Another sink of the topology delivers it, or its partner takes no deliveries (declared
    /// without `[partner.outbound]`, e.g. a shop that only posts): finished here, nothing sent.
    Elsewhere,
    /// No sink serves its partner: a dead letter with this cause.
    Unserved(String),
}

/// The (contract, partner) pairs `sink` finishes without sending: those other HTTP sinks of
/// `topology` deliver from `sink`'s input, and its commands for partners declared without
/// `[partner.outbound]` (they have no endpoint: a shop that takes no webhooks is not notified,
/// and its notifications are not dead letters). A partner the topology does not declare at all
/// stays unserved (a dead letter).
pub(crate) fn elsewhere(topology: &Topology, sink: &Sink) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    if let SinkParams::Http { commands, .. } = &sink.params {
        for partner in topology.partners.iter().filter(|p| p.outbound.is_none()) {
            out.extend(commands.iter().map(|c| (c.clone(), partner.name.clone())));
        }
    }
    for other in topology.sinks.iter().filter(|s| s.name != sink.name && s.input == sink.input) {
        if let SinkParams::Http { commands, .. } = &other.params {
            for partner in other.params.http_partners() {
                out.extend(commands.iter().map(|c| (c.clone(), partner.to_owned())));
            }
        }
    }
    out
}

/// Where a `contract` command for `partner`, read at `topic`/`partition`@`offset`, goes from a
/// sink serving `served`.
pub(crate) fn route(
    served: &[&str],
    elsewhere: &BTreeSet<(String, String)>,
    contract: &str,
    partner: &str,
    (topic, partition, offset): (&str, i32, i64),
) -> Route {
    if let Some(lane) = served.iter().position(|p| *p == partner) {
        return Route::Deliver(lane);
    }
    if elsewhere.contains(&(contract.to_owned(), partner.to_owned())) {
        return Route::Elsewhere;
    }
    Route::Unserved(format!(
        "{contract} for partner {partner:?}, which no sink of the topology serves for {contract} \
         (this one serves {served:?}); not delivered to any other partner: {topic}/{partition}@{offset}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_command_goes_to_its_own_partner_or_nowhere() {
        let served = ["acme-shop", "globex-shop"];
        let elsewhere: BTreeSet<(String, String)> =
            [("dispatch_command".to_owned(), "acme-erp".to_owned())].into_iter().collect();
        let at = ("orders.commands", 3, 17);
        assert_eq!(route(&served, &elsewhere, "notification_command", "acme-shop", at), Route::Deliver(0));
        assert_eq!(route(&served, &elsewhere, "notification_command", "globex-shop", at), Route::Deliver(1));
        assert_eq!(route(&served, &elsewhere, "dispatch_command", "acme-erp", at), Route::Elsewhere);
        let Route::Unserved(cause) = route(&served, &elsewhere, "notification_command", "initech-shop", at) else {
            panic!("an unserved partner is a dead letter");
        };
        for part in ["initech-shop", "notification_command", "orders.commands/3@17"] {
            assert!(cause.contains(part), "{part} in {cause}");
        }
        // Served elsewhere for another contract only: still nobody's for this one.
        assert!(matches!(route(&served, &elsewhere, "cancel_command", "acme-erp", at), Route::Unserved(_)));
    }
}
