//! `--join` entries: their syntax (documented on the parent module) and
//! the errors that name the fix for an entry that does not follow it.

use hickory_resolver::proto::rr::Name;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// One `--join` entry, parsed (see the [module documentation](super) for
/// the syntax).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JoinEntry {
    /// An IP address and port: used as is, no DNS asked.
    Addr(SocketAddr),
    /// A name whose A and AAAA addresses are used, each with `port`.
    Host {
        /// The name to resolve.
        name: String,
        /// The port every address of the name gets.
        port: u16,
    },
    /// An SRV name (`_service._proto.name`): its records' targets and ports.
    Srv {
        /// The SRV name to resolve.
        name: String,
    },
}

/// Why a `--join` entry cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinEntryError {
    /// The entry is empty (say, a stray comma in a list).
    #[error("empty join entry: give host:port, [ipv6]:port or _service._proto.name")]
    Empty,
    /// A name that is not SRV came without a port.
    #[error(
        "join entry {entry:?} has no port: write the port the members listen on, \
         as in {entry}:7946 (or give an SRV name, _service._proto.name, whose records carry it)"
    )]
    MissingPort {
        /// The entry as given.
        entry: String,
    },
    /// The port is not a number from 1 to 65535.
    #[error("join entry {entry:?}: port {port:?} is not a number from 1 to 65535")]
    BadPort {
        /// The entry as given.
        entry: String,
        /// The port as given.
        port: String,
    },
    /// An IPv6 address without brackets: its colons hide the port.
    #[error(
        "join entry {entry:?}: write an IPv6 address in brackets with the port after them, \
         as in [fd00::7]:7946"
    )]
    UnbracketedIpv6 {
        /// The entry as given.
        entry: String,
    },
    /// The host part is not a valid DNS name.
    #[error("join entry {entry:?}: {host:?} is not a valid DNS name ({reason})")]
    BadName {
        /// The entry as given.
        entry: String,
        /// The host part.
        host: String,
        /// What the DNS name parser refused.
        reason: String,
    },
    /// The name starts like an SRV name but is not `_service._proto.name`.
    #[error(
        "join entry {entry:?}: an SRV name is _service._proto.name \
         (as in _memberlist._tcp.alloy.monitoring.svc.cluster.local)"
    )]
    BadSrvName {
        /// The entry as given.
        entry: String,
    },
}

impl FromStr for JoinEntry {
    type Err = JoinEntryError;

    fn from_str(entry: &str) -> Result<Self, Self::Err> {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err(JoinEntryError::Empty);
        }
        if let Ok(addr) = entry.parse::<SocketAddr>() {
            return Ok(JoinEntry::Addr(addr));
        }
        if let Some(bracketed) = entry.strip_prefix('[') {
            return Err(bad_bracketed(entry, bracketed));
        }
        match entry.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => return Err(missing_port(entry)),
            Ok(IpAddr::V6(_)) => return Err(unbracketed(entry)),
            Err(_) => {}
        }
        let (host, port) = match entry.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (entry, None),
        };
        if host.contains(':') {
            return Err(match host.parse::<IpAddr>() {
                Ok(_) => unbracketed(entry),
                Err(_) => bad_name(entry, host, "':' cannot appear in a name".into()),
            });
        }
        if host.parse::<IpAddr>().is_ok() {
            // An IPv4 address whose port did not parse.
            return Err(bad_port(entry, port.unwrap_or_default()));
        }
        check_name(entry, host)?;
        if is_srv_name(entry, host)? {
            // The SRV record's port wins; one written here must still be a port.
            if let Some(port) = port {
                parse_port(entry, port)?;
            }
            return Ok(JoinEntry::Srv {
                name: host.to_owned(),
            });
        }
        let port = port.ok_or_else(|| missing_port(entry))?;
        Ok(JoinEntry::Host {
            name: host.to_owned(),
            port: parse_port(entry, port)?,
        })
    }
}

/// Why `[...]...` did not parse as a socket address (`bracketed` follows the
/// `[`).
fn bad_bracketed(entry: &str, bracketed: &str) -> JoinEntryError {
    let Some((inside, after)) = bracketed.split_once(']') else {
        return bad_name(entry, entry, "'[' without its ']'".into());
    };
    if inside.parse::<Ipv6Addr>().is_err() {
        return bad_name(entry, inside, "brackets hold an IPv6 address".into());
    }
    match after.strip_prefix(':') {
        None if after.is_empty() => missing_port(entry),
        None => bad_name(entry, entry, "only :port may follow ']'".into()),
        Some(port) => bad_port(entry, port),
    }
}

fn missing_port(entry: &str) -> JoinEntryError {
    JoinEntryError::MissingPort {
        entry: entry.to_owned(),
    }
}

fn unbracketed(entry: &str) -> JoinEntryError {
    JoinEntryError::UnbracketedIpv6 {
        entry: entry.to_owned(),
    }
}

fn bad_name(entry: &str, host: &str, reason: String) -> JoinEntryError {
    JoinEntryError::BadName {
        entry: entry.to_owned(),
        host: host.to_owned(),
        reason,
    }
}

impl fmt::Display for JoinEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinEntry::Addr(addr) => write!(f, "{addr}"),
            JoinEntry::Host { name, port } => write!(f, "{name}:{port}"),
            JoinEntry::Srv { name } => f.write_str(name),
        }
    }
}

fn parse_port(entry: &str, port: &str) -> Result<u16, JoinEntryError> {
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(bad_port(entry, port)),
    }
}

fn bad_port(entry: &str, port: &str) -> JoinEntryError {
    JoinEntryError::BadPort {
        entry: entry.to_owned(),
        port: port.to_owned(),
    }
}

fn check_name(entry: &str, host: &str) -> Result<(), JoinEntryError> {
    let refuse = |reason: String| bad_name(entry, host, reason);
    if host.is_empty() {
        return Err(refuse("the name is empty".into()));
    }
    if let Some(c) = host
        .chars()
        .find(|c| c.is_ascii() && !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(refuse(format!("{c:?} cannot appear in a name")));
    }
    Name::from_utf8(host).map_err(|e| refuse(e.to_string()))?;
    Ok(())
}

/// An SRV name is `_service._proto.name`; a name starting with `_` that is
/// not of that form is refused rather than looked up as an address.
fn is_srv_name(entry: &str, host: &str) -> Result<bool, JoinEntryError> {
    if !host.starts_with('_') {
        return Ok(false);
    }
    let mut labels = host.split('.');
    let well_formed = matches!(
        (labels.next(), labels.next(), labels.next()),
        (Some(service), Some(proto), Some(rest))
            if service.len() > 1 && proto.len() > 1 && proto.starts_with('_') && !rest.is_empty()
    );
    if well_formed {
        Ok(true)
    } else {
        Err(JoinEntryError::BadSrvName {
            entry: entry.to_owned(),
        })
    }
}
