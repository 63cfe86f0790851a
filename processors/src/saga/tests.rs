//! Every transition and every rejection of the saga, asserted on the actions.

use std::collections::HashMap;

use interchange_core::money::MAX_CENTS;

use super::history::derive_id;
use super::*;

fn params() -> Params {
    Params {
        erp_partner: "acme-erp".into(),
        erp_partner_by_shop: [("globex-shop".to_owned(), "globex-erp".to_owned())].into_iter().collect(),
        discount_percent: 5,
        discount_min_total: Money(50_000),
        dispatch_deadline_ms: 300_000,
        history_limit: 16,
        applied_limit: 32,
    }
}

fn stock(levels: &[(&str, i64)]) -> HashMap<String, i64> {
    levels.iter().map(|(s, q)| ((*s).to_owned(), *q)).collect()
}

fn order(lines: &[(&str, i32, &str)]) -> OrderReceived {
    OrderReceived {
        event_id: "e-1".into(),
        correlation_id: "c-1".into(),
        order_id: "A-1".into(),
        partner: "acme-shop".into(),
        customer_id: "cust-1".into(),
        items: lines
            .iter()
            .map(|(sku, q, p)| Line { sku: (*sku).into(), quantity: *q, unit_price: Money::parse(p).expect("price") })
            .collect(),
        currency: "BRL".into(),
        channel: "WEB".into(),
        callback_url: Some("https://shop.example/hook".into()),
        received_at: Millis(1_000),
        attributes: Default::default(),
    }
}

fn changed(outcome: Result<Outcome, Rejection>) -> Transition {
    match outcome {
        Ok(Outcome::Changed(t)) => *t,
        other => panic!("expected a change, got {other:?}"),
    }
}

fn validated() -> Transition {
    let o = order(&[("SKU-1", 2, "300.00"), ("SKU-2", 1, "10.50")]);
    changed(apply(
        None,
        &Event::Received(o),
        "e-1",
        Now::at(Millis(1_000)),
        &params(),
        &stock(&[("SKU-1", 5), ("SKU-2", 1)]),
    ))
}

/// A notification's result for `state` (from its shop): the saga does not wait for it.
fn notification_result(state: &OrderState) -> DeliveryResult {
    let mut r = result(state, "DELIVERED");
    r.command_id = derive_id("e-1", "order.validated");
    r.command_type = "notification_command".into();
    r.partner = state.partner.clone();
    r
}

fn result(state: &OrderState, outcome: &str) -> DeliveryResult {
    DeliveryResult {
        event_id: format!("r-{outcome}"),
        command_id: state.dispatch_command_id.clone().expect("dispatched"),
        correlation_id: state.correlation_id.clone(),
        partner: "acme-erp".into(),
        command_type: "dispatch_command".into(),
        outcome: outcome.into(),
        http_status: Some(if outcome == "DELIVERED" { 201 } else { 422 }),
        partner_reference: (outcome == "DELIVERED").then(|| "ERP-77".into()),
        attempts: 1,
        detail: None,
        completed_at: Millis(2_000),
    }
}

#[test]
fn money_parses_prints_and_takes_percentages() {
    assert_eq!(Money::parse("129.90"), Some(Money(12_990)));
    assert_eq!(Money::parse("5"), Some(Money(500)));
    assert_eq!(Money::parse("-0.01"), Some(Money(-1)));
    assert_eq!(Money::parse("1.234"), None);
    assert_eq!(Money(12_990).to_string(), "129.90");
    assert_eq!(Money(-1).to_string(), "-0.01");
    assert_eq!(Money(61_050).cents().checked_percent(5), Some(interchange_core::money::Cents(3_053)));
}

