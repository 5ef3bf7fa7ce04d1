//! `SPIN_VARIABLE_<NAME>` from the process environment, as `spin up` reads it.
//!
//! Kept alone in its own test binary: it changes the process environment, which no
//! other test in the same process may observe or race with.

use e2e::{app, probe, AppVariable};

#[test]
fn process_environment_overrides_defaults_and_explicit_values_override_it() {
    std::env::set_var("SPIN_VARIABLE_PROBE_FROM_ENV", "env value");
    std::env::set_var("SPIN_VARIABLE_PROBE_BOTH", "env loses");

    let builder = || {
        app()
            .declare_var("probe_from_env", AppVariable::with_default("default value"))
            .declare_var("probe_both", AppVariable::with_default("default value"))
            .component(
                probe()
                    .variable("from_env", "{{ probe_from_env }}")
                    .variable("both", "{{ probe_both }}"),
            )
    };

    // The harness ignores the environment unless asked, so tests stay hermetic.
    let hermetic = builder().start();
    assert_eq!(
        hermetic.get("/probe/var?name=from_env").send().text(),
        "default value"
    );

    let app = builder()
        .use_process_env()
        .var("probe_both", "explicit wins")
        .start();
    assert_eq!(
        app.get("/probe/var?name=from_env").send().text(),
        "env value"
    );
    assert_eq!(
        app.get("/probe/var?name=both").send().text(),
        "explicit wins"
    );
}
