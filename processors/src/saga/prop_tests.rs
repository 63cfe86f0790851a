//! Random event sequences against the saga's invariants.

use std::collections::HashMap;

use proptest::prelude::*;

use interchange_core::money::MAX_CENTS;

use super::*;

fn params() -> Params {
    Params {
        erp_partner: "erp".into(),
        erp_partner_by_shop: [("q".to_owned(), "erp-q".to_owned())].into_iter().collect(),
        discount_percent: 10,
        discount_min_total: Money(1_000),
        dispatch_deadline_ms: 100,
        history_limit: 64,
        applied_limit: 64,
    }
}

#[derive(Debug, Clone)]
enum Step {
    /// `shop`: the order's partner, `p` (default ERP) or `q` (its own ERP).
    Receive {
        id: u8,
        qty: i32,
        shop: bool,
    },
    /// `kind`: 0 a dispatch's result, 1 a notification's, 2 a cancel's. `from`: 0 the partner the
    /// dispatch went to, 1 `erp`, 2 `erp-q`, 3 the shop.
    Result {
        id: u8,
        outcome: u8,
        right_command: bool,
        kind: u8,
        from: u8,
    },
    Deadline {
        late: bool,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..4_u8, -1..4_i32, any::<bool>()).prop_map(|(id, qty, shop)| Step::Receive { id, qty, shop }),
        (0..6_u8, 0..4_u8, any::<bool>(), 0..3_u8, 0..4_u8).prop_map(|(id, outcome, right_command, kind, from)| {
            Step::Result { id, outcome, right_command, kind, from }
        }),
        any::<bool>().prop_map(|late| Step::Deadline { late }),
    ]
}

proptest! {
    #[test]
    fn invariants_hold_for_any_sequence(
        steps in proptest::collection::vec(step(), 1..24),
        stock_level in 0..4_i64,
        lag in 0..1_000_000_i64,
    ) {
        let inventory: HashMap<String, i64> = [("SKU".to_owned(), stock_level)].into_iter().collect();
        let p = params();
        let mut state: Option<OrderState> = None;
        let mut applied: Vec<String> = Vec::new();
        let mut dispatched = false;
        let mut delivered = false;
        let mut cancelled = false;
        let mut now = 0_i64;
        for s in steps {
            now += 7;
            let (event, id) = match s {
                Step::Receive { id, qty, shop } => {
                    let order = OrderReceived {
                        event_id: format!("recv-{id}"), correlation_id: "c".into(), order_id: "o".into(),
                        partner: if shop { "q".into() } else { "p".into() },
                        customer_id: "x".into(), items: vec![Line { sku: "SKU".into(), quantity: qty, unit_price: Money(700) }],
                        currency: "EUR".into(), channel: "WEB".into(), callback_url: None, received_at: Millis(now), attributes: Default::default(),
                    };
                    (Event::Received(order), format!("recv-{id}"))
                }
                Step::Result { id, outcome, right_command, kind, from } => {
                    let command_id = match (&state, right_command, kind) {
                        (Some(s), true, 2) => s.cancel_command_id.clone().unwrap_or_default(),
                        (Some(s), true, _) => s.dispatch_command_id.clone().unwrap_or_default(),
                        _ => "other".into(),
                    };
                    let command_type = ["dispatch_command", "notification_command", "cancel_command"][usize::from(kind)];
                    let sent_to = state.as_ref().and_then(|s| s.dispatch_partner.clone()).unwrap_or_else(|| "erp".into());
                    let shop = state.as_ref().map_or_else(|| "p".to_owned(), |s| s.partner.clone());
                    let partner = [sent_to, "erp".into(), "erp-q".into(), shop][usize::from(from)].clone();
                    let r = DeliveryResult {
                        event_id: format!("res-{id}"), command_id, correlation_id: "c".into(), partner,
                        command_type: command_type.into(),
                        outcome: ["DELIVERED", "REFUSED", "EXHAUSTED", "EXPIRED"][usize::from(outcome)].into(),
                        http_status: None, partner_reference: None, attempts: 1, detail: None, completed_at: Millis(now),
                    };
                    (Event::Delivered(r), format!("res-{id}"))
                }
                Step::Deadline { late } => {
                    let deadline = state.as_ref().and_then(|s| s.deadline).unwrap_or(Millis(0));
                    if late { now = now.max(deadline.0); }
                    let id = deadline_event_id("c", deadline);
                    (Event::DeadlineExpired { deadline }, id)
                }
            };
            let before = state.clone();
            // Records may be old (a backlog, an upstream timestamp): event time lags processing time.
            let at = Now { event: Millis(now - lag), processing: Millis(now) };
            let dispatch_delivered = matches!(&event, Event::Delivered(r) if r.command_type == "dispatch_command"
                && r.outcome == "DELIVERED" && before.as_ref().and_then(|b| b.dispatch_command_id.as_ref()) == Some(&r.command_id)
                && before.as_ref().and_then(|b| b.dispatch_partner.as_deref()) == Some(r.partner.as_str()));
            // Only the partner the dispatch went to, answering as the command it was sent as, counts.
            let foreign = matches!((&event, &before), (Event::Delivered(r), Some(b))
                if b.dispatch_partner.as_deref() != Some(r.partner.as_str())
                    || (b.dispatch_command_id.as_ref() == Some(&r.command_id) && r.command_type != "dispatch_command")
                    || (b.cancel_command_id.as_ref() == Some(&r.command_id) && r.command_type != "cancel_command"));
            let outcome = apply(state.as_ref(), &event, &id, at, &p, &inventory);
            if foreign || (before.is_some() && matches!(event, Event::Received(_))) {
                prop_assert!(!matches!(outcome, Ok(Outcome::Changed(_))), "{:?} changed the order", event);
            }
            match outcome {
                Ok(Outcome::Changed(t)) => {
                    // Terminal states are terminal: a compensated order only records its cancel.
                    if let Some(b) = before.as_ref().filter(|b| b.status.is_terminal()) {
                        prop_assert_eq!(b.status, Status::Compensated, "left a terminal state: {:?}", t.state.status);
                        prop_assert_eq!(t.state.status, Status::Compensated);
                    }
                    // No event applied twice.
                    prop_assert!(!applied.contains(&id), "event {id} applied twice");
                    applied.push(id.clone());
                    prop_assert!(t.state.version > before.as_ref().map_or(0, |b| b.version));
                    for action in &t.actions {
                        match action {
                            Action::Dispatch(d) => {
                                prop_assert!(!dispatched, "dispatched twice");
                                let shop = t.state.partner.as_str();
                                prop_assert_eq!(d.partner.as_str(), if shop == "q" { "erp-q" } else { "erp" });
                                prop_assert_eq!(t.state.dispatch_partner.as_deref(), Some(d.partner.as_str()));
                                dispatched = true;
                                // The whole deadline from now, whatever the record's own time.
                                prop_assert_eq!(d.deadline, Millis(now + p.dispatch_deadline_ms));
                            }
                            // A cancel only for a compensated order whose dispatch was accepted, once.
                            Action::Cancel(c) => {
                                prop_assert!(!cancelled, "cancelled twice");
                                cancelled = true;
                                prop_assert!(dispatch_delivered && before.as_ref().is_some_and(|b| b.status == Status::Compensated));
                                prop_assert_eq!(Some(&c.dispatch_command_id), t.state.dispatch_command_id.as_ref());
                                prop_assert_eq!(t.state.dispatch_partner.as_deref(), Some(c.partner.as_str()));
                            }
                            // Compensation only after a dispatch.
                            Action::ReleaseStock(_) => prop_assert!(dispatched, "compensated before any dispatch"),
                            _ => {}
                        }
                    }
                    prop_assert_eq!(t.state.total.0, t.state.subtotal.0 - t.state.discount.0);
                    delivered |= dispatch_delivered;
                    state = Some(t.state);
                }
                Ok(Outcome::Unchanged { .. }) | Err(_) => {}
            }
            // Never silent disagreement: a compensated order whose dispatch the partner accepted
            // has its cancel.
            if state.as_ref().is_some_and(|s| s.status == Status::Compensated) && delivered {
                prop_assert!(cancelled && state.as_ref().is_some_and(|s| s.cancel_command_id.is_some()));
            }
        }
    }
}