#[test]
fn a_valid_order_in_stock_is_validated_discounted_and_dispatched() {
    let t = validated();
    assert_eq!(t.state.status, Status::Validated);
    assert_eq!(t.state.subtotal, Money(61_050));
    assert_eq!(t.state.discount, Money(3_053));
    assert_eq!(t.state.total, Money(57_997));
    assert_eq!(t.state.version, 2);
    assert_eq!(t.state.deadline, Some(Millis(301_000)));
    let history: Vec<(&str, &str)> = t.state.history.iter().map(|h| (h.from.as_str(), h.to.as_str())).collect();
    assert_eq!(history, [("UNKNOWN", "RECEIVED"), ("RECEIVED", "VALIDATED")]);
    assert_eq!(t.actions.len(), 2);
    let Action::Validated(v) = &t.actions[0] else { panic!("{:?}", t.actions) };
    assert_eq!((v.subtotal, v.discount, v.total), (Money(61_050), Money(3_053), Money(57_997)));
    let Action::Dispatch(d) = &t.actions[1] else { panic!("{:?}", t.actions) };
    assert_eq!(d.partner, "acme-erp");
    assert_eq!(d.total, Money(57_997));
    assert_eq!(Some(&d.command_id), t.state.dispatch_command_id.as_ref());
    assert_eq!(d.command_id, derive_id("e-1", "dispatch"), "ids are derived, so a redo writes the same command");
}

#[test]
fn no_discount_below_the_minimum() {
    let o = order(&[("SKU-1", 1, "100.00")]);
    let t = changed(apply(None, &Event::Received(o), "e-1", Now::at(Millis(1)), &params(), &stock(&[("SKU-1", 1)])));
    assert_eq!((t.state.discount, t.state.total), (Money(0), Money(10_000)));
}

#[test]
fn out_of_stock_is_rejected_and_notified() {
    let o = order(&[("SKU-1", 2, "1.00"), ("SKU-1", 2, "1.00"), ("SKU-9", 1, "1.00")]);
    let t = changed(apply(None, &Event::Received(o), "e-1", Now::at(Millis(1)), &params(), &stock(&[("SKU-1", 3)])));
    assert_eq!(t.state.status, Status::Rejected);
    assert_eq!(t.state.failure_reason.as_deref(), Some("not enough stock of SKU-1, SKU-9"));
    let [Action::Rejected(r), Action::Notify(n)] = t.actions.as_slice() else { panic!("{:?}", t.actions) };
    assert_eq!(r.reason, "OUT_OF_STOCK");
    assert_eq!((n.event_type.as_str(), n.status), ("order.rejected", Status::Rejected));
    assert_eq!(n.callback_url.as_deref(), Some("https://shop.example/hook"));
    let payload: serde_json::Value = serde_json::from_str(&n.payload_json).expect("json");
    assert_eq!(payload["status"], "REJECTED");
}

#[test]
fn invalid_orders_are_rejected() {
    for (lines, currency, why) in [
        (vec![], "BRL", "at least one line"),
        (vec![("SKU-1", 0, "1.00")], "BRL", "quantity 0"),
        (vec![("SKU-1", 1, "-1.00")], "BRL", "negative price"),
        (vec![("SKU-1", 1, "1.00")], "reais", "ISO 4217"),
    ] {
        let mut o = order(&lines);
        o.currency = currency.into();
        let t =
            changed(apply(None, &Event::Received(o), "e-1", Now::at(Millis(1)), &params(), &stock(&[("SKU-1", 9)])));
        assert_eq!(t.state.status, Status::Rejected);
        assert!(t.state.failure_reason.as_deref().is_some_and(|r| r.contains(why)), "{:?}", t.state.failure_reason);
        assert!(matches!(&t.actions[0], Action::Rejected(r) if r.reason == "INVALID"));
    }
}

#[test]
fn a_delivered_dispatch_completes_the_order_and_notifies_the_client() {
    let v = validated().state;
    let r = result(&v, "DELIVERED");
    let t =
        changed(apply(Some(&v), &Event::Delivered(r), "r-DELIVERED", Now::at(Millis(2_000)), &params(), &stock(&[])));
    assert_eq!(t.state.status, Status::Completed);
    assert_eq!(t.state.partner_reference.as_deref(), Some("ERP-77"));
    assert_eq!(t.state.deadline, None);
    assert_eq!(t.state.version, 4);
    let tail: Vec<&str> = t.state.history.iter().skip(2).map(|h| h.to.as_str()).collect();
    assert_eq!(tail, ["SENT_TO_PARTNER", "COMPLETED"]);
    let [Action::Notify(n)] = t.actions.as_slice() else { panic!("{:?}", t.actions) };
    assert_eq!((n.event_type.as_str(), n.status), ("order.completed", Status::Completed));
}

