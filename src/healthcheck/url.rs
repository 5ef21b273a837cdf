//! The probe's URL taken apart: `http[s]://host[:port][/path]` and no more,
//! since the probe only ever asks a server's own health endpoints.

/// Where to send the probe, taken apart from an `http://` or `https://` URL.
#[derive(Debug, PartialEq, Eq)]
pub struct ProbeUrl {
    /// https://: the request goes over TLS.
    pub tls: bool,
    /// As written in the URL (brackets kept for IPv6); also the Host header.
    pub authority: String,
    pub host: String,
    pub port: u16,
    pub path: String,
}

/// Parses `http[s]://host[:port][/path]`.
pub fn parse_url(url: &str) -> Result<ProbeUrl, String> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(format!(
            "{url:?}: only http:// and https:// URLs can be probed"
        ));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{url:?}: unclosed '[' in the host"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{url:?}: no host"));
    }
    let port = match port {
        Some(p) => p
            .parse()
            .map_err(|_| format!("{url:?}: {p:?} is not a port"))?,
        None if tls => 443,
        None => 80,
    };
    Ok(ProbeUrl {
        tls,
        authority: authority.to_owned(),
        host: host.to_owned(),
        port,
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_come_apart() {
        let u = parse_url("http://127.0.0.1:5000/readyz").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 5000, "/readyz")
        );
        let u = parse_url("http://[::1]:8080/healthz?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.authority.as_str()),
            ("::1", 8080, "[::1]:8080")
        );
        let u = parse_url("http://larder").unwrap();
        assert_eq!((u.tls, u.port, u.path.as_str()), (false, 80, "/"));
        let u = parse_url("https://larder").unwrap();
        assert_eq!((u.tls, u.port, u.path.as_str()), (true, 443, "/"));
        let u = parse_url("https://127.0.0.1:5000/readyz").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (true, "127.0.0.1", 5000, "/readyz")
        );
        assert!(parse_url("ftp://larder/readyz").is_err());
        assert!(parse_url("HTTPS//larder/readyz").is_err());
        assert!(parse_url("https://:443/").is_err());
        assert!(parse_url("http://:5000/").is_err());
        assert!(parse_url("http://larder:http/").is_err());
    }
}
