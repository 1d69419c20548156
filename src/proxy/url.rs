//! Parsing a proxy given as `host:port` or `http(s)://[user[:pass]@]host:port`.
//!
//! Written by hand rather than with `url::Url` because the decisions are the
//! proxy's own: the port must be explicit (tools disagree on the default: curl
//! assumes 1080, most others 80), a path means somebody gave a PAC file, and
//! SOCKS is refused by name rather than as "unknown scheme".

use std::fmt;
use std::net::Ipv6Addr;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use secrecy::{ExposeSecret, SecretString};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyScheme {
    Http,
    Https,
}

impl ProxyScheme {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ProxyScheme::Http => "http",
            ProxyScheme::Https => "https",
        }
    }
}

/// A proxy address with optional credentials. `Debug` shows the password as
/// `[REDACTED]` (it is a `SecretString`), and `Display` shows `***`.
#[derive(Debug, Clone)]
pub struct ProxyUrl {
    pub scheme: ProxyScheme,
    /// Host name in lower case, IPv4 address, or IPv6 address without brackets.
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<SecretString>,
}

/// Characters left as they are in the user and password of the URL given to
/// the script: only RFC 3986 "unreserved" ones, so that curl, wget, apt, yum
/// and pip all decode the same bytes whatever the password holds.
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl ProxyUrl {
    /// Parses a proxy value. The error is a reason without the value itself:
    /// the caller names the tag or variable, and the value may hold a password.
    pub fn parse(text: &str) -> Result<ProxyUrl, String> {
        let text = text.trim();
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
            None => ("http".to_string(), text),
        };
        let scheme = match scheme.as_str() {
            "http" => ProxyScheme::Http,
            "https" => ProxyScheme::Https,
            "socks" | "socks4" | "socks4a" | "socks5" | "socks5h" => {
                return Err(format!(
                    "the proxy scheme {scheme}:// is not supported: tagstrap, like the install \
                     script's curl and apt, needs an HTTP proxy (http:// or https://)"
                ))
            }
            s if s.starts_with("pac+") || s == "file" => return Err(pac_refusal()),
            // Not quoted: what stands before "://" may be a password typed
            // in the wrong place, and a word cannot be told from a scheme
            // name (found by fuzzing, fuzz/artifacts-found/proxy_url/).
            _ => {
                return Err(
                    "the proxy URL's scheme is not supported, or the value is not a URL \
                            of the form http(s)://[user[:password]@]host:port"
                        .into(),
                )
            }
        };

        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if !matches!(tail, "" | "/") {
            let path = tail
                .split(['?', '#'])
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            if path.ends_with(".pac") || path.ends_with(".dat") || path.contains("wpad") {
                return Err(pac_refusal());
            }
            return Err(
                "a proxy URL has no path, query or fragment: give it as http://host:port".into(),
            );
        }

        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, password) = match info.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (info, None),
                };
                let user = decode(user, "user name")?;
                if user.is_empty() {
                    return Err("the proxy URL has credentials with an empty user name".into());
                }
                let password = password
                    .map(|p| decode(p, "password").map(SecretString::from))
                    .transpose()?;
                (Some(user), password)
            }
        };

        let (host, port) = split_host_port(hostport)?;
        Ok(ProxyUrl {
            scheme,
            host,
            port,
            user,
            password,
        })
    }

    /// `host:port`, with brackets around an IPv6 address.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The URL without credentials: safe to log and to hand to the HTTP client,
    /// which gets the credentials as a separate, sensitive header.
    pub fn without_credentials(&self) -> String {
        format!("{}://{}", self.scheme.as_str(), self.authority())
    }

    /// The URL with user and password percent-encoded into it, as the install
    /// script's tools expect it in `https_proxy`. A secret, since it holds one.
    pub fn with_credentials(&self) -> SecretString {
        let mut url = format!("{}://", self.scheme.as_str());
        if let Some(user) = &self.user {
            url.push_str(&utf8_percent_encode(user, USERINFO).to_string());
            if let Some(password) = &self.password {
                url.push(':');
                url.push_str(&utf8_percent_encode(password.expose_secret(), USERINFO).to_string());
            }
            url.push('@');
        }
        url.push_str(&self.authority());
        SecretString::from(url)
    }
}

