//! DPDK return codes and `rte_errno` as one typed error.
//!
//! DPDK reports failure as a negative errno return value, as NULL plus
//! `rte_errno`, or as -1 plus `rte_errno`. [`Error::from_rc`] and
//! [`Error::last`] are the only two places those become Rust values.

use std::ffi::CStr;
use std::fmt;

/// What went wrong, by errno class; the exact errno is kept in [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// EINVAL: a bad argument (EAL option, queue id, size).
    InvalidArgument,
    /// ENOMEM / ENOSPC / ENOBUFS: memory, mempool or ring space exhausted.
    NoMemory,
    /// ENODEV: no such port or device.
    NoDevice,
    /// EEXIST: an object of that name exists already.
    Exists,
    /// EALREADY: done once already (EAL init).
    AlreadyDone,
    /// ENOTSUP / EOPNOTSUPP: the device or build does not support it.
    NotSupported,
    /// EBUSY / EAGAIN: try again later.
    Busy,
    /// EACCES / EPERM: not permitted (usually: not root).
    PermissionDenied,
    /// Anything else; the errno is in [`Error::errno`].
    Other,
}

/// A failed DPDK call: which operation, and the errno it reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    op: &'static str,
    errno: i32,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Maps a DPDK return code (`< 0` is `-errno`) to `Ok(rc)` or an error.
    pub fn from_rc(op: &'static str, rc: i32) -> Result<i32> {
        if rc < 0 {
            Err(Error { op, errno: -rc })
        } else {
            Ok(rc)
        }
    }

    /// The error DPDK left in this thread's `rte_errno`.
    pub fn last(op: &'static str) -> Error {
        // SAFETY: reads a thread-local integer.
        let errno = unsafe { dpdk_sys::shim_rte_errno() };
        Error { op, errno }
    }

    /// An error this crate detects itself, before calling DPDK.
    pub fn new(op: &'static str, errno: i32) -> Error {
        Error { op, errno }
    }

    pub fn op(&self) -> &'static str {
        self.op
    }

    pub fn errno(&self) -> i32 {
        self.errno
    }

    pub fn kind(&self) -> ErrorKind {
        match self.errno {
            libc_errno::EINVAL => ErrorKind::InvalidArgument,
            libc_errno::ENOMEM | libc_errno::ENOSPC | libc_errno::ENOBUFS => ErrorKind::NoMemory,
            libc_errno::ENODEV => ErrorKind::NoDevice,
            libc_errno::EEXIST => ErrorKind::Exists,
            libc_errno::EALREADY => ErrorKind::AlreadyDone,
            libc_errno::ENOTSUP => ErrorKind::NotSupported,
            libc_errno::EBUSY | libc_errno::EAGAIN => ErrorKind::Busy,
            libc_errno::EACCES | libc_errno::EPERM => ErrorKind::PermissionDenied,
            _ => ErrorKind::Other,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: rte_strerror returns a pointer to a static or thread-local
        // NUL-terminated string for any errno value.
        let msg = unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(self.errno)) };
        write!(f, "{}: {} (errno {})", self.op, msg.to_string_lossy(), self.errno)
    }
}

impl std::error::Error for Error {}

/// Linux errno values (asm-generic/errno-base.h, errno.h); DPDK uses these.
mod libc_errno {
    pub const EPERM: i32 = 1;
    pub const EAGAIN: i32 = 11;
    pub const ENOMEM: i32 = 12;
    pub const EACCES: i32 = 13;
    pub const EBUSY: i32 = 16;
    pub const EEXIST: i32 = 17;
    pub const ENODEV: i32 = 19;
    pub const EINVAL: i32 = 22;
    pub const ENOSPC: i32 = 28;
    pub const ENOTSUP: i32 = 95;
    pub const ENOBUFS: i32 = 105;
    pub const EALREADY: i32 = 114;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_codes_map_to_kinds() {
        assert_eq!(Error::from_rc("x", 3), Ok(3));
        let e = Error::from_rc("rte_eth_dev_configure", -22).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(e.errno(), 22);
        assert_eq!(Error::new("x", 19).kind(), ErrorKind::NoDevice);
        assert_eq!(Error::new("x", 114).kind(), ErrorKind::AlreadyDone);
        assert_eq!(Error::new("x", 9999).kind(), ErrorKind::Other);
    }

    #[test]
    fn display_names_the_operation() {
        let s = Error::new("rte_ring_create", 17).to_string();
        assert!(s.starts_with("rte_ring_create: "), "{s}");
        assert!(s.contains("errno 17"), "{s}");
    }
}
