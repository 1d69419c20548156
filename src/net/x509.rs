//! Just enough DER to name a certificate's issuer and subject, for `doctor`:
//! a TLS-intercepting proxy shows itself as the issuer of the certificate a
//! script host presents. Nothing here decides trust (rustls does); a
//! certificate this reader does not understand is simply not named.

/// One DER element: its tag and contents, and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (len, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const VERSION: u8 = 0xa0;
/// id-at-commonName, id-at-organizationName, id-at-organizationalUnitName.
const CN: &[u8] = &[0x55, 0x04, 0x03];
const O: &[u8] = &[0x55, 0x04, 0x0a];
const OU: &[u8] = &[0x55, 0x04, 0x0b];

/// The issuer and subject Names of a DER certificate, as raw elements.
fn names(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (SEQUENCE, certificate, _) = element(der)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = element(certificate)? else {
        return None;
    };
    let (tag, _, mut rest) = element(tbs)?;
    if tag == VERSION {
        // [0] version came first; the serial number is next.
        rest = element(rest)?.2;
    }
    let (_signature, _, rest) = element(rest)?;
    let (SEQUENCE, issuer, rest) = element(rest)? else {
        return None;
    };
    let (_validity, _, rest) = element(rest)?;
    let (SEQUENCE, subject, _) = element(rest)? else {
        return None;
    };
    Some((issuer, subject))
}

/// "CN=…, O=…" of a Name: the common name, organization and unit, in the
/// order they appear; other attributes are left out.
fn shown_name(mut name: &[u8]) -> Option<String> {
    let mut parts = Vec::new();
    while !name.is_empty() {
        let (SET, mut set, rest) = element(name)? else {
            return None;
        };
        name = rest;
        while !set.is_empty() {
            let (SEQUENCE, attribute, rest) = element(set)? else {
                return None;
            };
            set = rest;
            let (OID, oid, value) = element(attribute)? else {
                return None;
            };
            let label = match oid {
                CN => "CN",
                O => "O",
                OU => "OU",
                _ => continue,
            };
            let (tag, value, _) = element(value)?;
            let text = match tag {
                // UTF8String, PrintableString, TeletexString, IA5String.
                0x0c | 0x13 | 0x14 | 0x16 => String::from_utf8_lossy(value).into_owned(),
                // BMPString: UTF-16 big-endian.
                0x1e => String::from_utf16_lossy(
                    &value
                        .chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect::<Vec<u16>>(),
                ),
                _ => continue,
            };
            let text: String = text.chars().filter(|c| !c.is_control()).collect();
            parts.push(format!("{label}={text}"));
        }
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The certificate's issuer, e.g. "CN=Corp Proxy CA, O=Corp".
pub fn issuer(der: &[u8]) -> Option<String> {
    shown_name(names(der)?.0)
}

/// The certificate's subject.
pub fn subject(der: &[u8]) -> Option<String> {
    shown_name(names(der)?.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_and_subject_of_a_real_certificate() {
        let ca = testkit::TestCa::new();
        let leaf = ca.issue(&["repo.test"]);
        let issuer = issuer(&leaf.cert_der).expect("an issuer");
        assert!(issuer.starts_with("CN="), "{issuer}");
        assert_eq!(Some(issuer), subject(&ca.ca_cert_der()));
        assert_eq!(subject(&leaf.cert_der).as_deref(), Some("CN=repo.test"));
    }

    #[test]
    fn what_is_not_a_certificate_is_not_named() {
        assert_eq!(issuer(b""), None);
        assert_eq!(issuer(&[0x30, 0x82, 0xff]), None);
        assert_eq!(issuer(&[0x30, 0x03, 0x02, 0x01, 0x00]), None);
        assert_eq!(subject(&[0x04, 0x00]), None);
    }

    #[test]
    fn names_keep_cn_o_ou_and_drop_control_characters() {
        // SET { SEQUENCE { OID CN, UTF8String "a\x1bb" } },
        // SET { SEQUENCE { OID C, PrintableString "DE" } },
        // SET { SEQUENCE { OID O, BMPString "Ü" } }
        let name = [
            0x31, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x03, b'a', 0x1b, b'b',
            0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, b'D', b'E', 0x31,
            0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x1e, 0x02, 0x00, 0xdc,
        ];
        assert_eq!(shown_name(&name).as_deref(), Some("CN=ab, O=Ü"));
    }
}
