//! `REDIS_URL` read (API.md §11): one server, the primary a set of Sentinels names, or a Redis
//! Cluster.

/// Where a store's Redis is, as `REDIS_URL` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// One server: `redis://`, `rediss://`, `redis+unix://` or `unix://`.
    Direct(String),
    /// The primary the Sentinels call `master`:
    /// `redis+sentinel://[user:password@]host:port,host:port/<master>[/<db>]`. The credentials
    /// and database are the Redis servers'; the Sentinels are asked without.
    Sentinel {
        /// `host:port` of each Sentinel (port 26379 where none is given).
        sentinels: Vec<String>,
        /// The name the Sentinels monitor the primary by.
        master: String,
        /// `user:password` for the primary, as written (percent-encoded).
        userinfo: Option<String>,
        /// The database number.
        db: u32,
    },
    /// A Redis Cluster, `redis+cluster://[user:password@]host:port,host:port[/]`: each
    /// namespace lives in one hash slot (its keys carry the `{namespace}` tag), so on the
    /// primary that owns that slot now. The hosts are where to ask first; any node will do.
    Cluster {
        /// `host:port` of each node named (port 6379 where none is given).
        nodes: Vec<String>,
        /// `user:password` for the nodes, as written (percent-encoded).
        userinfo: Option<String>,
    },
}

impl Address {
    /// Reads `REDIS_URL`; the error says what is wrong with it.
    pub fn parse(url: &str) -> Result<Self, String> {
        if ["redis://", "rediss://", "redis+unix://", "unix://"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
        {
            return Ok(Self::Direct(url.to_owned()));
        }
        if let Some(rest) = url.strip_prefix("redis+cluster://") {
            let (userinfo, hosts, path) = split(rest);
            if !path.is_empty() {
                return Err(format!(
                    "a redis+cluster:// URL has no path (a cluster has one database), not /{path}"
                ));
            }
            let nodes = hosts_of(hosts, 6379)?;
            if nodes.is_empty() {
                return Err("a redis+cluster:// URL names no node".to_owned());
            }
            return Ok(Self::Cluster { nodes, userinfo });
        }
        let Some(rest) = url.strip_prefix("redis+sentinel://") else {
            return Err(format!(
                "{url:?} is not a redis://, rediss://, redis+sentinel:// or redis+cluster:// URL"
            ));
        };
        let (userinfo, hosts, path) = split(rest);
        let sentinels = hosts_of(hosts, 26379)?;
        if sentinels.is_empty() {
            return Err("a redis+sentinel:// URL names no Sentinel".to_owned());
        }
        let mut path = path.split('/');
        let master = path.next().unwrap_or_default().to_owned();
        if master.is_empty() {
            return Err(
                "a redis+sentinel:// URL ends with /<master-name>, the name the Sentinels monitor"
                    .to_owned(),
            );
        }
        let db = match path.next() {
            None | Some("") => 0,
            Some(db) => db
                .parse()
                .map_err(|_| format!("{db:?} is not a database number"))?,
        };
        if path.next().is_some() {
            return Err("a redis+sentinel:// URL has at most /<master-name>/<db>".to_owned());
        }
        Ok(Self::Sentinel {
            sentinels,
            master,
            userinfo,
            db,
        })
    }
}

/// `[userinfo@]hosts[/path]` into its parts (the path without its first `/`).
fn split(rest: &str) -> (Option<String>, &str, &str) {
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((userinfo, rest)) => (Some(userinfo.to_owned()), rest),
        None => (None, rest),
    };
    let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
    (userinfo, hosts, path)
}

/// `host[:port],…` as `host:port` each, `port` where none is given.
fn hosts_of(hosts: &str, port: u16) -> Result<Vec<String>, String> {
    let mut found = Vec::new();
    for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        let (name, port) = match host.rsplit_once(':') {
            Some((name, port)) => (
                name,
                port.parse::<u16>()
                    .map_err(|_| format!("{host:?}: the port is not a number"))?,
            ),
            None => (host, port),
        };
        if name.is_empty() {
            return Err(format!("{host:?}: no host name"));
        }
        found.push(format!("{name}:{port}"));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::Address;

    #[test]
    fn redis_urls_are_read_or_refused_with_a_reason() {
        assert_eq!(
            Address::parse("redis+sentinel://a:26380,b/mymaster"),
            Ok(Address::Sentinel {
                sentinels: vec!["a:26380".into(), "b:26379".into()],
                master: "mymaster".into(),
                userinfo: None,
                db: 0,
            })
        );
        assert_eq!(
            Address::parse("redis+sentinel://:p%40ss@a:1/m/3"),
            Ok(Address::Sentinel {
                sentinels: vec!["a:1".into()],
                master: "m".into(),
                userinfo: Some(":p%40ss".into()),
                db: 3,
            })
        );
        assert_eq!(
            Address::parse("redis+cluster://u:pw@h1:7000, h2/"),
            Ok(Address::Cluster {
                nodes: vec!["h1:7000".into(), "h2:6379".into()],
                userinfo: Some("u:pw".into()),
            })
        );
        assert_eq!(
            Address::parse("redis://x:1/2"),
            Ok(Address::Direct("redis://x:1/2".into()))
        );
        for (url, says) in [
            ("redis+sentinel://a:1", "master-name"),
            ("redis+sentinel:///m", "names no Sentinel"),
            ("redis+sentinel://a:x/m", "port"),
            ("redis+sentinel://a/m/zero", "database"),
            ("redis+cluster://", "names no node"),
            ("redis+cluster://a:1/2", "no path"),
            ("redis+cluster://:1", "no host name"),
            ("http://a", "not a redis://"),
        ] {
            let error = Address::parse(url).expect_err(url);
            assert!(error.contains(says), "{url}: {error}");
        }
    }
}