#[test]
fn a_refused_dispatch_is_compensated() {
    let v = validated().state;
    for outcome in ["REFUSED", "EXHAUSTED"] {
        let r = result(&v, outcome);
        let t = changed(apply(Some(&v), &Event::Delivered(r), "r-x", Now::at(Millis(2_000)), &params(), &stock(&[])));
        assert_eq!(t.state.status, Status::Compensated);
        let [Action::ReleaseStock(s), Action::Rejected(rej), Action::Notify(n)] = t.actions.as_slice() else {
            panic!("{:?}", t.actions)
        };
        assert_eq!(
            s.items,
            vec![StockLine { sku: "SKU-1".into(), quantity: 2 }, StockLine { sku: "SKU-2".into(), quantity: 1 }]
        );
        assert_eq!(rej.reason, "PARTNER_REFUSED");
        assert_eq!((n.event_type.as_str(), n.status), ("order.failed", Status::Compensated));
        let tail: Vec<&str> = t.state.history.iter().skip(2).map(|h| h.to.as_str()).collect();
        assert_eq!(tail, ["COMPENSATING", "COMPENSATED"]);
    }
}

#[test]
fn an_expired_deadline_is_compensated_once() {
    let v = validated().state;
    let deadline = v.deadline.expect("deadline");
    let id = deadline_event_id(&v.correlation_id, deadline);
    let early = apply(
        Some(&v),
        &Event::DeadlineExpired { deadline },
        &id,
        Now::at(Millis(deadline.0 - 1)),
        &params(),
        &stock(&[]),
    );
    assert_eq!(early, Ok(Outcome::Unchanged { reason: "deadline no longer pending" }));
    let t =
        changed(apply(Some(&v), &Event::DeadlineExpired { deadline }, &id, Now::at(deadline), &params(), &stock(&[])));
    assert_eq!(t.state.status, Status::Compensated);
    assert!(matches!(&t.actions[1], Action::Rejected(r) if r.reason == "DEADLINE_EXPIRED"));
    let again =
        apply(Some(&t.state), &Event::DeadlineExpired { deadline }, &id, Now::at(deadline), &params(), &stock(&[]));
    assert!(matches!(again, Ok(Outcome::Unchanged { .. })));
}

#[test]
fn repeats_late_results_and_other_results_change_nothing() {
    let v = validated().state;
    let received = Event::Received(order(&[("SKU-1", 1, "1.00")]));
    assert_eq!(
        apply(Some(&v), &received, "e-1", Now::at(Millis(5)), &params(), &stock(&[])),
        Ok(Outcome::Unchanged { reason: "event already applied" })
    );
    let notification = notification_result(&v);
    assert!(matches!(
        apply(Some(&v), &Event::Delivered(notification), "n-1", Now::at(Millis(5)), &params(), &stock(&[])),
        Ok(Outcome::Unchanged { .. })
    ));
    let mut stray = notification_result(&v);
    stray.command_id = "someone-else".into();
    assert_eq!(
        apply(Some(&v), &Event::Delivered(stray), "s-1", Now::at(Millis(5)), &params(), &stock(&[])),
        Ok(Outcome::Unchanged { reason: "result of a command the saga does not wait for" })
    );
    let done = changed(apply(
        Some(&v),
        &Event::Delivered(result(&v, "DELIVERED")),
        "r-1",
        Now::at(Millis(5)),
        &params(),
        &stock(&[]),
    ))
    .state;
    let late = result(&v, "REFUSED");
    assert_eq!(
        apply(Some(&done), &Event::Delivered(late), "r-2", Now::at(Millis(6)), &params(), &stock(&[])),
        Ok(Outcome::Unchanged { reason: "order already finished" })
    );
}

