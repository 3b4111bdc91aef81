//! Runs progenitor over one spec, turning its panics into an error message.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex;

use progenitor_impl::{GenerationSettings, Generator, InterfaceStyle, TagStyle, TypeImpl};
use schemars::schema::{InstanceType, SchemaObject};

/// The OpenAPI format that marks a token or secret: OpenAPI's own hint to obscure a value.
pub const SECRET_FORMAT: &str = "password";

/// The generated type a `format: password` string becomes (`refresh-runtime`).
const SECRET_TYPE: &str = "::refresh_runtime::Secret";

/// The client code for `spec`, or a one-line description of why progenitor could not generate it.
///
/// progenitor reports many unsupported constructs with `unimplemented!`/`assert!` deep inside its call stack;
/// the spec author should see what went wrong, not that stack.
pub fn client(spec: &openapiv3::OpenAPI) -> Result<proc_macro2::TokenStream, String> {
    let mut settings = GenerationSettings::default();
    // Builders: adding an optional parameter to a spec later does not break callers.
    settings
        .with_interface(InterfaceStyle::Builder)
        .with_tag(TagStyle::Merged);
    // Tokens and secrets (`format: password`) become the generated `Secret`, whose Debug and Display redact.
    settings.with_conversion(
        SchemaObject {
            instance_type: Some(InstanceType::String.into()),
            format: Some(SECRET_FORMAT.to_owned()),
            ..Default::default()
        },
        SECRET_TYPE,
        [TypeImpl::Default, TypeImpl::FromStringIrrefutable].into_iter(),
    );

    // The panic hook is process-wide: swap it under a lock so that concurrent runs (tests) restore the right one.
    static HOOK: Mutex<()> = Mutex::new(());
    let _guard = HOOK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let previous = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        Generator::new(&settings).generate_tokens(spec)
    }));
    panic::set_hook(previous);

    match outcome {
        Ok(Ok(tokens)) => Ok(tokens),
        Ok(Err(error)) => Err(format!("progenitor rejected the spec: {error}")),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            Err(format!(
                "progenitor cannot generate a client for this spec: {message}"
            ))
        }
    }
}
