//! Turns a [`RawTopology`] into a [`Topology`], collecting every error instead of stopping at the first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::error::TopologyError;
use super::machine::{self, Surroundings};
use super::model::{Contract, Partner, Processor, Route, Sink, Topic, Topology};
use super::raw::{ProcessorParams, RawTopology, SinkParams};

/// Topic configs that have their own field in `[[topic]]`.
const MANAGED_CONFIGS: [&str; 3] = ["cleanup.policy", "retention.ms", "min.insync.replicas"];

/// Where the topology came from and how to name its topics.
#[derive(Debug, Clone)]
pub struct ValidateOptions<'a> {
    /// The topology file; schema paths are relative to its folder.
    pub source: &'a Path,
    /// Put before every topic name.
    pub topic_prefix: &'a str,
}

struct Checker<'a> {
    raw: &'a RawTopology,
    opts: &'a ValidateOptions<'a>,
    errors: Vec<TopologyError>,
}

impl RawTopology {
    /// Checks every reference, co-partitioning, compaction and contract, and reports all errors at once.
    pub fn validate(&self, opts: &ValidateOptions<'_>) -> Result<Topology, Vec<TopologyError>> {
        let mut checker = Checker { raw: self, opts, errors: Vec::new() };
        checker.duplicates();
        let topics = checker.topics();
        let contracts = checker.contracts(&topics);
        let routes = checker.routes(&topics);
        let processors = checker.processors(&topics, &contracts);
        checker.states_owned_once();
        let sinks = checker.sinks(&topics);
        let partners = checker.partners(&contracts);
        if !checker.errors.is_empty() {
            return Err(checker.errors);
        }
        Ok(Topology {
            source: opts.source.to_path_buf(),
            topic_prefix: opts.topic_prefix.to_owned(),
            topics,
            contracts,
            routes,
            processors,
            sinks,
            partners,
        })
    }
}

/// HTTP methods a partner request may use.
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

fn invalid(owner: String, field: &'static str, value: impl ToString, reason: impl Into<String>) -> TopologyError {
    TopologyError::Invalid { owner, field, value: value.to_string(), reason: reason.into() }
}