#[test]
fn rejections_are_for_the_dead_letter_topic() {
    let v = validated().state;
    let second = Event::Received(order(&[("SKU-1", 1, "1.00")]));
    let refused = apply(Some(&v), &second, "e-2", Now::at(Millis(5)), &params(), &stock(&[]));
    assert_eq!(
        refused,
        Err(Rejection::AlreadyExists {
            correlation_id: "c-1".into(),
            partner: "acme-shop".into(),
            order_id: "A-1".into(),
            second_order_id: "A-1".into(),
            event_id: "e-2".into(),
        })
    );
    assert_eq!(
        refused.expect_err("refused").to_string(),
        "correlation id c-1 already holds order A-1 of partner acme-shop: a second order_received (event e-2, \
         order A-1) is refused, the first order is unchanged"
    );
    let orphan = Event::Delivered(result(&v, "DELIVERED"));
    assert_eq!(
        apply(None, &orphan, "r-1", Now::at(Millis(5)), &params(), &stock(&[])),
        Err(Rejection::NoSuchOrder { event_type: "delivery_result" })
    );
    assert_eq!(
        apply(None, &Event::DeadlineExpired { deadline: Millis(1) }, "d", Now::at(Millis(5)), &params(), &stock(&[])),
        Err(Rejection::NoSuchOrder { event_type: "deadline_expired" })
    );
}

#[test]
fn history_and_applied_ids_are_bounded() {
    let mut p = params();
    p.history_limit = 3;
    p.applied_limit = 1;
    let o = order(&[("SKU-1", 1, "1.00")]);
    let v = changed(apply(None, &Event::Received(o), "e-1", Now::at(Millis(1)), &p, &stock(&[("SKU-1", 1)]))).state;
    let done = changed(apply(
        Some(&v),
        &Event::Delivered(result(&v, "DELIVERED")),
        "r-1",
        Now::at(Millis(2)),
        &p,
        &stock(&[]),
    ))
    .state;
    assert_eq!(done.history.len(), 3);
    assert_eq!(done.history[0].to, "VALIDATED");
    assert_eq!(done.applied_event_ids, ["r-1"]);
    assert_eq!(done.version, 4, "the version counts every transition, not just the kept ones");
}

#[test]
fn an_order_whose_subtotal_the_contract_cannot_carry_is_rejected_naming_the_field() {
    // The order: each price fits decimal(18,2), their sum has 19 digits.
    let o = order(&[("SKU-1", 2, "9999999999999999.99")]);
    let t = changed(apply(None, &Event::Received(o), "e-1", Now::at(Millis(1)), &params(), &stock(&[("SKU-1", 5)])));
    assert_eq!(t.state.status, Status::Rejected);
    let reason = t.state.failure_reason.clone().unwrap_or_default();
    assert!(reason.contains("subtotal 19999999999999999.98 has 19 digits"), "{reason}");
    assert_eq!((t.state.subtotal, t.state.discount, t.state.total), (Money(0), Money(0), Money(0)));
    let [Action::Rejected(r), Action::Notify(n)] = t.actions.as_slice() else { panic!("{:?}", t.actions) };
    assert_eq!((r.reason.as_str(), r.detail.as_str()), ("INVALID", reason.as_str()));
    assert_eq!((n.event_type.as_str(), n.status), ("order.rejected", Status::Rejected));
}

#[test]
fn a_product_past_i64_is_rejected_not_wrapped() {
    // 9999999999999999.99 × i32::MAX overflows i64 (it saturated or wrapped before).
    let o = order(&[("SKU-1", i32::MAX, "9999999999999999.99"), ("SKU-2", 1, "1.00")]);
    let t = changed(apply(
        None,
        &Event::Received(o),
        "e-1",
        Now::at(Millis(1)),
        &params(),
        &stock(&[("SKU-1", i64::MAX), ("SKU-2", 1)]),
    ));
    assert_eq!(t.state.status, Status::Rejected);
    assert!(t.state.failure_reason.as_deref().is_some_and(|r| r.contains("subtotal")), "{:?}", t.state.failure_reason);
}

#[test]
fn the_largest_carried_subtotal_is_validated() {
    let o = order(&[("SKU-1", 1, "9999999999999998.99"), ("SKU-2", 1, "1.00")]);
    let t = changed(apply(
        None,
        &Event::Received(o),
        "e-1",
        Now::at(Millis(1)),
        &params(),
        &stock(&[("SKU-1", 1), ("SKU-2", 1)]),
    ));
    assert_eq!(t.state.status, Status::Validated);
    assert_eq!(t.state.subtotal, Money(MAX_CENTS));
    assert_eq!(t.state.total.0, t.state.subtotal.0 - t.state.discount.0);
}

