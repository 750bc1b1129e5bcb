//! Seccomp filters, one per thread role, each allowing only the system calls that role makes
//! (listed from the code and checked by running guests with every filter in logging mode,
//! `BERTH_VMM_SECCOMP=log`). A call outside its role's list raises SIGSYS; the handler writes
//! which call on which thread and ends berth-vmm as crashed, so berthd shows the reason.
//!
//! Opening a file is refused with EACCES on every thread rather than stopping the VM: glibc's
//! malloc opens `/proc/sys/vm/overcommit_memory` the first time any thread gives heap back to
//! the system (which thread that is depends on what the guest did), and the jail holds no
//! such file anyway. (Two programs do it: the role's list, and one answering opens with
//! EACCES; the kernel takes the stricter answer of the two.)
//!
//! A thread installs its filter as it starts ([`apply`]); threads started afterwards inherit
//! it on top of their own, so the thread that starts the vCPUs installs its own only after
//! (`Vm::run`).

use std::cell::Cell;
use std::collections::BTreeMap;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule, TargetArch};

use super::SandboxError;

/// What a thread does, which decides what it may ask of the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadRole {
    /// The thread that built the VM, then starts the vCPUs, waits for one to end the VM, and
    /// ends the process.
    Main,
    /// A vCPU: KVM_RUN and the devices on the port-I/O and MMIO buses.
    Vcpu,
    /// The virtio device thread: queue notifications, disk I/O, the framebuffer.
    Device,
    /// berthd's control channel: commands, the framebuffer fd, input events.
    Control,
    /// The serial console's input from berthd.
    SerialIn,
    /// The display notices to berthd.
    DisplayNotices,
    /// The firmware's screen: reads guest RAM into the display's framebuffer.
    BootScreen,
}

impl ThreadRole {
    /// The role as messages (and `BERTH_VMM_FORBIDDEN_SYSCALL`) name it.
    pub fn name(self) -> &'static str {
        match self {
            ThreadRole::Main => "main",
            ThreadRole::Vcpu => "vcpu",
            ThreadRole::Device => "virtio",
            ThreadRole::Control => "control",
            ThreadRole::SerialIn => "serial-in",
            ThreadRole::DisplayNotices => "display-notices",
            ThreadRole::BootScreen => "boot-screen",
        }
    }

    /// Every role, for finding one by its code.
    const ALL: [ThreadRole; 7] = [
        ThreadRole::Main,
        ThreadRole::Vcpu,
        ThreadRole::Device,
        ThreadRole::Control,
        ThreadRole::SerialIn,
        ThreadRole::DisplayNotices,
        ThreadRole::BootScreen,
    ];

    fn code(self) -> u8 {
        self as u8 + 1
    }

    fn from_code(code: u8) -> &'static str {
        Self::ALL
            .into_iter()
            .find(|r| r.code() == code)
            .map_or("unknown", ThreadRole::name)
    }
}

/// What every thread may do: memory for the allocator, futexes, signals (the vCPU kick and the
/// reporter below), writing a panic or this module's message to stderr, and ending.
const COMMON: &[i64] = &[
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_mprotect,
    libc::SYS_futex,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_sigaltstack,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_getrandom,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_tgkill,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_close,
    // Rust's standard library checks a descriptor with F_GETFD before it closes it.
    libc::SYS_fcntl,
    libc::SYS_exit,
    libc::SYS_exit_group,
    // glibc changes every thread's ids by signalling each to make the call itself; the calls
    // only lower privileges (nothing can be regained without CAP_SETUID).
    libc::SYS_setresuid,
    libc::SYS_setresgid,
    libc::SYS_setgroups,
];

