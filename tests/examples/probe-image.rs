//! Writes a variant of the probe guest as a flat image file berth-vmm boots, for scripts that
//! need a VM with a screen (scripts/screenshots, scripts/bench-window):
//! `cargo run -p berth-e2e --example probe-image -- display /tmp/probe.flat`.
#![allow(clippy::unwrap_used)] // the probe builder panics with what gcc said; a script shows it

#[path = "../../vmm-backend/tests/common/probe.rs"]
#[allow(dead_code)]
mod probe;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [variant, out] = args.as_slice() else {
        eprintln!("usage: probe-image VARIANT OUT.flat   (e.g. display, animate)");
        return ExitCode::from(2);
    };
    let Some(finish) = probe::ProbeFinish::named(variant) else {
        eprintln!("probe-image: no probe variant {variant:?}");
        return ExitCode::from(2);
    };
    let image = probe::probe_image(finish);
    let file =
        vmm_backend::boot::flat_image_file(&image, probe::PROBE_LOAD_ADDR, probe::PROBE_LOAD_ADDR);
    if let Err(e) = std::fs::write(out, file) {
        eprintln!("probe-image: cannot write {out}: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