#[test]
fn money_refuses_amounts_past_decimal_18_2() {
    assert_eq!(Money::parse("9999999999999999.99"), Some(Money(MAX_CENTS)));
    assert_eq!(Money::parse("10000000000000000.00"), None);
    assert_eq!(Money::parse("99999999999999999999"), None);
}

#[test]
fn an_old_record_gets_the_whole_deadline_from_processing_time() {
    // An upstream record (or a backlog) stamped long before the processor reads it.
    let o = order(&[("SKU-1", 1, "10.00")]);
    let at = Now { event: Millis(1_000), processing: Millis(50_000_000) };
    let t = changed(apply(None, &Event::Received(o), "e-1", at, &params(), &stock(&[("SKU-1", 1)])));
    let deadline = Millis(50_000_000 + params().dispatch_deadline_ms);
    assert_eq!(t.state.deadline, Some(deadline));
    let Some(Action::Dispatch(d)) = t.actions.iter().find(|a| matches!(a, Action::Dispatch(_))) else {
        panic!("{:?}", t.actions)
    };
    assert_eq!((d.deadline, d.issued_at), (deadline, Millis(1_000)), "deadline on processing time, event time kept");
    assert!(t.state.history.iter().all(|h| h.at == Millis(1_000)), "the history keeps event time");
    // Once the event-time deadline is past, the timer still waits for the processing-time one.
    let id = deadline_event_id(&t.state.correlation_id, deadline);
    let expire = |now: i64| {
        apply(Some(&t.state), &Event::DeadlineExpired { deadline }, &id, Now::at(Millis(now)), &params(), &stock(&[]))
    };
    assert_eq!(
        expire(1_000 + params().dispatch_deadline_ms),
        Ok(Outcome::Unchanged { reason: "deadline no longer pending" })
    );
    assert_eq!(changed(expire(deadline.0)).state.status, Status::Compensated);
}

#[test]
fn an_expired_dispatch_is_compensated_as_a_deadline() {
    let v = validated().state;
    let t = changed(apply(
        Some(&v),
        &Event::Delivered(result(&v, "EXPIRED")),
        "r-x",
        Now::at(Millis(2_000)),
        &params(),
        &stock(&[]),
    ));
    assert_eq!(t.state.status, Status::Compensated);
    assert!(t.state.failure_reason.as_deref().is_some_and(|r| r.contains("expired before acme-erp saw it")), "{t:?}");
    assert!(matches!(&t.actions[1], Action::Rejected(r) if r.reason == "DEADLINE_EXPIRED"));
    assert!(matches!(&t.actions[2], Action::Notify(n) if n.event_type == "order.failed"));
}

#[test]
fn a_dispatch_delivered_after_compensation_is_cancelled_exactly_once() {
    let v = validated().state;
    let deadline = v.deadline.expect("deadline");
    let id = deadline_event_id(&v.correlation_id, deadline);
    let none = stock(&[]);
    let c =
        changed(apply(Some(&v), &Event::DeadlineExpired { deadline }, &id, Now::at(deadline), &params(), &none)).state;
    let late = result(&c, "DELIVERED");
    let later = Now::at(Millis(deadline.0 + 10));
    let t = changed(apply(Some(&c), &Event::Delivered(late.clone()), "r-late", later, &params(), &none));
    assert_eq!(t.state.status, Status::Compensated, "the client's answer stands");
    assert_eq!(t.state.version, c.version + 1);
    let [Action::Cancel(cancel)] = t.actions.as_slice() else { panic!("one cancel, nothing else: {:?}", t.actions) };
    assert_eq!(Some(&cancel.dispatch_command_id), v.dispatch_command_id.as_ref());
    assert_eq!((cancel.partner.as_str(), cancel.partner_reference.as_deref()), ("acme-erp", Some("ERP-77")));
    assert_eq!(t.state.cancel_command_id.as_ref(), Some(&cancel.command_id));
    assert_eq!(cancel.command_id, derive_id(&late.command_id, "cancel"), "the same cancel on every redo");
    let step = t.state.history.last().expect("step");
    assert_eq!((step.from.as_str(), step.to.as_str()), ("COMPENSATED", "COMPENSATED"));
    assert!(step.detail.as_deref().is_some_and(|d| d.contains("cancel requested")), "{step:?}");
    // The same result again, or another success for the dispatch: no second cancel.
    let s = &t.state;
    assert!(matches!(
        apply(Some(s), &Event::Delivered(late.clone()), "r-late", later, &params(), &none),
        Ok(Outcome::Unchanged { .. })
    ));
    assert!(matches!(
        apply(Some(s), &Event::Delivered(late), "r-again", later, &params(), &none),
        Ok(Outcome::Unchanged { .. })
    ));
    // A late failure of the dispatch changes nothing.
    let exhausted = result(&c, "EXHAUSTED");
    assert!(matches!(
        apply(Some(&c), &Event::Delivered(exhausted), "r-ex", later, &params(), &none),
        Ok(Outcome::Unchanged { .. })
    ));
    // The cancel's own result is recorded, once.
    let mut answer = result(s, "DELIVERED");
    answer.command_id.clone_from(&cancel.command_id);
    answer.command_type = "cancel_command".into();
    let done = changed(apply(Some(s), &Event::Delivered(answer.clone()), "r-cancel", later, &params(), &none));
    assert!(done.actions.is_empty());
    assert_eq!((done.state.status, done.state.cancel_outcome.as_deref()), (Status::Compensated, Some("DELIVERED")));
    assert!(matches!(
        apply(Some(&done.state), &Event::Delivered(answer), "r-cancel-2", later, &params(), &none),
        Ok(Outcome::Unchanged { .. })
    ));
}