/// The calls of one role, beyond [`COMMON`].
fn role_calls(role: ThreadRole) -> &'static [i64] {
    match role {
        ThreadRole::Main => &[
            // Starting the vCPU threads, joining them, the channel they report on.
            libc::SYS_clone,
            libc::SYS_clone3,
            libc::SYS_set_robust_list,
            libc::SYS_rseq,
            libc::SYS_prctl,
            libc::SYS_ioctl,
            libc::SYS_read,
            libc::SYS_epoll_ctl,
            libc::SYS_getcwd,
        ],
        ThreadRole::Vcpu => &[
            libc::SYS_ioctl,
            libc::SYS_set_robust_list,
            libc::SYS_rseq,
            libc::SYS_prctl,
            libc::SYS_read,
        ],
        ThreadRole::Device => &[
            libc::SYS_epoll_wait,
            libc::SYS_epoll_pwait,
            libc::SYS_read,
            // The network card's socket to passt (Rust's socket reads are recv, writes write).
            libc::SYS_recvfrom,
            libc::SYS_sendto,
            libc::SYS_pread64,
            libc::SYS_preadv,
            libc::SYS_pwrite64,
            libc::SYS_pwritev,
            libc::SYS_fsync,
            libc::SYS_fdatasync,
            libc::SYS_lseek,
            libc::SYS_ftruncate,
            libc::SYS_fstat,
            libc::SYS_newfstatat,
            libc::SYS_statx,
            libc::SYS_ioctl,
            libc::SYS_set_robust_list,
            libc::SYS_rseq,
            libc::SYS_prctl,
        ],
        ThreadRole::Control => &[
            libc::SYS_read,
            libc::SYS_recvfrom,
            libc::SYS_recvmsg,
            libc::SYS_sendmsg,
            libc::SYS_sendto,
            libc::SYS_ioctl,
            libc::SYS_set_robust_list,
            libc::SYS_rseq,
            libc::SYS_prctl,
        ],
        ThreadRole::SerialIn => &[
            libc::SYS_read,
            libc::SYS_ioctl,
            libc::SYS_set_robust_list,
            libc::SYS_rseq,
            libc::SYS_prctl,
        ],
        ThreadRole::DisplayNotices => &[
            libc::SYS_sendto,
            libc::SYS_sendmsg,
            libc::SYS_set_robust_list,
            libc::SYS_rseq,
            libc::SYS_prctl,
        ],
        // Guest RAM and the framebuffer's memfd are mapped and the notices are another
        // thread's: beyond starting a thread, only growing the memfd for a larger mode.
        ThreadRole::BootScreen => &[
            libc::SYS_ftruncate,
            libc::SYS_set_robust_list,
            libc::SYS_rseq,
            libc::SYS_prctl,
        ],
    }
}

/// How a call outside the lists is met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcement {
    /// SIGSYS: the VM ends with the call named ([`install_reporter`]).
    Trap,
    /// Allowed and logged by the kernel (the audit log, `dmesg`), to find a role's calls.
    Log,
}

impl Enforcement {
    /// `BERTH_VMM_SECCOMP=log` logs instead of trapping.
    pub fn from_env() -> Enforcement {
        match std::env::var("BERTH_VMM_SECCOMP").as_deref() {
            Ok("log") => Enforcement::Log,
            _ => Enforcement::Trap,
        }
    }
}

/// Calls answered with EACCES on every thread (see the module's documentation).
const REFUSED: &[i64] = &[libc::SYS_open, libc::SYS_openat];

/// A role's compiled filter: its calls allowed (and the refused ones let through to the
/// second program), the rest trapped or logged; and the refusal of opens.
pub struct Filter {
    calls: BpfProgram,
    refusals: BpfProgram,
}

impl Filter {
    /// In the order they are installed: the refusals first, which let `seccomp(2)` through for
    /// the role's list after it.
    fn programs(&self) -> [&BpfProgram; 2] {
        [&self.refusals, &self.calls]
    }
}

