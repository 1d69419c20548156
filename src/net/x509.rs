//! A certificate's issuer and subject, named for `doctor`: a
//! TLS-intercepting proxy shows itself as the issuer of the certificate a
//! script host presents. Parsed with `x509-parser` (docs/dependencies.md).
//! Nothing here decides trust (rustls does), and a certificate the parser
//! does not understand is simply not named.

use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::oid_registry::{
    OID_X509_COMMON_NAME, OID_X509_ORGANIZATIONAL_UNIT, OID_X509_ORGANIZATION_NAME,
};
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

/// "CN=…, O=…" of a Name: the common name, organization and unit, in the
/// order they appear; other attributes, and values that are no string, are
/// left out, and so are control characters.
fn shown_name(name: &X509Name<'_>) -> Option<String> {
    let mut parts = Vec::new();
    for attribute in name.iter_rdn().flat_map(|rdn| rdn.iter()) {
        let oid = attribute.attr_type();
        let label = if *oid == OID_X509_COMMON_NAME {
            "CN"
        } else if *oid == OID_X509_ORGANIZATION_NAME {
            "O"
        } else if *oid == OID_X509_ORGANIZATIONAL_UNIT {
            "OU"
        } else {
            continue;
        };
        let value = attribute.as_slice();
        let text = match attribute.attr_value().tag() {
            Tag::Utf8String | Tag::PrintableString | Tag::T61String | Tag::Ia5String => {
                String::from_utf8_lossy(value).into_owned()
            }
            // BMPString: UTF-16 big-endian.
            Tag::BmpString => String::from_utf16_lossy(
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
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn certificate(der: &[u8]) -> Option<X509Certificate<'_>> {
    X509Certificate::from_der(der).ok().map(|(_, cert)| cert)
}

/// The certificate's issuer, e.g. "CN=Corp Proxy CA, O=Corp".
pub(crate) fn issuer(der: &[u8]) -> Option<String> {
    shown_name(certificate(der)?.issuer())
}

/// The certificate's subject.
pub fn subject(der: &[u8]) -> Option<String> {
    shown_name(certificate(der)?.subject())
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
        // (inside the Name's SEQUENCE, 40 bytes)
        let name = [
            0x30, 0x28, 0x31, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x03, b'a',
            0x1b, b'b', 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, b'D',
            b'E', 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x1e, 0x02, 0x00, 0xdc,
        ];
        let (_, name) = X509Name::from_der(&name).unwrap();
        assert_eq!(shown_name(&name).as_deref(), Some("CN=ab, O=Ü"));
    }
}