/// The foreign result's mismatch and cause, or a panic naming what happened instead.
fn foreign(outcome: Result<Outcome, Rejection>) -> (Mismatch, String) {
    match outcome {
        Err(Rejection::ForeignResult { mismatch, detail }) => (mismatch, detail),
        other => panic!("expected a foreign result, got {other:?}"),
    }
}

#[test]
fn a_result_counts_only_from_the_partner_and_command_type_the_dispatch_was_sent_as() {
    let v = validated().state;
    assert_eq!(v.dispatch_partner.as_deref(), Some("acme-erp"), "the state records where the dispatch went");
    let apply_at = |state: &OrderState, r: DeliveryResult, id: &str| {
        apply(Some(state), &Event::Delivered(r), id, Now::at(Millis(2_000)), &params(), &stock(&[]))
    };
    // The dispatch's command id, from another partner: a success or a failure, neither counts.
    for (partner, outcome) in [("globex-erp", "DELIVERED"), ("acme-shop", "REFUSED"), ("acme-erp ", "EXHAUSTED")] {
        let mut r = result(&v, outcome);
        r.partner = partner.into();
        let (mismatch, detail) = foreign(apply_at(&v, r.clone(), "f-1"));
        assert_eq!(mismatch, Mismatch::Partner);
        assert_eq!(
            detail,
            format!(
                "result from partner {partner} for a dispatch sent to acme-erp (command {}, correlation id c-1): \
                 not counted, the order is unchanged",
                r.command_id
            )
        );
    }
    // The dispatch's command id and partner under another command type.
    for command_type in ["notification_command", "cancel_command", "Dispatch_Command"] {
        let mut r = result(&v, "DELIVERED");
        r.command_type = command_type.into();
        let (mismatch, detail) = foreign(apply_at(&v, r, "f-2"));
        assert_eq!(mismatch, Mismatch::CommandType);
        assert!(detail.starts_with(&format!("a {command_type} result names the order's dispatch_command")), "{detail}");
    }
    // A dispatch result (even from the right partner) for a command this order never sent.
    let mut r = result(&v, "DELIVERED");
    r.command_id = "not-this-dispatch".into();
    let (mismatch, detail) = foreign(apply_at(&v, r, "f-3"));
    assert_eq!(mismatch, Mismatch::UnknownCommand);
    assert!(detail.contains("for a command this order never sent"), "{detail}");
    // The label set of the metric is bounded.
    let labels: Vec<&str> =
        [Mismatch::Partner, Mismatch::CommandType, Mismatch::UnknownCommand].iter().map(|m| m.label()).collect();
    assert_eq!(labels, ["partner", "command_type", "unknown_command"]);
    // The real result still completes the order.
    assert_eq!(changed(apply_at(&v, result(&v, "DELIVERED"), "r-1")).state.status, Status::Completed);
}

