//! The host side of the trust boundary: how far a job run for a tenant
//! reaches. Paths open beneath the root its policy allows (the kernel
//! resolves them, [`confine`]), connections go only to addresses its policy
//! allows ([`egress`]), and external tools run with an environment the
//! server chose ([`tool_env`]). The service's policy decides what a tenant
//! may name; this crate holds it to that at the moment of I/O. See
//! SECURITY.md for the trust model.

pub mod confine;
pub mod egress;
pub mod tool_env;