impl Checker<'_> {
    fn duplicates(&mut self) {
        let raw = self.raw;
        let lists: [(&'static str, Vec<&str>); 5] = [
            ("topic", raw.topics.iter().map(|t| t.name.as_str()).collect()),
            ("route", raw.routes.iter().map(|r| r.path.as_str()).collect()),
            ("processor", raw.processors.iter().map(|p| p.name.as_str()).collect()),
            ("sink", raw.sinks.iter().map(|s| s.name.as_str()).collect()),
            ("partner", raw.partners.iter().map(|p| p.name.as_str()).collect()),
        ];
        for (kind, names) in lists {
            let mut seen = BTreeSet::new();
            let mut reported = BTreeSet::new();
            for name in names {
                if !seen.insert(name) && reported.insert(name) {
                    self.errors.push(TopologyError::Duplicate { kind, name: name.to_owned() });
                }
            }
        }
    }

    fn topics(&mut self) -> Vec<Topic> {
        let defaults = &self.raw.defaults;
        let mut out = Vec::new();
        for raw in &self.raw.topics {
            let owner = format!("topic {:?}", raw.name);
            let name = format!("{}{}", self.opts.topic_prefix, raw.name);
            if let Err(reason) = check_topic_name(&name) {
                self.errors.push(invalid(owner.clone(), "name", &name, reason));
            }
            if raw.partitions < 1 {
                self.errors.push(invalid(owner.clone(), "partitions", raw.partitions, "must be at least 1"));
            }
            let rf = raw.replication_factor.unwrap_or(defaults.replication_factor);
            let min_isr = raw.min_insync_replicas.unwrap_or(defaults.min_insync_replicas);
            if rf < 1 {
                self.errors.push(invalid(owner.clone(), "replication_factor", rf, "must be at least 1"));
            }
            if min_isr < 1 || min_isr > rf {
                self.errors.push(invalid(
                    owner.clone(),
                    "min_insync_replicas",
                    min_isr,
                    format!("must be between 1 and the replication factor ({rf})"),
                ));
            }
            if raw.key.trim().is_empty() {
                self.errors.push(invalid(owner.clone(), "key", &raw.key, "must name the field records are keyed by"));
            }
            if raw.schemas.is_empty() {
                self.errors.push(invalid(owner.clone(), "schemas", "[]", "a topic carries at least one contract"));
            }
            for key in raw.configs.keys().filter(|k| MANAGED_CONFIGS.contains(&k.as_str())) {
                self.errors.push(invalid(
                    owner.clone(),
                    "configs",
                    key,
                    "set by its own field (cleanup_policy, retention, min_insync_replicas)",
                ));
            }
            out.push(Topic {
                name,
                declared_name: raw.name.clone(),
                doc: raw.doc.clone(),
                partitions: raw.partitions,
                replication_factor: rf,
                min_insync_replicas: min_isr,
                key: raw.key.clone(),
                cleanup_policy: raw.cleanup_policy,
                retention: raw.retention,
                schemas: raw.schemas.clone(),
                configs: raw.configs.clone(),
            });
        }
        out
    }

    fn contracts(&mut self, topics: &[Topic]) -> BTreeMap<String, Contract> {
        let base = self.opts.source.parent().unwrap_or(Path::new(".")).join(&self.raw.schemas_dir);
        let mut contracts = BTreeMap::new();
        let mut failed = BTreeSet::new();
        for topic in topics {
            for name in &topic.schemas {
                if contracts.contains_key(name) {
                    continue;
                }
                let path = base.join(format!("{name}.avsc"));
                let text = match std::fs::read_to_string(&path) {
                    Ok(text) => text,
                    Err(_) => {
                        self.errors.push(TopologyError::SchemaMissing {
                            topic: topic.declared_name.clone(),
                            schema: name.clone(),
                            path,
                        });
                        continue;
                    }
                };
                if failed.contains(name) {
                    continue;
                }
                match Contract::parse(name, &path, &text) {
                    Ok(contract) => {
                        contracts.insert(name.clone(), contract);
                    }
                    Err(reason) => {
                        failed.insert(name.clone());
                        self.errors.push(TopologyError::SchemaInvalid { schema: name.clone(), path, reason });
                    }
                }
            }
        }
        contracts
    }

    fn resolve(&mut self, topics: &[Topic], owner: &str, field: &'static str, declared: &str) -> Option<Topic> {
        let found = topics.iter().find(|t| t.declared_name == declared).cloned();
        if found.is_none() {
            self.errors.push(TopologyError::UnknownTopic {
                owner: owner.to_owned(),
                field,
                topic: declared.to_owned(),
            });
        }
        found
    }

    fn partner_ref(&mut self, owner: &str, field: &'static str, partner: &str, must_be_callable: bool) {
        match self.raw.partners.iter().find(|p| p.name == partner) {
            None => self.errors.push(TopologyError::UnknownPartner {
                owner: owner.to_owned(),
                field,
                partner: partner.to_owned(),
            }),
            Some(p) if must_be_callable && p.outbound.is_none() => self
                .errors
                .push(TopologyError::PartnerNotCallable { owner: owner.to_owned(), partner: partner.to_owned() }),
            Some(p) if !must_be_callable && p.inbound.is_none() => self.errors.push(invalid(
                owner.to_owned(),
                field,
                partner,
                "partner has no [partner.inbound] section, so it cannot authenticate",
            )),
            Some(_) => {}
        }
    }

    fn schema_on_topic(&mut self, owner: &str, topic: &Topic, schema: &str) {
        if !topic.schemas.iter().any(|s| s == schema) {
            self.errors.push(TopologyError::SchemaNotOnTopic {
                owner: owner.to_owned(),
                topic: topic.declared_name.clone(),
                schema: schema.to_owned(),
                carried: topic.schemas.clone(),
            });
        }
    }

    fn routes(&mut self, topics: &[Topic]) -> Vec<Route> {
        let mut out = Vec::new();
        for raw in &self.raw.routes {
            let owner = format!("route {:?}", raw.path);
            if !raw.path.starts_with('/') {
                self.errors.push(invalid(owner.clone(), "path", &raw.path, "must start with '/'"));
            }
            let topic = self.resolve(topics, &owner, "topic", &raw.topic);
            if let Some(topic) = &topic {
                self.schema_on_topic(&owner, topic, &raw.schema);
            }
            if raw.partners.is_empty() {
                self.errors.push(invalid(owner.clone(), "partners", "[]", "name at least one partner"));
            }
            for partner in &raw.partners {
                self.partner_ref(&owner, "partners", partner, false);
            }
            if let Some(topic) = topic {
                out.push(Route {
                    path: raw.path.clone(),
                    topic: topic.name,
                    schema: raw.schema.clone(),
                    partners: raw.partners.clone(),
                });
            }
        }
        out
    }

    fn processors(&mut self, topics: &[Topic], contracts: &BTreeMap<String, Contract>) -> Vec<Processor> {
        let mut out = Vec::new();
        for raw in &self.raw.processors {
            let owner = format!("processor {:?}", raw.name);
            let inputs: Vec<Option<Topic>> =
                raw.inputs.iter().map(|t| self.resolve(topics, &owner, "inputs", t)).collect();
            let state = self.resolve(topics, &owner, "state", &raw.state);
            let lookups: Vec<Option<Topic>> =
                raw.lookups.iter().map(|t| self.resolve(topics, &owner, "lookups", t)).collect();
            let outputs: Vec<Option<Topic>> =
                raw.outputs.iter().map(|t| self.resolve(topics, &owner, "outputs", t)).collect();
            let dead_letter = self.resolve(topics, &owner, "dead_letter", &raw.dead_letter);
            if raw.inputs.is_empty() {
                self.errors.push(invalid(owner.clone(), "inputs", "[]", "a processor reads at least one topic"));
            }
            if raw.max_batch == 0 {
                self.errors.push(invalid(owner.clone(), "max_batch", 0, "must be at least 1"));
            }
            if let Some(state) = &state {
                if !state.cleanup_policy.is_compacted() {
                    self.errors.push(TopologyError::NotCompacted {
                        owner: owner.clone(),
                        field: "state",
                        topic: state.declared_name.clone(),
                    });
                }
            }
            for lookup in lookups.iter().flatten() {
                if !lookup.cleanup_policy.is_compacted() {
                    self.errors.push(TopologyError::NotCompacted {
                        owner: owner.clone(),
                        field: "lookups",
                        topic: lookup.declared_name.clone(),
                    });
                }
            }
            let partitioned: Vec<&Topic> = inputs.iter().flatten().chain(state.iter()).collect();
            if partitioned.iter().any(|t| t.partitions != partitioned[0].partitions) {
                self.errors.push(TopologyError::NotCoPartitioned {
                    processor: raw.name.clone(),
                    partitions: partitioned.iter().map(|t| (t.declared_name.clone(), t.partitions)).collect(),
                });
            }
            if partitioned.iter().any(|t| t.key != partitioned[0].key) {
                self.errors.push(TopologyError::KeyMismatch {
                    processor: raw.name.clone(),
                    keys: partitioned.iter().map(|t| (t.declared_name.clone(), t.key.clone())).collect(),
                });
            }
            let mut machine = None;
            match &raw.params {
                ProcessorParams::OrderSaga {
                    erp_partner,
                    erp_partner_by_shop,
                    discount_percent,
                    discount_min_total,
                    terminal_retention,
                    ..
                } => {
                    self.retention(&owner, *terminal_retention);
                    self.partner_ref(&owner, "params.erp_partner", erp_partner, true);
                    for (shop, erp) in erp_partner_by_shop {
                        if !self.raw.partners.iter().any(|p| &p.name == shop) {
                            self.errors.push(TopologyError::UnknownPartner {
                                owner: owner.clone(),
                                field: "params.erp_partner_by_shop",
                                partner: shop.clone(),
                            });
                        }
                        self.partner_ref(&owner, "params.erp_partner_by_shop", erp, true);
                    }
                    if *discount_percent > 100 {
                        self.errors.push(invalid(
                            owner.clone(),
                            "params.discount_percent",
                            discount_percent,
                            "at most 100",
                        ));
                    }
                    if !is_decimal(discount_min_total) {
                        self.errors.push(invalid(
                            owner.clone(),
                            "params.discount_min_total",
                            discount_min_total,
                            "must be a decimal amount such as \"500.00\"",
                        ));
                    }
                }
                ProcessorParams::Declared { terminal_retention, .. } => self.retention(&owner, *terminal_retention),
            }
            if let Some((file, values)) = raw.params.machine() {
                let carried = |topics: &mut dyn Iterator<Item = &Topic>| -> BTreeSet<String> {
                    topics.flat_map(|t| t.schemas.iter().cloned()).collect()
                };
                let around = Surroundings {
                    processor: &raw.name,
                    contracts,
                    inputs: carried(&mut inputs.iter().flatten()),
                    outputs: carried(&mut outputs.iter().flatten()),
                    state: carried(&mut state.iter()),
                    lookup: lookups.first().and_then(Option::as_ref).and_then(|t| t.schemas.first().cloned()),
                    params: &values,
                };
                let path = self.opts.source.parent().unwrap_or(Path::new(".")).join(file);
                match machine::load(&path, &around) {
                    Ok(spec) => machine = Some(std::sync::Arc::new(spec)),
                    Err(errors) => self.errors.extend(errors),
                }
            }
            let name = |t: Option<Topic>| t.map(|t| t.name).unwrap_or_default();
            out.push(Processor {
                name: raw.name.clone(),
                doc: raw.doc.clone(),
                inputs: inputs.into_iter().map(name).collect(),
                state: name(state),
                lookups: lookups.into_iter().map(name).collect(),
                outputs: outputs.into_iter().map(name).collect(),
                dead_letter: name(dead_letter),
                commit: raw.commit,
                commit_interval: raw.commit_interval,
                max_batch: raw.max_batch,
                params: raw.params.clone(),
                machine,
            });
        }
        out
    }

    fn retention(&mut self, owner: &str, retention: std::time::Duration) {
        if retention.as_millis() < 1_000 {
            self.errors.push(invalid(
                owner.to_owned(),
                "params.terminal_retention",
                format!("{retention:?}"),
                "at least 1s (a terminal state must stay long enough for late events to be recognised as repeats)",
            ));
        }
    }

    /// A state topic belongs to its processor alone: no other processor keeps its state there
    /// and no processor writes to it (another may read it, as a data team would).
    fn states_owned_once(&mut self) {
        let processors = &self.raw.processors;
        for (i, raw) in processors.iter().enumerate() {
            let owner = format!("processor {:?}", raw.name);
            for other in processors[..i].iter().filter(|other| other.state == raw.state) {
                let reason = format!("already the state of processor {:?}: each processor keeps its own", other.name);
                self.errors.push(invalid(owner.clone(), "state", &raw.state, reason));
            }
            for other in processors.iter().filter(|other| other.outputs.contains(&raw.state)) {
                let reason =
                    format!("processor {:?} writes to it: a state topic is written by its processor only", other.name);
                self.errors.push(invalid(owner.clone(), "state", &raw.state, reason));
            }
        }
    }

    fn sinks(&mut self, topics: &[Topic]) -> Vec<Sink> {
        let mut out = Vec::new();
        for raw in &self.raw.sinks {
            let owner = format!("sink {:?}", raw.name);
            let input = self.resolve(topics, &owner, "input", &raw.input);
            let results = raw.results.as_ref().map(|r| self.resolve(topics, &owner, "results", r));
            let dead_letter = self.resolve(topics, &owner, "dead_letter", &raw.dead_letter);
            match &raw.params {
                SinkParams::Http { partner, partners, commands } => {
                    if partner.is_some() != partners.is_empty() {
                        self.errors.push(invalid(
                            owner.clone(),
                            "params.partners",
                            format!("partner = {partner:?}, partners = {partners:?}"),
                            "set exactly one of partner = \"name\" and partners = [\"name\", ...]",
                        ));
                    }
                    let mut seen = BTreeSet::new();
                    for p in partners {
                        if !seen.insert(p) {
                            self.errors.push(invalid(owner.clone(), "params.partners", p, "named more than once"));
                        }
                        self.partner_ref(&owner, "params.partners", p, true);
                    }
                    if let Some(p) = partner {
                        self.partner_ref(&owner, "params.partner", p, true);
                    }
                    if commands.is_empty() {
                        self.errors.push(invalid(
                            owner.clone(),
                            "params.commands",
                            "[]",
                            "name the commands it delivers",
                        ));
                    }
                    if let Some(input) = &input {
                        for command in commands {
                            self.schema_on_topic(&owner, input, command);
                        }
                    }
                    if raw.results.is_none() {
                        self.errors.push(invalid(
                            owner.clone(),
                            "results",
                            "",
                            "an http sink reports delivery results",
                        ));
                    }
                }
                SinkParams::CqlProjector { keyspace, .. } => {
                    let valid = keyspace.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && keyspace.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
                    if !valid {
                        self.errors.push(invalid(owner.clone(), "params.keyspace", keyspace, "not a CQL identifier"));
                    }
                }
            }
            let name = |t: Option<Topic>| t.map(|t| t.name).unwrap_or_default();
            // One form after validation: every served partner in `partners`.
            let params = match &raw.params {
                SinkParams::Http { commands, .. } => SinkParams::Http {
                    partner: None,
                    partners: raw.params.http_partners().into_iter().map(str::to_owned).collect(),
                    commands: commands.clone(),
                },
                other => other.clone(),
            };
            out.push(Sink {
                name: raw.name.clone(),
                input: name(input),
                results: results.map(name),
                dead_letter: name(dead_letter),
                params,
            });
        }
        self.disjoint_sinks(&out);
        out
    }

    /// Each command has one sink: HTTP sinks that deliver the same contract from the same topic
    /// serve disjoint sets of partners (a command for a partner no sink serves is dead-lettered
    /// by the sinks of its contract; one served by another sink is left to it).
    fn disjoint_sinks(&mut self, sinks: &[Sink]) {
        let http: Vec<(&Sink, &Vec<String>, BTreeSet<&str>)> = sinks
            .iter()
            .filter_map(|s| match &s.params {
                SinkParams::Http { commands, partners, .. } => {
                    Some((s, commands, partners.iter().map(String::as_str).collect()))
                }
                SinkParams::CqlProjector { .. } => None,
            })
            .collect();
        for (i, (a, a_commands, a_partners)) in http.iter().enumerate() {
            for (b, b_commands, b_partners) in &http[i + 1..] {
                if a.input != b.input || a.input.is_empty() {
                    continue;
                }
                let shared: Vec<String> = a_partners.intersection(b_partners).map(|p| (*p).to_owned()).collect();
                if shared.is_empty() {
                    continue;
                }
                for contract in a_commands.iter().filter(|c| b_commands.contains(c)) {
                    self.errors.push(TopologyError::SinksOverlap {
                        first: a.name.clone(),
                        second: b.name.clone(),
                        topic: a.input.strip_prefix(self.opts.topic_prefix).unwrap_or(&a.input).to_owned(),
                        contract: contract.clone(),
                        partners: shared.clone(),
                    });
                }
            }
        }
    }

    /// Per-command requests of a partner: known contracts, methods the hub sends, balanced paths.
    fn requests(
        &mut self,
        owner: &str,
        requests: &BTreeMap<String, super::raw::RequestMapping>,
        contracts: &BTreeMap<String, Contract>,
    ) {
        for (contract, mapping) in requests {
            if !contracts.contains_key(contract) {
                self.errors.push(invalid(owner.to_owned(), "outbound.requests", contract, "no such contract"));
            }
            if !METHODS.contains(&mapping.method.as_str()) {
                self.errors.push(invalid(
                    owner.to_owned(),
                    "outbound.requests.method",
                    &mapping.method,
                    "not an HTTP method the hub sends",
                ));
            }
            if !mapping.path.starts_with('/') || mapping.path.matches('{').count() != mapping.path.matches('}').count()
            {
                self.errors.push(invalid(
                    owner.to_owned(),
                    "outbound.requests.path",
                    &mapping.path,
                    "must start with '/' and have balanced { } in the template",
                ));
            }
        }
    }

    fn partners(&mut self, contracts: &BTreeMap<String, Contract>) -> Vec<Partner> {
        let mut out = Vec::new();
        for raw in &self.raw.partners {
            let owner = format!("partner {:?}", raw.name);
            if let Some(inbound) = &raw.inbound {
                if inbound.api_keys.is_none() && inbound.jwt.is_none() {
                    self.errors.push(invalid(owner.clone(), "inbound", "", "set api_keys or jwt"));
                }
                if let Some(jwt) = &inbound.jwt {
                    if jwt.hs256_secret.is_some() == jwt.rs256_public_key.is_some() {
                        self.errors.push(invalid(
                            owner.clone(),
                            "inbound.jwt",
                            "",
                            "set exactly one of hs256_secret and rs256_public_key",
                        ));
                    }
                }
            }
            if let Some(outbound) = &raw.outbound {
                match reqwest::Url::parse(&outbound.base_url) {
                    Ok(url) if matches!(url.scheme(), "http" | "https") => {}
                    Ok(_) => self.errors.push(invalid(
                        owner.clone(),
                        "outbound.base_url",
                        &outbound.base_url,
                        "must be http or https",
                    )),
                    Err(e) => {
                        self.errors.push(invalid(owner.clone(), "outbound.base_url", &outbound.base_url, e.to_string()))
                    }
                }
                if !METHODS.contains(&outbound.method.as_str()) {
                    self.errors.push(invalid(
                        owner.clone(),
                        "outbound.method",
                        &outbound.method,
                        "not an HTTP method the hub sends",
                    ));
                }
                if outbound.concurrency == 0 {
                    self.errors.push(invalid(owner.clone(), "outbound.concurrency", 0, "must be at least 1"));
                }
                if outbound.rate_limit.per_second == 0 || outbound.rate_limit.burst == 0 {
                    self.errors.push(invalid(
                        owner.clone(),
                        "outbound.rate_limit",
                        format!("{:?}", outbound.rate_limit),
                        "per_second and burst must be at least 1",
                    ));
                }
                let retry = outbound.retry;
                if retry.max_attempts == 0 || retry.initial_backoff > retry.max_backoff {
                    self.errors.push(invalid(
                        owner.clone(),
                        "outbound.retry",
                        format!("{retry:?}"),
                        "max_attempts must be at least 1 and initial_backoff at most max_backoff",
                    ));
                }
                for name in outbound.headers.keys() {
                    if name.is_empty()
                        || !name.bytes().all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
                    {
                        self.errors.push(invalid(owner.clone(), "outbound.headers", name, "not an HTTP header name"));
                    }
                }
                if outbound.path.matches('{').count() != outbound.path.matches('}').count() {
                    self.errors.push(invalid(
                        owner.clone(),
                        "outbound.path",
                        &outbound.path,
                        "unbalanced { } in the template",
                    ));
                }
                self.requests(&owner, &outbound.requests, contracts);
                let b = outbound.breaker;
                if !(b.failure_ratio > 0.0 && b.failure_ratio <= 1.0) || b.window.is_zero() || b.half_open_probes == 0 {
                    self.errors.push(invalid(
                        owner.clone(),
                        "outbound.breaker",
                        format!("{b:?}"),
                        "failure_ratio must be in (0, 1], window above zero and half_open_probes at least 1",
                    ));
                }
            }
            out.push(Partner {
                name: raw.name.clone(),
                doc: raw.doc.clone(),
                inbound: raw.inbound.clone(),
                outbound: raw.outbound.clone(),
            });
        }
        out
    }
}