/// The compiled filter of `role`.
pub fn filter(role: ThreadRole, enforcement: Enforcement) -> Result<Filter, SandboxError> {
    let failed = |reason: String| SandboxError::Seccomp {
        role: role.name(),
        reason,
    };
    let compile = |calls: &mut dyn Iterator<Item = &i64>, mismatch, matched| {
        let rules: BTreeMap<i64, Vec<SeccompRule>> =
            calls.map(|&call| (call, Vec::new())).collect();
        let filter = SeccompFilter::new(rules, mismatch, matched, TargetArch::x86_64)
            .map_err(|e| failed(e.to_string()))?;
        filter
            .try_into()
            .map_err(|e: seccompiler::BackendError| failed(e.to_string()))
    };
    let mismatch = match enforcement {
        Enforcement::Trap => SeccompAction::Trap,
        Enforcement::Log => SeccompAction::Log,
    };
    Ok(Filter {
        calls: compile(
            &mut COMMON.iter().chain(role_calls(role)).chain(REFUSED),
            mismatch,
            SeccompAction::Allow,
        )?,
        refusals: compile(
            &mut REFUSED.iter(),
            SeccompAction::Allow,
            SeccompAction::Errno(libc::EACCES as u32),
        )?,
    })
}

thread_local! {
    /// This thread's role, for the SIGSYS message (0: none yet).
    static ROLE: Cell<u8> = const { Cell::new(0) };
}

/// Installs `role`'s filter on the calling thread.
pub fn apply(role: ThreadRole, enforcement: Enforcement) -> Result<(), SandboxError> {
    install(role, &filter(role, enforcement)?)
}

/// Installs `filter`, `role`'s compiled filter, on the calling thread (no allocation: safe
/// in a child forked from threads).
///
/// With `SECCOMP_FILTER_FLAG_SPEC_ALLOW`: by default a kernel whose speculation mitigations are
/// in their `seccomp` mode (Debian's) forces Speculative Store Bypass Disable and indirect
/// branch prediction barriers on every filtered task, which the unsandboxed berth-vmm never
/// had, and which cost a context switch dearly (an MSR write each). Those protect a sandbox that
/// runs untrusted code in its own address space (a browser's JIT); berth-vmm runs none (the
/// guest runs in guest mode, with its own speculation controls), so the sandbox keeps the
/// mitigations the system chose for all processes (`spec_store_bypass_disable=on`,
/// `spectre_v2_user=on` still apply).
pub fn install(role: ThreadRole, filter: &Filter) -> Result<(), SandboxError> {
    ROLE.with(|r| r.set(role.code()));
    // SAFETY: as the call below's; no new privileges is needed once, before the first.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(SandboxError::Seccomp {
            role: role.name(),
            reason: std::io::Error::last_os_error().to_string(),
        });
    }
    for program in filter.programs() {
        install_program(role, program)?;
    }
    Ok(())
}

fn install_program(role: ThreadRole, program: &BpfProgram) -> Result<(), SandboxError> {
    let failed = |reason: String| SandboxError::Seccomp {
        role: role.name(),
        reason,
    };
    if program.is_empty() {
        return Err(failed("an empty filter".into()));
    }
    let length = u16::try_from(program.len()).map_err(|_| failed("a filter too long".into()))?;
    let fprog = libc::sock_fprog {
        len: length,
        // seccompiler's sock_filter is the kernel's struct, as libc's is (both repr(C)).
        filter: program.as_ptr().cast::<libc::sock_filter>().cast_mut(),
    };
    // SAFETY: prctl with integer arguments; seccomp reads `fprog` and the program it points
    // to, both alive for the call, and copies them into the kernel.
    let installed = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            &fprog as *const libc::sock_fprog,
        ) == 0
    };
    if installed {
        Ok(())
    } else {
        Err(failed(std::io::Error::last_os_error().to_string()))
    }
}

/// The exit code after a forbidden call: berth-vmm's "the VM crashed".
static CRASH_CODE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(3);

