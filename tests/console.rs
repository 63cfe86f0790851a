//! The operator console (`hub console`) against the real stack and in a real browser (Debian's
//! headless Chromium through chromedriver): an order posted through the edge is found by its
//! order id and shows its state and every transition; nobody without an operator's token sees
//! it; the order the ERP refuses is a dead letter there, its original record decoded; each page passes axe-core's WCAG 2.1 A/AA rules, is usable from the keyboard, and is
//! photographed (`target/screenshots/`). An operator without the replay permission cannot
//! replay; one with it sees a dry run, then replays the letter once, recorded on the audit topic
//! in the same transaction, and a second replay of it is refused.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::browser::Browser;
use common::console::{Console, ALICE_TOKEN, BOB_TOKEN};
use common::edge::*;
use common::orders::wait_terminal;
use common::process::publish_inventory;
use common::readmodel::*;
use common::unique_prefix;
use fantoccini::key::Key;
use fantoccini::Locator;

/// The versions in the timeline table of an order's page, top to bottom.
fn timeline_versions(html: &str) -> Vec<i64> {
    let table = html.split("<h2 id=\"timeline\">").nth(1).expect("a timeline section");
    let body = table.split("<tbody>").nth(1).and_then(|b| b.split("</tbody>").next()).expect("a table body");
    body.split("<tr><td>").skip(1).map(|row| row.split('<').next().expect("cell").parse().expect("a version")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_finds_an_order_posted_through_the_edge_with_its_timeline_and_nobody_else_does() {
    let prefix = unique_prefix("console");
    let keyspace = unique_keyspace("console");
    let topology = topology_with_partner(&keyspace).await;
    provision(&topology, &prefix);
    migrate(&topology, &prefix);
    let levels: Vec<(String, i64)> = (100..106).map(|i| (format!("SKU-{i:05}"), 1_000_000)).collect();
    let levels: Vec<(&str, i64)> = levels.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    publish_inventory(&format!("{prefix}inventory.levels"), &levels).await;
    let (_hub, edge, metrics) = hub_run_ready_with_metrics(&topology, &prefix);
    let client = reqwest::Client::new();
    let order_id = format!("{prefix}C-1");
    let supplied = format!("{prefix}console-1");
    post_order(&client, &edge, &supplied, &order_id).await;
    let id = format!("acme-shop:{supplied}");
    // The ERP refuses this one for good (422): its dispatch becomes a dead letter.
    let refused_supplied = format!("{prefix}console-2");
    post_order(&client, &edge, &refused_supplied, &format!("REFUSE-{prefix}2")).await;
    let refused = format!("acme-shop:{refused_supplied}");
    let states =
        wait_terminal(&format!("{prefix}orders.state"), std::slice::from_ref(&id), Duration::from_secs(120)).await;
    let (status, _) = wait_status(&client, &edge.url(&format!("/api/v1/orders/{id}")), "COMPLETED").await;
    let version = status["version"].as_i64().expect("version");
    assert_eq!(states[&id]["version"], version);

    let console = Console::start(&topology, &prefix, &metrics).await;
    let page_path = format!("/orders/acme-shop/{}", id.replace(':', "%3A"));

    // Over HTTP: no token, a wrong one, a cookie that is not a token: the sign-in form, 401.
    for request in [
        client.get(console.url(&page_path)),
        client.get(console.url(&page_path)).bearer_auth("not-a-token"),
        client.get(console.url(&page_path)).header("cookie", "hub_console=guess"),
    ] {
        let answer = request.send().await.expect("answer");
        assert_eq!(answer.status(), reqwest::StatusCode::UNAUTHORIZED);
        let csp = answer.headers()["content-security-policy"].to_str().expect("csp").to_owned();
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
        let html = answer.text().await.expect("html");
        assert!(html.contains("<label for=\"token\">") && !html.contains(&order_id), "{html}");
    }
    // bob (read only) by bearer token: the order's state and every transition, newest first.
    let answer = client.get(console.url(&page_path)).bearer_auth(BOB_TOKEN).send().await.expect("answer");
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    let html = answer.text().await.expect("html");
    assert!(html.contains("<span class=\"status ok\">COMPLETED</span>"), "{html}");
    assert!(html.contains(&format!("<dd>{order_id}</dd>")), "{html}");
    let reference = status["partner_reference"].as_str().expect("the ERP's reference");
    assert!(html.contains(&format!("<dd>{reference}</dd>")), "{html}");
    assert_eq!(timeline_versions(&html), (1..=version).rev().collect::<Vec<_>>(), "every transition once");
    // Its commands and their deliveries, read from Kafka: the dispatch and the ERP's answer with
    // its reference, the completion webhook and the client's answer, each linked to its trace.
    let deliveries = html.split("<h2 id=\"deliveries\">").nth(1).expect("a deliveries section");
    assert!(
        deliveries
            .contains(&format!("dispatch_command: DELIVERED after 1 attempt(s), HTTP 201, reference {reference}")),
        "{deliveries}"
    );
    assert!(deliveries.contains("notification_command: DELIVERED after 1 attempt(s), HTTP 201"), "{deliveries}");
    assert_eq!(deliveries.matches("<td>dispatch_command<br>").count(), 1, "{deliveries}");
    assert!(deliveries.contains("<a href=\"http://jaeger.test:16686/trace/"), "{deliveries}");
    let unknown =
        client.get(console.url("/orders/acme-shop/nope")).bearer_auth(BOB_TOKEN).send().await.expect("answer");
    assert_eq!(unknown.status(), reqwest::StatusCode::NOT_FOUND);

    // The refused dispatch, once the sink gives up on it, is listed under the ERP.
    let letters_path = format!("/dead-letters?partner=acme-erp&correlation_id={}", refused.replace(':', "%3A"));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let answer = client.get(console.url(&letters_path)).bearer_auth(BOB_TOKEN).send().await.expect("answer");
        assert_eq!(answer.status(), reqwest::StatusCode::OK);
        let html = answer.text().await.expect("html");
        if html.contains("1 dead letter(s)") {
            assert!(html.contains("sink:erp-dispatch") && html.contains("PERMANENT"), "{html}");
            break;
        }
        assert!(html.contains("No dead letter matches."), "{html}");
        assert!(std::time::Instant::now() < deadline, "the refused dispatch never became a dead letter");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Searching by status and creation time (the by-minute index): the completed order alone
    // among this keyspace's two; both within the last 15 minutes; none created after now.
    let search = |query: &str| {
        let request = client.get(console.url(&format!("/orders?partner=acme-shop&{query}"))).bearer_auth(BOB_TOKEN);
        async move {
            let answer = request.send().await.expect("answer");
            (answer.status(), answer.text().await.expect("html"))
        }
    };
    let (status, html) = search("status=COMPLETED&within=15m").await;
    assert_eq!(status, reqwest::StatusCode::OK, "{html}");
    assert!(html.contains("1 order(s)") && html.contains(&format!(">{id}</a>")), "{html}");
    let (_, html) = search("within=15m").await;
    assert!(html.contains("2 order(s)") && html.contains(&refused), "{html}");
    let (_, html) = search("from=2099-01-01T00:00&to=2099-01-02T00:00").await;
    assert!(html.contains("No order matches."), "{html}");
    let (status, html) = search("from=yesterday").await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{html}");
    assert!(html.contains("is not a time"), "{html}");

    // A careless producer's record on the dead-letter topic: indexed as undecodable (its page
    // says why), offered to nobody for replay, and the list goes on.
    common::kafka::produce_raw(&format!("{prefix}orders.dlq"), "garbage", b"not a dead letter");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let answer = client
            .get(console.url("/dead-letters?class=UNDECODABLE"))
            .bearer_auth(ALICE_TOKEN)
            .send()
            .await
            .expect("answer");
        assert_eq!(answer.status(), reqwest::StatusCode::OK);
        let html = answer.text().await.expect("html");
        if html.contains("1 dead letter(s)") {
            assert!(
                html.contains("the dead letter does not decode") && html.contains("<td>not replayable</td>"),
                "{html}"
            );
            assert!(!html.contains("type=\"checkbox\""), "nothing to tick: {html}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the undecodable record was never listed: {html}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let everything = client.get(console.url("/dead-letters")).bearer_auth(BOB_TOKEN).send().await.expect("answer");
    let html = everything.text().await.expect("html");
    assert!(html.contains("sink:erp-dispatch") && html.contains(&refused) && html.contains(">garbage<"), "{html}");

    // In the browser: sign in as bob, search by order id, open the order.
    let browser = Browser::start(1280, 900).await;
    let web = &browser.client;
    web.goto(&console.url("/")).await.expect("goto");
    browser.arrive("/", "#token").await;
    let mut violations = Vec::new();
    violations.extend(browser.accessibility_violations().await.into_iter().map(|v| format!("sign in: {v}")));
    browser.screenshot("console-sign-in").await;
    // Keyboard only: the first Tab reaches the skip link, then the token field; Enter submits.
    web.find(Locator::Css("body")).await.expect("body").send_keys(&Key::Tab.to_string()).await.expect("tab");
    let first = web.active_element().await.expect("focus");
    assert_eq!(first.attr("class").await.expect("class").as_deref(), Some("skip"), "the skip link comes first");
    let token = web.find(Locator::Id("token")).await.expect("token field");
    token.send_keys(&format!("{BOB_TOKEN}{}", Key::Enter)).await.expect("sign in");
    let overview = browser.arrive("/", "a[href='/'][aria-current='page']").await;
    assert!(overview.contains("bob") && overview.contains("read only"), "{overview}");
    // The overview's live figures refresh in place: the page is not reloaded (a mark left on the
    // window survives) while the sample time moves on. Kafka's lag for every consumer group of
    // the topology, each partner's breaker, the dead letters of the last hour.
    let sampled_at = || async {
        let at = web.execute("return document.querySelector('#live .updated').getAttribute('data-at');", vec![]).await;
        at.expect("data-at").as_str().expect("text").parse::<i64>().expect("ms")
    };
    web.execute("window.notReloaded = true; return true;", vec![]).await.expect("mark");
    let first = sampled_at().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let at = sampled_at().await;
        let lag = web.source().await.expect("source");
        if at > first && at > 0 && lag.contains(&format!("<td>{prefix}order-saga</td>")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the live section never refreshed: {lag}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let same_page = web.execute("return window.notReloaded === true;", vec![]).await.expect("mark");
    assert_eq!(same_page, serde_json::Value::Bool(true), "refreshed without reloading the page");
    let overview = web.source().await.expect("source");
    for group in ["order-saga", "erp-dispatch", "client-notify", "order-projector"] {
        assert!(overview.contains(&format!("<td>{prefix}{group}</td>")), "lag of {group}: {overview}");
    }
    assert!(overview.contains("<td class=\"num ok\">closed</td>"), "the partners' breakers: {overview}");
    assert!(
        overview.contains("Dead letters in the last hour</a></td><td class=\"num\" id=\"letters-hour\">3</td>"),
        "{overview}"
    );
    violations.extend(browser.accessibility_violations().await.into_iter().map(|v| format!("overview: {v}")));
    browser.screenshot("console-overview").await;

    // A partner's page: its limits from the topology, its attempts by outcome (the refusal is
    // one 4xx), its breaker, and its recent failures (the refused dispatch).
    web.find(Locator::LinkText("Partners")).await.expect("nav").click().await.expect("partners");
    browser.arrive("/partners", "tbody a").await;
    violations.extend(browser.accessibility_violations().await.into_iter().map(|v| format!("partners: {v}")));
    web.find(Locator::LinkText("acme-erp")).await.expect("acme-erp").click().await.expect("open partner");
    browser.arrive("/partners/acme-erp", "#failures").await;
    let erp = web.source().await.expect("source");
    assert!(
        erp.contains("<dt>Rate limit</dt>") && erp.contains("<span class=\"status\" id=\"breaker\">closed</span>"),
        "{erp}"
    );
    assert!(erp.contains("4xx 1"), "one refused attempt: {erp}");
    assert!(erp.contains("1 dead letter(s)") && erp.contains("REFUSED after 1 attempt"), "{erp}");
    violations.extend(browser.accessibility_violations().await.into_iter().map(|v| format!("partner: {v}")));
    browser.screenshot("console-partner").await;

    web.find(Locator::LinkText("Orders")).await.expect("nav").click().await.expect("orders");
    browser.arrive("/orders", "#order_id").await;
    let field = web.find(Locator::Id("order_id")).await.expect("order id field");
    field.send_keys(&format!("{order_id}{}", Key::Enter)).await.expect("search");
    let found = browser.arrive("order_id=", "p[role=status]").await;
    assert!(found.contains("1 order(s)") && found.contains(&id), "{found}");
    violations.extend(browser.accessibility_violations().await.into_iter().map(|v| format!("search: {v}")));
    browser.screenshot("console-orders").await;

    web.find(Locator::LinkText(&id)).await.expect("result link").click().await.expect("open order");
    browser.arrive("/orders/acme-shop/", "#timeline").await;
    let source = web.source().await.expect("source");
    assert!(source.contains("COMPLETED"), "{source}");
    assert_eq!(timeline_versions(&source), (1..=version).rev().collect::<Vec<_>>());
    violations.extend(browser.accessibility_violations().await.into_iter().map(|v| format!("order: {v}")));
    browser.screenshot("console-order").await;

    // Dead letters: filter by partner and the last hour, open the refused dispatch, read its original record.
    web.find(Locator::LinkText("Dead letters")).await.expect("nav").click().await.expect("dead letters");
    browser.arrive("/dead-letters", "#stage").await;
    let partner = web.find(Locator::Id("partner")).await.expect("partner filter");
    partner.select_by_value("acme-erp").await.expect("select acme-erp");
    let window = web.find(Locator::Id("since")).await.expect("time filter");
    window.select_by_value("1h").await.expect("the last hour");
    web.find(Locator::Css("form.search button")).await.expect("filter").click().await.expect("filter");
    let listed = browser.arrive("since=1h", "p[role=status]").await;
    assert!(listed.contains(&refused) && listed.contains("sink:erp-dispatch"), "{listed}");
    assert!(!listed.contains(&id), "only the refused order has a dead letter: {listed}");
    violations.extend(browser.accessibility_violations().await.into_iter().map(|v| format!("dead letters: {v}")));
    browser.screenshot("console-dead-letters").await;
    let link = web.find(Locator::Css("tbody a")).await.expect("a letter");
    let letter_name = link.text().await.expect("the letter's name");
    link.click().await.expect("open letter");
    let letter = browser.arrive("/dead-letters/", "#value").await;
    let letter_url = web.current_url().await.expect("url").to_string();
    assert!(letter.contains(&format!("REFUSE-{prefix}2")), "the original value, decoded: {letter}");
    assert!(letter.contains("event-type") && letter.contains(&refused), "headers: {letter}");
    violations.extend(browser.accessibility_violations().await.into_iter().map(|v| format!("letter: {v}")));
    browser.screenshot("console-dead-letter").await;

    // bob may not replay: no replay form on his pages, and a replay he posts anyway is refused.
    assert!(web.find(Locator::Css("form[action='/dead-letters/replay']")).await.is_err(), "bob sees no replay");
    let commands = format!("{prefix}orders.commands");
    let audit = format!("{prefix}console.audit");
    let committed = |topic: &str| common::kafka::read_all(topic, "read_committed").len();
    let commands_before = committed(&commands);
    let form = [("letter", letter_name.as_str()), ("action", "replay")];
    let post = |token: &'static str| client.post(console.url("/dead-letters/replay")).bearer_auth(token).form(&form);
    assert_eq!(post(BOB_TOKEN).send().await.expect("answer").status(), reqwest::StatusCode::FORBIDDEN);
    assert_eq!(committed(&commands), commands_before, "nothing replayed for bob");

    // alice may: sign in, tick the letter, a dry run (nothing sent), then the replay, confirmed.
    web.find(Locator::Css(".who button")).await.expect("sign out").click().await.expect("sign out");
    browser.arrive("/login", "#token").await;
    let token = web.find(Locator::Id("token")).await.expect("token field");
    token.send_keys(&format!("{ALICE_TOKEN}{}", Key::Enter)).await.expect("sign in");
    let overview = browser.arrive("/", "a[href='/'][aria-current='page']").await;
    assert!(overview.contains("alice") && overview.contains("read and replay"), "{overview}");
    web.goto(&console.url(&format!("{letters_path}&since=1h"))).await.expect("goto");
    browser.arrive("since=1h", "#replay").await;
    web.find(Locator::Css(&format!("input[type=checkbox][value='{letter_name}']")))
        .await
        .expect("box")
        .click()
        .await
        .expect("tick");
    web.find(Locator::Css("#replay button")).await.expect("dry run").click().await.expect("dry run");
    let dry = browser.arrive("/dead-letters/replay", "input[name=action][value=replay]").await;
    assert!(
        dry.contains("Dry run: nothing has been sent") && dry.contains(&letter_name) && dry.contains("never"),
        "{dry}"
    );
    assert_eq!(committed(&commands), commands_before, "a dry run sends nothing");
    assert_eq!(committed(&audit), 0, "nor records anything");
    violations.extend(browser.accessibility_violations().await.into_iter().map(|v| format!("dry run: {v}")));
    browser.screenshot("console-replay-dry-run").await;
    // The ERP takes the order now; the replay delivers the original dispatch to it once.
    REFUSING.store(false, Ordering::SeqCst);
    web.find(Locator::Css("main form button")).await.expect("confirm").click().await.expect("replay");
    let done = browser.arrive("/dead-letters/replay", "p.ok[role=status]").await;
    assert!(done.contains("Replayed 1 letter(s)"), "{done}");
    assert_eq!(committed(&commands), commands_before + 1, "the original dispatch, once, back on its topic");
    assert_eq!(committed(&audit), 1, "one audit record, in the replay's transaction");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while REFUSED_ONCE_TAKEN.load(Ordering::SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "the replayed dispatch never reached the ERP");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    violations.extend(browser.accessibility_violations().await.into_iter().map(|v| format!("replayed: {v}")));

    // A second replay of the same letter: the dry run says who replayed it and when, and the
    // replay is refused unless forced.
    web.goto(&letter_url).await.expect("goto");
    browser.arrive("/dead-letters/", "#value").await;
    web.find(Locator::Css("main form button")).await.expect("replay this letter").click().await.expect("dry run");
    let again = browser.arrive("/dead-letters/replay", "#force").await;
    assert!(again.contains("by alice at"), "{again}");
    web.find(Locator::Css("main form button")).await.expect("confirm").click().await.expect("replay");
    let refused_again = browser.arrive("/dead-letters/replay", "p.bad[role=alert]").await;
    assert!(refused_again.contains("Refused 1 letter(s) already replayed"), "{refused_again}");
    assert_eq!(committed(&commands), commands_before + 1, "nothing sent twice");
    assert_eq!(committed(&audit), 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(REFUSED_ONCE_TAKEN.load(Ordering::SeqCst), 1, "the ERP got the replayed dispatch once");

    // A phone-sized window: the order's page, nothing wider than the screen but the tables.
    web.goto(&console.url(&page_path)).await.expect("goto");
    browser.arrive("/orders/acme-shop/", "#timeline").await;
    web.set_window_size(390, 844).await.expect("phone size");
    let overflow =
        web.execute("return document.documentElement.scrollWidth <= window.innerWidth;", vec![]).await.expect("width");
    assert_eq!(overflow, serde_json::Value::Bool(true), "the page fits a phone's width");
    browser.screenshot("console-order-phone").await;

    // Signing out ends the session: the order page asks for a token again.
    web.set_window_size(1280, 900).await.expect("size");
    web.find(Locator::Css(".who button")).await.expect("sign out").click().await.expect("sign out");
    browser.arrive("/login", "#token").await;
    web.goto(&console.url(&page_path)).await.expect("goto");
    browser.arrive(&page_path, "#token").await;
    assert!(violations.is_empty(), "axe-core found:\n{}", violations.join("\n"));
}
