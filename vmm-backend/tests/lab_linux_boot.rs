//! Tier 3: a stock Debian kernel boots under `berth-vmm` inside the nested-SVM lab
//! (`scripts/lab`), to `BERTH-GUEST-READY` and a clean exit 0 after `poweroff`, with 1 and with
//! 2 vCPUs; reads and writes a virtio-blk disk; and is paused, resumed and stopped gracefully
//! (ACPI power button) through the control channel. Takes minutes, so it is ignored unless `BERTH_LAB=1`:
//! `BERTH_LAB=1 cargo test -p vmm-backend --test lab_linux_boot -- --ignored`.
//! The fixtures come from `scripts/guest-fixtures` (cached in `BERTH_FIXTURES` or
//! ~/.cache/berth-guest).

use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "boots Linux in the lab (minutes); run with BERTH_LAB=1 and --ignored"]
fn debian_kernel_boots_uses_its_disk_and_stops_gracefully() {
    if std::env::var_os("BERTH_LAB").is_none_or(|v| v != "1") {
        eprintln!("skipped: set BERTH_LAB=1 to run tier 3");
        return;
    }
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts");
    let output = Command::new(scripts.join("test-lab"))
        .arg(env!("CARGO_BIN_EXE_berth-vmm"))
        .output()
        .expect("running scripts/test-lab");
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    for cpus in [1, 2] {
        assert!(
            stdout.contains(&format!("boot cpus={cpus} exit=0 marker=yes")),
            "the {cpus}-vCPU boot did not reach the marker and power off cleanly"
        );
    }
    assert!(
        stdout.contains("disk exit=0 bound=yes read=yes written=yes"),
        "the guest did not read and write its virtio-blk disk"
    );
    assert!(
        stdout.contains("stop exit=0 replies=ok button=yes"),
        "pause, resume and a graceful stop through the control channel failed"
    );
    assert!(
        output.status.success(),
        "scripts/test-lab: {}",
        output.status
    );
}