fn line() -> impl Strategy<Value = (i64, i32)> {
    // Prices anywhere in decimal(18,2) (biased to the top of the range), any positive quantity.
    let price = prop_oneof![0..=MAX_CENTS, (MAX_CENTS - 1_000)..=MAX_CENTS, 0..100_000_i64];
    let quantity = prop_oneof![1..=i32::MAX, 1..10_i32];
    (price, quantity)
}

proptest! {
    /// The totals are exact: an order is validated with the exact sum when it fits decimal(18,2)
    /// and rejected naming the field when it does not; never a panic, a wrap or a saturation.
    #[test]
    fn totals_are_exact_or_the_order_is_rejected(lines in proptest::collection::vec(line(), 1..8), percent in 0..=100_u8) {
        let mut p = params();
        p.discount_percent = percent;
        let items: Vec<Line> = lines.iter().enumerate()
            .map(|(i, (price, qty))| Line { sku: format!("SKU-{i}"), quantity: *qty, unit_price: Money(*price) })
            .collect();
        let inventory: HashMap<String, i64> = items.iter().map(|l| (l.sku.clone(), i64::MAX)).collect();
        let order = OrderReceived {
            event_id: "e".into(), correlation_id: "c".into(), order_id: "o".into(), partner: "p".into(),
            customer_id: "x".into(), items, currency: "EUR".into(), channel: "WEB".into(), callback_url: None,
            received_at: Millis(0), attributes: Default::default(),
        };
        let exact: i128 = lines.iter().map(|(price, qty)| i128::from(*price) * i128::from(*qty)).sum();
        let Ok(Outcome::Changed(t)) = apply(None, &Event::Received(order), "e", Now::at(Millis(0)), &p, &inventory) else {
            return Err(TestCaseError::fail("an order always changes the state"));
        };
        if exact <= i128::from(MAX_CENTS) {
            prop_assert_eq!(t.state.status, Status::Validated);
            prop_assert_eq!(i128::from(t.state.subtotal.0), exact);
            prop_assert!(t.state.discount.0 >= 0 && t.state.discount.0 <= t.state.subtotal.0);
            prop_assert_eq!(t.state.total.0, t.state.subtotal.0 - t.state.discount.0);
        } else {
            prop_assert_eq!(t.state.status, Status::Rejected);
            let reason = t.state.failure_reason.clone().unwrap_or_default();
            prop_assert!(reason.contains("subtotal"), "{}", reason);
            prop_assert!(t.actions.iter().any(|a| matches!(a, Action::Notify(n) if n.event_type == "order.rejected")));
        }
    }

    #[test]
    fn money_in_range_prints_and_parses_back(cents in -MAX_CENTS..=MAX_CENTS) {
        prop_assert_eq!(Money::parse(&Money(cents).to_string()), Some(Money(cents)));
    }
}
