//! The fix for a connection that no pg_hba.conf line admits (PostgreSQL's pg_hba.conf, or
//! pgpool-II's pool_hba.conf): the line to add, and only ever a line that keeps the TLS the
//! requested sslmode asks for.

use crate::eval::model::EvalInput;

/// How PostgreSQL rereads pg_hba.conf.
pub(in crate::eval) const RELOAD: &str = "`SELECT pg_reload_conf();`";

/// pg_hba.conf has no line for this connection. Over TLS: the hostssl line to add. In
/// plaintext, a line is wanted only when the requested sslmode needs plaintext (disable),
/// and then the hostssl way comes first; otherwise the refusal is the configuration doing
/// its job, and there is nothing to fix (empty).
pub(in crate::eval) fn no_entry_fix(
    input: &EvalInput,
    on_tls: bool,
    file: &str,
    client: &str,
    method: &str,
    reload: &str,
) -> String {
    let (db, user) = (input.dbname, input.user);
    // A user nobody chose is more likely the mistake than the missing line.
    let defaulted = if input.user_is_default {
        format!("give the user you mean (-U NAME, or user=NAME): libpq used the operating-system user \"{user}\". If \"{user}\" is meant: ")
    } else {
        String::new()
    };
    if on_tls {
        return format!(
            "{defaulted}add to {file}: `hostssl {db} {user} {client} {method}`, then {reload}"
        );
    }
    if input.requested != crate::sslmode::SslMode::Disable {
        return String::new();
    }
    format!(
        "sslmode=disable sends no TLS, and {file} admits no plaintext connection for this user: \
         connect with TLS instead (sslmode=verify-full; a `hostssl {db} {user} {client} {method}` line admits it). \
         Only if this client must stay in plaintext, add `host {db} {user} {client} {method}`, then {reload}"
    )
}