#[test]
fn a_forged_result_changes_no_finished_order() {
    let v = validated().state;
    let now = Now::at(Millis(2_000));
    let done = changed(apply(Some(&v), &Event::Delivered(result(&v, "DELIVERED")), "r-1", now, &params(), &stock(&[])));
    let mut forged = result(&v, "REFUSED");
    forged.partner = "globex-erp".into();
    let (mismatch, _) =
        foreign(apply(Some(&done.state), &Event::Delivered(forged), "f-1", now, &params(), &stock(&[])));
    assert_eq!(mismatch, Mismatch::Partner);
    // The ERP's repeat of its own answer is a repeat, nothing more.
    assert_eq!(
        apply(Some(&done.state), &Event::Delivered(result(&v, "DELIVERED")), "r-2", now, &params(), &stock(&[])),
        Ok(Outcome::Unchanged { reason: "order already finished" })
    );
}

#[test]
fn each_shop_s_dispatch_goes_to_its_erp_and_only_that_erp_answers_it() {
    let mut o = order(&[("SKU-1", 1, "10.00")]);
    o.partner = "globex-shop".into();
    let now = Now::at(Millis(1_000));
    let t = changed(apply(None, &Event::Received(o), "e-1", now, &params(), &stock(&[("SKU-1", 1)])));
    let Some(Action::Dispatch(d)) = t.actions.iter().find(|a| matches!(a, Action::Dispatch(_))) else {
        panic!("{:?}", t.actions)
    };
    assert_eq!(d.partner, "globex-erp");
    assert_eq!(t.state.dispatch_partner.as_deref(), Some("globex-erp"));
    let v = t.state;
    // The default ERP answering globex-shop's dispatch is refused.
    let (mismatch, detail) =
        foreign(apply(Some(&v), &Event::Delivered(result(&v, "DELIVERED")), "r-acme", now, &params(), &stock(&[])));
    assert_eq!(mismatch, Mismatch::Partner);
    assert!(detail.starts_with("result from partner acme-erp for a dispatch sent to globex-erp"), "{detail}");
    let mut answer = result(&v, "DELIVERED");
    answer.partner = "globex-erp".into();
    let done = changed(apply(Some(&v), &Event::Delivered(answer), "r-globex", now, &params(), &stock(&[])));
    assert_eq!((done.state.status, done.state.partner.as_str()), (Status::Completed, "globex-shop"));
    let [Action::Notify(n)] = done.actions.as_slice() else { panic!("{:?}", done.actions) };
    assert_eq!(n.partner, "globex-shop", "the shop is told, not its ERP");
    // A shop not in the map uses the default ERP.
    let mut o = order(&[("SKU-1", 1, "10.00")]);
    o.partner = "initech-shop".into();
    let t = changed(apply(None, &Event::Received(o), "e-1", now, &params(), &stock(&[("SKU-1", 1)])));
    assert_eq!(t.state.dispatch_partner.as_deref(), Some("acme-erp"));
}

#[test]
fn a_state_written_before_the_dispatch_partner_was_recorded_takes_results_of_the_default_erp() {
    let mut v = validated().state;
    v.dispatch_partner = None;
    let now = Now::at(Millis(2_000));
    let mut forged = result(&v, "DELIVERED");
    forged.partner = "globex-erp".into();
    let (mismatch, detail) = foreign(apply(Some(&v), &Event::Delivered(forged), "f-1", now, &params(), &stock(&[])));
    assert_eq!(mismatch, Mismatch::Partner);
    assert!(detail.contains("for a dispatch sent to acme-erp"), "{detail}");
    let done = changed(apply(Some(&v), &Event::Delivered(result(&v, "DELIVERED")), "r-1", now, &params(), &stock(&[])));
    assert_eq!(done.state.status, Status::Completed);
}

