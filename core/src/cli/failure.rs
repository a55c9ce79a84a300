//! Why a command failed, which decides its exit status.

/// sysexits' EX_CONFIG: what `switchyard check` refuses (the routes file, the files it
/// includes, the plugins they need) stops every command with this status.
pub const EX_CONFIG: u8 = 78;

/// sysexits' EX_DATAERR: `store verify` found data lost in the store.
pub const EX_DATAERR: u8 = 65;

/// Why a command failed, which decides its exit status.
pub enum Failure {
    /// The configuration cannot be used: exit [`EX_CONFIG`].
    Config(String),
    /// The store's data is damaged: exit [`EX_DATAERR`].
    Damaged(String),
    /// Anything else (the store, the network, the operator API): exit 1.
    Runtime(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::Runtime(message)
    }
}

pub fn config_failure(error: impl std::fmt::Display) -> Failure {
    Failure::Config(error.to_string())
}
