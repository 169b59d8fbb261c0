//! Facts about the running system: host name, users and groups.

use std::collections::HashMap;
use std::ffi::CStr;
use std::sync::Mutex;

pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

pub fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

pub fn gid() -> u32 {
    rustix::process::getgid().as_raw()
}

pub fn pid() -> u32 {
    std::process::id()
}

/// Name of the user running this process (falls back to `$USER`, then the
/// numeric uid).
pub fn username() -> String {
    user_name(uid())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| uid().to_string())
}

static USERS: Mutex<Option<HashMap<u32, Option<String>>>> = Mutex::new(None);
static GROUPS: Mutex<Option<HashMap<u32, Option<String>>>> = Mutex::new(None);

/// The name of user `uid` (cached; `None` when it has no name).
pub fn user_name(uid: u32) -> Option<String> {
    let mut cache = USERS.lock().unwrap();
    let cache = cache.get_or_insert_with(HashMap::new);
    cache
        .entry(uid)
        .or_insert_with(|| {
            lookup(|buf, len, out| unsafe {
                let mut pw: libc::passwd = std::mem::zeroed();
                let rc = libc::getpwuid_r(uid, &mut pw, buf, len, out as *mut *mut libc::passwd);
                (
                    rc,
                    if (*out).is_null() {
                        std::ptr::null()
                    } else {
                        pw.pw_name as *const libc::c_char
                    },
                )
            })
        })
        .clone()
}

/// The name of group `gid` (cached; `None` when it has no name).
pub fn group_name(gid: u32) -> Option<String> {
    let mut cache = GROUPS.lock().unwrap();
    let cache = cache.get_or_insert_with(HashMap::new);
    cache
        .entry(gid)
        .or_insert_with(|| {
            lookup(|buf, len, out| unsafe {
                let mut gr: libc::group = std::mem::zeroed();
                let rc = libc::getgrgid_r(gid, &mut gr, buf, len, out as *mut *mut libc::group);
                (
                    rc,
                    if (*out).is_null() {
                        std::ptr::null()
                    } else {
                        gr.gr_name as *const libc::c_char
                    },
                )
            })
        })
        .clone()
}

/// Run a reentrant passwd/group lookup with a growing buffer. `call` fills
/// `out` and returns (errno, pointer to the name inside the buffer or null).
fn lookup(
    call: impl Fn(*mut libc::c_char, usize, *mut *mut libc::c_void) -> (i32, *const libc::c_char),
) -> Option<String> {
    let mut len = 1024usize;
    loop {
        let mut buf = vec![0 as libc::c_char; len];
        let mut out: *mut libc::c_void = std::ptr::null_mut();
        let (rc, name) = call(buf.as_mut_ptr(), len, &mut out);
        if rc == libc::ERANGE && len < 1 << 20 {
            len *= 4;
            continue;
        }
        if rc != 0 || name.is_null() {
            return None;
        }
        // SAFETY: `name` points into `buf`, NUL-terminated by libc.
        let s = unsafe { CStr::from_ptr(name) };
        return Some(s.to_string_lossy().into_owned());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_is_named() {
        assert_eq!(super::user_name(0).as_deref(), Some("root"));
        assert_eq!(super::group_name(0).as_deref(), Some("root"));
        assert!(!super::hostname().is_empty());
    }
}