/// Shows the URL with the password replaced by `***`.
impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.as_str())?;
        if let Some(user) = &self.user {
            write!(f, "{}", utf8_percent_encode(user, USERINFO))?;
            if self.password.is_some() {
                f.write_str(":***")?;
            }
            f.write_str("@")?;
        }
        f.write_str(&self.authority())
    }
}

fn pac_refusal() -> String {
    "this looks like a proxy auto-config (PAC/WPAD) file, which tagstrap does not evaluate: \
     give the proxy itself as host:port"
        .into()
}

fn decode(text: &str, what: &str) -> Result<String, String> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| format!("the proxy URL's {what} is not valid UTF-8 once percent-decoded"))
}

fn split_host_port(hostport: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("the proxy's IPv6 address has no closing ']'")?;
        host.parse::<Ipv6Addr>()
            .map_err(|_| "the proxy's address in [brackets] is not an IPv6 address")?;
        let port = after.strip_prefix(':').unwrap_or("");
        (host.to_string(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err("write an IPv6 proxy address in brackets: [2001:db8::1]:3128".into())
            }
            Some((host, port)) => (host.to_string(), port),
            None => (hostport.to_string(), ""),
        }
    };
    if host.is_empty() {
        return Err("the proxy has no host: give it as host:port".into());
    }
    if port.is_empty() {
        return Err(
            "the proxy has no port: give it explicitly (e.g. proxy.example:3128), since tools \
             disagree on the default"
                .into(),
        );
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or("the proxy's port is not a number from 1 to 65535")?;
    // IDNA would silently drop a zero-width character from a name
    // ("exa\u{200b}mple.com" becomes "example.com"): refuse instead.
    if let Some(hidden) = crate::util::text::named_forbidden_char(&host) {
        return Err(format!("the proxy's host holds the {hidden}: remove it"));
    }
    let host = if host.contains(':') {
        host
    } else {
        let parsed = url::Host::parse(&host)
            .map_err(|_| "the proxy's host is not a valid host name or IPv4 address")?;
        parsed.to_string()
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_never_quotes_an_unknown_scheme_which_may_be_a_password() {
        // Found by fuzzing (fuzz/artifacts-found/proxy_url/scheme-echo-*).
        for value in [
            "svc:S3cretPw@http://proxy.corp:3128",
            "svc S3cretPw http://proxy.corp:3128",
            "svc proxy.corp:3128/http://",
            "\0://",
            "s3cretpwhttp://proxy.corp:3128",
            "ftp://p:1",
        ] {
            let err = ProxyUrl::parse(value).unwrap_err();
            assert!(!err.to_lowercase().contains("s3cretpw"), "{err}");
            assert!(!err.contains("svc"), "{err}");
            assert!(
                err.contains("http(s)://[user[:password]@]host:port"),
                "{err}"
            );
        }
        // Known schemes are still named: they say what to do instead.
        let err = ProxyUrl::parse("socks5://p:1").unwrap_err();
        assert!(
            err.contains("the proxy scheme socks5:// is not supported"),
            "{err}"
        );
    }

    #[test]
    fn bare_host_port_means_http() {
        let p = ProxyUrl::parse("Proxy.Example:3128").unwrap();
        assert_eq!(p.scheme, ProxyScheme::Http);
        assert_eq!(p.host, "proxy.example");
        assert_eq!(p.port, 3128);
        assert!(p.user.is_none() && p.password.is_none());
        assert_eq!(p.without_credentials(), "http://proxy.example:3128");
    }

    #[test]
    fn urls_with_credentials_are_decoded_and_reencoded_for_tools() {
        let p = ProxyUrl::parse("https://svc%40corp:p%40ss%3A%2F%25w@10.0.0.1:8443/").unwrap();
        assert_eq!(p.scheme, ProxyScheme::Https);
        assert_eq!(p.user.as_deref(), Some("svc@corp"));
        assert_eq!(p.password.as_ref().unwrap().expose_secret(), "p@ss:/%w");
        assert_eq!(
            p.with_credentials().expose_secret(),
            "https://svc%40corp:p%40ss%3A%2F%25w@10.0.0.1:8443"
        );
        assert_eq!(p.to_string(), "https://svc%40corp:***@10.0.0.1:8443");
    }

    #[test]
    fn every_reserved_character_of_a_password_is_encoded() {
        let mut p = ProxyUrl::parse("h:1").unwrap();
        p.user = Some("u".into());
        p.password = Some(SecretString::from("a b#?&=+;,$!'()*[]é"));
        assert_eq!(
            p.with_credentials().expose_secret(),
            "http://u:a%20b%23%3F%26%3D%2B%3B%2C%24%21%27%28%29%2A%5B%5D%C3%A9@h:1"
        );
    }

    #[test]
    fn a_host_is_never_altered_silently() {
        // Without the check, IDNA maps the zero-width space to nothing and
        // the proxy becomes example.com.
        for (host, named) in [
            ("exa\u{200b}mple.com:3128", "U+200B"),
            ("http://p\u{202e}x:1", "U+202E"),
            ("[::1\u{200b}]:1", "not an IPv6 address"),
        ] {
            let err = ProxyUrl::parse(host).unwrap_err();
            assert!(err.contains(named), "{host:?}: {err}");
            assert_eq!(crate::util::text::forbidden_char(&err), None, "{err:?}");
        }
        assert_eq!(
            ProxyUrl::parse("Proxy.Example:1").unwrap().host,
            "proxy.example"
        );
    }

    #[test]
    fn ipv6_needs_brackets() {
        let p = ProxyUrl::parse("[::1]:3128").unwrap();
        assert_eq!(p.host, "::1");
        assert_eq!(p.authority(), "[::1]:3128");
        assert!(ProxyUrl::parse("::1:3128")
            .unwrap_err()
            .contains("brackets"));
        assert!(ProxyUrl::parse("[zz]:1").is_err());
    }

    #[test]
    fn refusals_name_their_reason() {
        let cases = [
            ("socks5://h:1080", "not supported"),
            ("socks5h://h:1080", "not supported"),
            ("socks4a://h:1080", "not supported"),
            ("SOCKS4://h:1080", "not supported"),
            ("ftp://h:21", "not supported"),
            ("http://wpad.corp/wpad.dat", "auto-config"),
            ("http://h:80/proxy.pac", "auto-config"),
            ("pac+http://h/x", "auto-config"),
            ("file:///etc/proxy.pac", "auto-config"),
            ("http://h:3128/some/path", "no path"),
            ("http://h", "no port"),
            ("h:", "no port"),
            ("h:0", "1 to 65535"),
            ("h:99999", "1 to 65535"),
            ("h:31x", "1 to 65535"),
            (":3128", "no host"),
            ("http://:pw@h:1", "empty user"),
            ("http://u:%FF@h:1", "UTF-8"),
            ("bad host:1", "host"),
        ];
        for (input, reason) in cases {
            let err = ProxyUrl::parse(input).unwrap_err();
            assert!(err.contains(reason), "{input}: {err}");
        }
    }

    #[test]
    fn parse_errors_never_echo_the_password() {
        for input in [
            "http://u:s3cret@h",
            "http://u:s3cret@h:1/x.pac",
            "socks5://u:s3cret@h:1",
        ] {
            let err = ProxyUrl::parse(input).unwrap_err();
            assert!(!err.contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let p = ProxyUrl::parse("http://u:s3cret@h:1").unwrap();
        assert!(!format!("{p:?}").contains("s3cret"));
        assert!(!p.to_string().contains("s3cret"));
    }
}
