//! The Environment Abstraction Layer: start-up from an argument list,
//! lcores, launching closures on worker lcores, and cleanup.
//!
//! DPDK allows one EAL per process. [`Eal::init`] returns the only handle;
//! it is neither `Send` nor `Sync`, because launching on and waiting for
//! worker lcores is only valid from the main lcore (the thread that ran
//! init). Dropping the handle waits for every launched lcore and calls
//! `rte_eal_cleanup`.

use std::ffi::{c_char, c_int, c_void, CString};
use std::fmt;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use dpdk_sys as sys;

use crate::error::{Error, Result};

/// An lcore (logical core) id as DPDK numbers them (`-l` / `--lcores`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LcoreId(pub u32);

impl fmt::Debug for LcoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lcore{}", self.0)
    }
}

impl fmt::Display for LcoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl LcoreId {
    /// The lcore the calling thread runs on, or `None` for a thread that is
    /// not an EAL lcore (`LCORE_ID_ANY`).
    pub fn current() -> Option<LcoreId> {
        // SAFETY: reads a thread-local integer.
        let id = unsafe { sys::shim_rte_lcore_id() };
        (id != u32::MAX).then_some(LcoreId(id))
    }
}

/// Set once EAL init was attempted successfully; DPDK itself refuses a
/// second init, this gives the caller a typed error before it tries.
static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// The running EAL. See the module docs.
pub struct Eal {
    /// Not Send/Sync: only the main lcore may launch and wait.
    _main_lcore_only: PhantomData<*const ()>,
}

impl fmt::Debug for Eal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Eal").field("main_lcore", &self.main_lcore()).finish()
    }
}

impl Eal {
    /// Starts the EAL with `args` (EAL options only, without a program name;
    /// e.g. `["--no-huge", "-m", "256", "--no-pci", "--file-prefix", "x"]`).
    ///
    /// Bad options return `Err(InvalidArgument)` and leave the process able
    /// to try again: DPDK 22.11 resets its run-once guard when argument
    /// parsing fails. Failures later in init (memory, devices) are reported
    /// the same way but DPDK may not allow a second attempt.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal> {
        if INITIALIZED.load(Ordering::SeqCst) {
            return Err(Error::new("rte_eal_init", 114 /* EALREADY */));
        }
        let mut owned: Vec<CString> = Vec::with_capacity(args.len() + 1);
        owned.push(CString::new("gw").expect("static name has no NUL"));
        for a in args {
            match CString::new(a.as_ref()) {
                Ok(c) => owned.push(c),
                Err(_) => return Err(Error::new("rte_eal_init: argument contains NUL", 22)),
            }
        }
        // EAL keeps pointers into argv for the life of the process (e.g. the
        // --vdev strings) and permutes the array: hand it leaked storage.
        let argv: &'static mut [*mut c_char] =
            Vec::leak(owned.into_iter().map(CString::into_raw).chain(std::iter::once(std::ptr::null_mut())).collect());
        let argc = (argv.len() - 1) as c_int;
        // SAFETY: argv holds argc valid NUL-terminated strings followed by
        // NULL, all leaked so they outlive the EAL.
        let rc = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if rc < 0 {
            return Err(Error::last("rte_eal_init"));
        }
        INITIALIZED.store(true, Ordering::SeqCst);
        Ok(Eal { _main_lcore_only: PhantomData })
    }

    /// The main lcore (the one that ran init).
    pub fn main_lcore(&self) -> LcoreId {
        // SAFETY: plain query of EAL configuration after init.
        LcoreId(unsafe { sys::rte_get_main_lcore() })
    }

    /// Every enabled lcore except the main one, in id order.
    pub fn worker_lcores(&self) -> Vec<LcoreId> {
        let mut out = Vec::new();
        let mut i = u32::MAX; // "-1": start from the first lcore
        loop {
            // SAFETY: plain query of EAL configuration after init.
            i = unsafe { sys::rte_get_next_lcore(i, 1, 0) };
            if i >= sys::RTE_MAX_LCORE {
                return out;
            }
            out.push(LcoreId(i));
        }
    }

    /// NUMA socket of the calling lcore (0 on a single-socket machine).
    pub fn socket_id(&self) -> i32 {
        // SAFETY: plain query; returns SOCKET_ID_ANY for non-EAL threads.
        unsafe { sys::rte_socket_id() as i32 }
    }

    /// Runs `f` on worker lcore `lcore`. The lcore must be idle.
    /// The handle's [`LaunchHandle::join`] waits and returns what `f`
    /// returned; a panic inside `f` becomes an error at join.
    pub fn launch<F, T>(&self, lcore: LcoreId, f: F) -> Result<LaunchHandle<'_, T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let slot: Arc<Mutex<Option<T>>> = Arc::new(Mutex::new(None));
        let out = slot.clone();
        let job: Box<Job> = Box::new(Box::new(move || {
            let v = f();
            *out.lock().expect("result slot poisoned") = Some(v);
        }));
        let arg = Box::into_raw(job) as *mut c_void;
        // SAFETY: `trampoline` takes ownership of `arg` (a Box<Job>) exactly
        // once when DPDK runs it; if the launch fails DPDK never calls it and
        // we take the box back below.
        let rc = unsafe { sys::rte_eal_remote_launch(Some(trampoline), arg, lcore.0) };
        if rc < 0 {
            // SAFETY: the launch failed, so DPDK did not take `arg`.
            drop(unsafe { Box::from_raw(arg as *mut Job) });
            return Err(Error::from_rc("rte_eal_remote_launch", rc).unwrap_err());
        }
        Ok(LaunchHandle { lcore, slot, joined: false, _eal: PhantomData })
    }
}

type Job = Box<dyn FnOnce() + Send>;

extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> that `launch` leaked for this call.
    let job = unsafe { Box::from_raw(arg as *mut Job) };
    // A panic must not unwind into DPDK's C frames.
    match catch_unwind(AssertUnwindSafe(job)) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: called once, from the main lcore (Eal is !Send); every
        // LaunchHandle borrows the Eal, so none is outstanding.
        unsafe {
            sys::rte_eal_mp_wait_lcore();
            sys::rte_eal_cleanup();
        }
    }
}

/// A closure running on a worker lcore. Dropping it waits for the lcore.
pub struct LaunchHandle<'eal, T> {
    lcore: LcoreId,
    slot: Arc<Mutex<Option<T>>>,
    joined: bool,
    _eal: PhantomData<&'eal Eal>,
}

impl<T> fmt::Debug for LaunchHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LaunchHandle").field("lcore", &self.lcore).finish()
    }
}

impl<T> LaunchHandle<'_, T> {
    pub fn lcore(&self) -> LcoreId {
        self.lcore
    }

    /// Waits for the closure to return and gives back its value.
    pub fn join(mut self) -> Result<T> {
        self.wait();
        let v = self.slot.lock().expect("result slot poisoned").take();
        v.ok_or(Error::new("lcore closure panicked", 5 /* EIO */))
    }

    fn wait(&mut self) {
        if !self.joined {
            // SAFETY: only the main lcore holds a LaunchHandle (it borrows
            // the !Send Eal), which is where rte_eal_wait_lcore may be called.
            unsafe { sys::rte_eal_wait_lcore(self.lcore.0) };
            self.joined = true;
        }
    }
}

impl<T> Drop for LaunchHandle<'_, T> {
    fn drop(&mut self) {
        self.wait();
    }
}