#[test]
fn after_compensation_only_the_dispatch_partner_can_request_or_settle_a_cancel() {
    let mut o = order(&[("SKU-1", 1, "10.00")]);
    o.partner = "globex-shop".into();
    let none = stock(&[]);
    let v =
        changed(apply(None, &Event::Received(o), "e-1", Now::at(Millis(1_000)), &params(), &stock(&[("SKU-1", 1)])))
            .state;
    let deadline = v.deadline.expect("deadline");
    let id = deadline_event_id(&v.correlation_id, deadline);
    let c =
        changed(apply(Some(&v), &Event::DeadlineExpired { deadline }, &id, Now::at(deadline), &params(), &none)).state;
    let later = Now::at(Millis(deadline.0 + 10));
    // A forged late success: no cancel goes out for a dispatch the ERP never accepted.
    let forged = result(&c, "DELIVERED");
    let (mismatch, _) = foreign(apply(Some(&c), &Event::Delivered(forged), "f-1", later, &params(), &none));
    assert_eq!(mismatch, Mismatch::Partner);
    // globex-erp's late success: the cancel goes to globex-erp.
    let mut late = result(&c, "DELIVERED");
    late.partner = "globex-erp".into();
    let t = changed(apply(Some(&c), &Event::Delivered(late), "r-late", later, &params(), &none));
    let [Action::Cancel(cancel)] = t.actions.as_slice() else { panic!("{:?}", t.actions) };
    assert_eq!(cancel.partner, "globex-erp");
    let s = t.state;
    // The cancel's result: from another partner, or as another command type, it is not recorded.
    let mut answer = result(&s, "DELIVERED");
    answer.command_id.clone_from(&cancel.command_id);
    answer.command_type = "cancel_command".into();
    let (mismatch, detail) =
        foreign(apply(Some(&s), &Event::Delivered(answer.clone()), "f-2", later, &params(), &none));
    assert_eq!(mismatch, Mismatch::Partner);
    assert!(detail.starts_with("result from partner acme-erp for a cancel sent to globex-erp"), "{detail}");
    answer.partner = "globex-erp".into();
    let mut as_dispatch = answer.clone();
    as_dispatch.command_type = "dispatch_command".into();
    let (mismatch, detail) = foreign(apply(Some(&s), &Event::Delivered(as_dispatch), "f-3", later, &params(), &none));
    assert_eq!(mismatch, Mismatch::CommandType);
    assert!(detail.starts_with("a dispatch_command result names the order's cancel_command"), "{detail}");
    let done = changed(apply(Some(&s), &Event::Delivered(answer), "r-cancel", later, &params(), &none));
    assert_eq!(done.state.cancel_outcome.as_deref(), Some("DELIVERED"));
    // A cancel result on an order that sent no cancel.
    let mut stray = result(&c, "DELIVERED");
    stray.command_id = "a-cancel".into();
    stray.command_type = "cancel_command".into();
    stray.partner = "globex-erp".into();
    let (mismatch, _) = foreign(apply(Some(&c), &Event::Delivered(stray), "f-4", later, &params(), &none));
    assert_eq!(mismatch, Mismatch::UnknownCommand);
}

#[test]
fn an_order_under_another_partner_s_correlation_id_is_refused_naming_both() {
    let v = validated().state;
    let mut intruder = order(&[("SKU-1", 1, "1.00")]);
    intruder.partner = "globex-shop".into();
    intruder.order_id = "G-9".into();
    let refused = apply(Some(&v), &Event::Received(intruder), "e-9", Now::at(Millis(5)), &params(), &stock(&[]));
    let Err(rejection @ Rejection::CorrelationIdTaken(_)) = refused else { panic!("{refused:?}") };
    assert_eq!(
        rejection.to_string(),
        "correlation id c-1 belongs to order A-1 of partner acme-shop: an order_received of partner globex-shop \
         (order G-9, event e-9) with it is refused, acme-shop's order is unchanged"
    );
}

#[test]
fn millis_read_from_an_integer_or_an_rfc_3339_time_and_nothing_else() {
    let read = |v: serde_json::Value| serde_json::from_value::<Millis>(v);
    assert_eq!(read(serde_json::json!(1_700_000_000_123_i64)).expect("int"), Millis(1_700_000_000_123));
    assert_eq!(read(serde_json::json!(-5)).expect("negative"), Millis(-5));
    assert_eq!(read(serde_json::json!("2023-11-14T22:13:20.123Z")).expect("text"), Millis(1_700_000_000_123));
    assert!(read(serde_json::json!("yesterday")).expect_err("not a time").to_string().contains("yesterday"));
    assert!(read(serde_json::json!(u64::MAX)).is_err());
    assert!(read(serde_json::json!(1.5)).is_err());
}
