//! The closed registry of processor kinds: a processor's `params.kind` picks the machine the
//! runtime drives. A new kind is a variant of `ProcessorParams` and one arm of [`launch`].

use interchange_core::clock::duration_millis;
use interchange_core::topology::{Processor, ProcessorParams};

use crate::declared::{Declared, Limits};
use crate::runtime::{self, Context, Launched, ProcessorError};
use crate::saga;

/// Starts `processor` with the machine its `params` pick and how long that machine's terminal
/// states stay (milliseconds; `None`: for ever): the one place that knows the kinds of processor.
pub(crate) async fn launch(ctx: &Context<'_>, processor: &Processor) -> Result<Launched, ProcessorError> {
    match &processor.params {
        // The order saga run from its file (`machine = ...`): the interpreter, its tunables as params.
        ProcessorParams::OrderSaga { terminal_retention, machine: Some(_), .. } => {
            runtime::start(ctx, processor, declared(ctx, processor), Some(duration_millis(*terminal_retention))).await
        }
        ProcessorParams::OrderSaga {
            erp_partner,
            erp_partner_by_shop,
            discount_percent,
            discount_min_total,
            dispatch_deadline,
            terminal_retention,
            machine: None,
        } => {
            let params = saga::Money::parse(discount_min_total)
                .ok_or_else(|| ProcessorError::Config(format!("discount_min_total {discount_min_total:?}")))
                .map(|discount_min_total| saga::Params {
                    erp_partner: erp_partner.clone(),
                    erp_partner_by_shop: erp_partner_by_shop.clone(),
                    discount_percent: *discount_percent,
                    discount_min_total,
                    dispatch_deadline_ms: duration_millis(*dispatch_deadline),
                    history_limit: ctx.config.history_limit,
                    applied_limit: ctx.config.applied_limit,
                });
            runtime::start(ctx, processor, params.map(saga::OrderSaga::new), Some(duration_millis(*terminal_retention)))
                .await
        }
        ProcessorParams::Declared { terminal_retention, .. } => {
            runtime::start(ctx, processor, declared(ctx, processor), Some(duration_millis(*terminal_retention))).await
        }
    }
}

/// The interpreter of the machine the topology read for `processor`.
fn declared(ctx: &Context<'_>, processor: &Processor) -> Result<Declared, ProcessorError> {
    let limits = Limits { applied: ctx.config.applied_limit, history: ctx.config.history_limit };
    match (processor.machine.clone(), processor.params.machine()) {
        (Some(spec), Some((_, values))) => Ok(Declared::new(spec, values, limits)),
        _ => Err(ProcessorError::Config(format!("processor {}: its machine was not read", processor.name))),
    }
}

#[cfg(test)]
mod tests {
    /// The runtime drives any [`Machine`](crate::machine::Machine): none of its files names a
    /// particular one (this registry is the one place that does).
    #[test]
    fn the_runtime_names_no_machine() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/runtime");
        let mut files = 0;
        for entry in std::fs::read_dir(dir).expect("src/runtime") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("a source file");
            files += 1;
            for (n, line) in text.lines().enumerate() {
                assert!(!line.to_lowercase().contains("saga"), "{}:{}: {line}", path.display(), n + 1);
            }
        }
        assert!(files > 10, "read {files} files of the runtime");
    }
}