/// Kafka's rules for topic names.
fn check_topic_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name == "." || name == ".." {
        return Err("not a legal topic name");
    }
    if name.len() > 249 {
        return Err("longer than 249 characters");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        return Err("only ASCII letters, digits, '.', '_' and '-' are legal");
    }
    Ok(())
}

fn is_decimal(text: &str) -> bool {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    !whole.is_empty() && whole.chars().all(|c| c.is_ascii_digit()) && frac.chars().all(|c| c.is_ascii_digit())
}

impl Contract {
    /// Parses one `.avsc`; the top level must be a named record.
    pub fn parse(name: &str, path: &Path, text: &str) -> Result<Contract, String> {
        let schema = apache_avro::Schema::parse_str(text).map_err(|e| e.to_string())?;
        let full_name = match &schema {
            apache_avro::Schema::Record(record) => record.name.fullname(None),
            _ => return Err("the top level must be a record".to_owned()),
        };
        if !full_name.contains('.') {
            return Err(format!("record {full_name} has no namespace"));
        }
        // The registered text keeps docs, defaults and logical types (Avro's Parsing Canonical Form
        // drops them, and with them the defaults that make evolution compatible); only the
        // formatting is normalised.
        let json: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let text = json.to_string();
        Ok(Contract { name: name.to_owned(), path: path.to_path_buf(), full_name, schema, text })
    }
}
