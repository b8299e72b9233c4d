//! Process limits.

/// Raises this process's open-file limit to its hard limit, so that a server
/// (or the load generator) can hold as many connections as the system
/// allows; returns the new limit.
#[cfg(unix)]
pub fn raise_open_files() -> std::io::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok(hard)
}

/// Other systems keep their limit.
#[cfg(not(unix))]
pub fn raise_open_files() -> std::io::Result<u64> {
    Ok(0)
}