/// Installs the SIGSYS handler that reports a forbidden call: `berth-vmm was stopped by its
/// seccomp filter: system call N on its ROLE thread` on stderr, then the process ends with
/// `exit_code`. Only async-signal-safe work in the handler: a stack buffer, write, _exit.
pub fn install_reporter(exit_code: u8) -> Result<(), SandboxError> {
    CRASH_CODE.store(i32::from(exit_code), std::sync::atomic::Ordering::Relaxed);
    // SAFETY: an all-zero sigaction is a valid starting point; the handler is a plain
    // extern "C" function with the SA_SIGINFO signature.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigsys as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut()) < 0 {
            return Err(SandboxError::Step {
                step: "install the SIGSYS handler",
                source: std::io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}

/// The system call number of a SIGSYS `siginfo_t` (x86_64: `si_syscall`, the int after the
/// call address at the start of the union, byte 24).
///
/// # Safety
/// `info` must point at a `siginfo_t` the kernel filled for SIGSYS.
unsafe fn sigsys_call(info: *const libc::siginfo_t) -> i32 {
    // SAFETY: the caller's contract; the union of a siginfo_t starts at byte 16 and SIGSYS's
    // member holds the call address (8 bytes) then the call number.
    unsafe { info.cast::<u8>().add(24).cast::<i32>().read_unaligned() }
}

extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel delivered SIGSYS with this siginfo.
    let call = unsafe { sigsys_call(info) };
    let role = ThreadRole::from_code(ROLE.with(Cell::get));
    let mut message = [0u8; 160];
    let mut len = 0;
    let mut push = |bytes: &[u8]| {
        let n = bytes.len().min(message.len() - len);
        message[len..len + n].copy_from_slice(&bytes[..n]);
        len += n;
    };
    push(b"berth-vmm was stopped by its seccomp filter: system call ");
    let mut digits = [0u8; 12];
    let mut at = digits.len();
    let mut value = call.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    push(&digits[at..]);
    push(b" on its ");
    push(role.as_bytes());
    push(b" thread\n");
    // SAFETY: write and _exit are async-signal-safe and allowed by every filter.
    unsafe {
        libc::write(2, message.as_ptr().cast(), len);
        libc::_exit(CRASH_CODE.load(std::sync::atomic::Ordering::Relaxed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_compiles_in_both_modes() {
        for role in ThreadRole::ALL {
            for enforcement in [Enforcement::Trap, Enforcement::Log] {
                let filter = filter(role, enforcement).unwrap();
                assert!(filter.programs().iter().all(|p| !p.is_empty()));
            }
            assert_eq!(ThreadRole::from_code(role.code()), role.name());
        }
    }

    /// The exit code of a child that installs the reporter (exit code 77) and `role`'s
    /// filter, then runs `calls` (its exit code; 2 when the set-up failed). In a child process:
    /// the filter and the handler end it, not the test. The filter is compiled before the fork
    /// (the child of a threaded test must not allocate).
    fn child_exit(role: ThreadRole, calls: fn() -> i32) -> i32 {
        let program = filter(role, Enforcement::Trap).unwrap();
        // SAFETY: the child only installs the handler and filter, makes calls and exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let set_up = install_reporter(77).is_ok() && install(role, &program).is_ok();
                let code = if set_up { calls() } else { 2 };
                // SAFETY: ends the child at once.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                match nix::sys::wait::waitpid(child, None).unwrap() {
                    nix::sys::wait::WaitStatus::Exited(_, code) => code,
                    other => panic!("the child ended as {other:?}"),
                }
            }
        }
    }

    #[test]
    fn a_forbidden_call_is_reported_with_its_number_and_role() {
        let code = child_exit(ThreadRole::SerialIn, || {
            // socket(2) is in no role's list.
            // SAFETY: a plain system call; it traps before doing anything.
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
            1
        });
        assert_eq!(code, 77);
    }

    #[test]
    fn opening_a_file_is_refused_not_trapped() {
        // As glibc's malloc does on whichever thread first gives heap back.
        let code = child_exit(ThreadRole::BootScreen, || {
            let path = c"/proc/sys/vm/overcommit_memory";
            // SAFETY: a plain open of a NUL-terminated path; refused before it opens.
            let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY) };
            let errno = std::io::Error::last_os_error().raw_os_error();
            i32::from(!(fd < 0 && errno == Some(libc::EACCES)))
        });
        assert_eq!(code, 0);
    }
}
